#!/usr/bin/env bash
# Builds the peer bench's workloads (../shared/bench/workloads) with ossb, pushes them to a
# real Distribution registry started here, and checks each pushed image with the bench's own
# independent path: skopeo copy -> umoci unpack -> validate.sh. Run as root (validate.sh
# chroots); each workload is built as root and, with --as-user, again as that uid with no
# capabilities and no subuid range. OSSB_SANDBOX (e.g. ptrace) is passed to the builds.
#
#   scripts/workloads.sh [--as-user UID] [--ossb PATH] [WORKLOAD...]   (default: run-heavy multi-stage)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bench=${OSSB_BENCH_DIR:-$root/../shared/bench}
ossb=$root/target/debug/ossb
as_user=""
workloads=()
while [ $# -gt 0 ]; do
  case $1 in
    --as-user) as_user=$2; shift 2 ;;
    --ossb) ossb=$(realpath "$2"); shift 2 ;;
    *) workloads+=("$1"); shift ;;
  esac
done
[ ${#workloads[@]} -gt 0 ] || workloads=(run-heavy multi-stage)
[ -d "$bench/workloads" ] || { echo "workloads: $bench/workloads not found (set OSSB_BENCH_DIR)"; exit 5; }
[ -x "$ossb" ] || { echo "workloads: $ossb is not built (cargo build -p ossb-cli)"; exit 5; }
[ "$(id -u)" = 0 ] || { echo "workloads: run as root (validate.sh chroots into the image)"; exit 5; }

state=$(mktemp -d /tmp/ossb-workloads.XXXXXX)
chmod 0755 "$state"
reg_pid=""
cleanup() { [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null; rm -rf "$state"; }
trap cleanup EXIT

# A registry on a free loopback port.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$state/registry"
cat >"$state/registry/config.yml" <<YML
version: 0.1
storage: { filesystem: { rootdirectory: $state/registry/data }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$port }
YML
env -i /usr/bin/docker-registry serve "$state/registry/config.yml" >"$state/registry/log" 2>&1 &
reg_pid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
reg=127.0.0.1:$port

# The busybox base, made and pushed by ossb itself (no network, no other builder).
base_ctx=$state/base
mkdir -p "$base_ctx/rootfs/bin" "$base_ctx/rootfs/etc" "$base_ctx/rootfs/tmp" "$base_ctx/rootfs/root" \
  "$base_ctx/rootfs/home" "$base_ctx/rootfs/var/tmp"
cp /bin/busybox "$base_ctx/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$base_ctx/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$base_ctx/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$base_ctx/rootfs/etc/group"
printf 'hosts: files dns\n' >"$base_ctx/rootfs/etc/nsswitch.conf"
chmod 1777 "$base_ctx/rootfs/tmp" "$base_ctx/rootfs/var/tmp"
printf 'FROM scratch\nCOPY rootfs/ /\nCMD ["/bin/sh"]\n' >"$base_ctx/Dockerfile"
OSSB_ROOT=$state/store-base "$ossb" build --progress quiet --source-date-epoch 1700000000 --push \
  -t "$reg/base/busybox:latest" "$base_ctx" >/dev/null

passed=0 failed=0
run_one() { # WORKLOAD LABEL [setpriv args...]
  local w=$1 label=$2; shift 2
  local ctx=$state/ctx/$w
  [ -d "$ctx" ] || bash "$bench/workloads/$w/gen-context.sh" "$ctx" >/dev/null
  chmod -R a+rX "$ctx"
  local home=$state/home-$label-$w
  mkdir -p "$home"; chmod 0777 "$home"
  local ref=$reg/bench/$w:$label
  echo "== $w as $label"
  if ! (cd "$home" && "$@" env -i PATH="$PATH" HOME="$home" OSSB_ROOT="$home/store" ${OSSB_SANDBOX:+OSSB_SANDBOX=$OSSB_SANDBOX} \
        "$ossb" build --progress plain -f "$bench/workloads/$w/Dockerfile" \
        --build-arg "BASE=$reg/base/busybox:latest" -t "$ref" --push "$ctx" >"$home/build.log" 2>&1); then
    echo "  FAIL build ($label); last lines:"; tail -15 "$home/build.log" | sed 's/^/    /'
    failed=$((failed+1)); return
  fi
  local v=$state/validate-$label-$w
  mkdir -p "$v"
  skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$v/oci:x"
  umoci unpack --image "$v/oci:x" "$v/bundle" >/dev/null
  if bash "$bench/validate.sh" "$w" "$v/bundle/rootfs" "$ctx"; then
    echo "  VALID ($label)"; passed=$((passed+1))
  else
    echo "  INVALID ($label)"; failed=$((failed+1))
  fi
}
for w in "${workloads[@]}"; do
  run_one "$w" root
  if [ -n "$as_user" ]; then
    run_one "$w" "uid$as_user" setpriv --reuid="$as_user" --regid="$as_user" --clear-groups --inh-caps=-all
  fi
done
echo "workloads: $passed passed, $failed failed"
[ "$failed" = 0 ]
