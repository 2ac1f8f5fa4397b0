# Shared pieces of the shell test harnesses (scripts/workloads.sh, tests/docker-acceptance.sh):
# a real Distribution registry on a free loopback port, the busybox base image built and pushed
# by ossb itself, and the bench's independent validation path (skopeo -> umoci -> validate.sh).
# Source it; every function takes its state directory explicitly.

# harness_free_port: prints a free TCP port on 127.0.0.1.
harness_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# harness_start_registry STATE: starts docker-registry on 127.0.0.1; sets REG (host:port) and
# REG_PID. The caller stops it (kill "$REG_PID").
harness_start_registry() {
  local state=$1 port
  port=$(harness_free_port)
  mkdir -p "$state/registry"
  cat >"$state/registry/config.yml" <<YML
version: 0.1
storage: { filesystem: { rootdirectory: $state/registry/data }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$port }
YML
  env -i /usr/bin/docker-registry serve "$state/registry/config.yml" >"$state/registry/log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
  REG=127.0.0.1:$port
}

# harness_busybox_context DIR: a build context whose Dockerfile makes a busybox base image from
# this machine's static busybox (no network, no other builder).
harness_busybox_context() {
  local ctx=$1
  mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/etc" "$ctx/rootfs/tmp" "$ctx/rootfs/root" \
    "$ctx/rootfs/home" "$ctx/rootfs/var/tmp"
  cp /bin/busybox "$ctx/rootfs/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$ctx/rootfs/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$ctx/rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$ctx/rootfs/etc/group"
  printf 'hosts: files dns\n' >"$ctx/rootfs/etc/nsswitch.conf"
  chmod 1777 "$ctx/rootfs/tmp" "$ctx/rootfs/var/tmp"
  printf 'FROM scratch\nCOPY rootfs/ /\nCMD ["/bin/sh"]\n' >"$ctx/Dockerfile"
}

# harness_push_base OSSB STATE REF: builds the busybox base with OSSB and pushes it to REF.
harness_push_base() {
  local ossb=$1 state=$2 ref=$3
  harness_busybox_context "$state/base"
  OSSB_ROOT=$state/store-base "$ossb" build --progress quiet --source-date-epoch 1700000000 --push \
    -t "$ref" "$state/base" >/dev/null
}

# harness_validate BENCH WORKLOAD REF CTX DIR: pulls REF with skopeo, unpacks it with umoci into
# DIR and runs the bench's validate.sh on it (root only: validate.sh chroots).
harness_validate() {
  local bench=$1 w=$2 ref=$3 ctx=$4 dir=$5
  mkdir -p "$dir"
  skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$dir/oci:x" &&
    umoci unpack --image "$dir/oci:x" "$dir/bundle" >/dev/null &&
    bash "$bench/validate.sh" "$w" "$dir/bundle/rootfs" "$ctx"
}
