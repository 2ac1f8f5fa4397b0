#!/usr/bin/env bash
# Acceptance suite in a real container runtime: OSSB's own image (deploy/, built by OSSB) runs
# builds inside Docker containers restricted the way Kubernetes pods are, and the images OSSB
# builds are loaded and run by Docker.
#
#   tests/docker-acceptance.sh [--image-tar FILE] [--table FILE]
#
# Needs root (validate.sh chroots) and a reachable Docker Engine; without one it prints why and
# exits 0 (skipped). Nothing is pulled: every image is made here. The registry the containers
# push to is a real Distribution on the host's loopback (the containers use --network host).
#
# What it shows, per security configuration (see CONFIGS below):
#   - the sandbox rung the execution ladder picks (`ossb doctor --json` inside the container);
#   - the bench's multi-stage and run-heavy workloads build, push, and are VALID by the bench's
#     own skopeo -> umoci -> validate.sh path;
#   - a failing RUN exits 2; `docker stop` during a RUN exits 8 (status Cancelled in the pod
#     configuration, where the status file is kept).
# Then: images OSSB builds (entrypoint, cmd, env, workdir, user, ports, healthcheck, labels, stop
# signal) are `docker load`ed, run and inspected, and must match their Dockerfile.
# The table of configurations and rungs is printed and written to --table (docs/kubernetes.md
# carries a copy).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. scripts/lib/harness.sh

image_tar="" table_out=""
while [ $# -gt 0 ]; do
  case $1 in
    --image-tar) image_tar=$(realpath "$2"); shift 2 ;;
    --table) table_out=$2; shift 2 ;;
    *) echo "docker-acceptance: unknown argument $1" >&2; exit 5 ;;
  esac
done

if ! docker info >/dev/null 2>&1; then
  echo "docker-acceptance: SKIPPED: no Docker Engine reachable (docker info failed)"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "docker-acceptance: run as root (validate.sh chroots)"; exit 5; }
bench=${OSSB_BENCH_DIR:-$root/../shared/bench}
[ -d "$bench/workloads" ] || { echo "docker-acceptance: $bench/workloads not found (set OSSB_BENCH_DIR)"; exit 5; }

state=$(mktemp -d /tmp/ossb-docker-acceptance.XXXXXX)
chmod 0755 "$state"
REG_PID=""
containers=()
cleanup() {
  for c in "${containers[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null
  rm -rf "$state"
}
trap cleanup EXIT

failures=0
fail() { echo "  FAIL: $*"; failures=$((failures+1)); }
pass() { echo "  ok: $*"; }

# --- OSSB's own image, built by OSSB ------------------------------------------------------------
echo "== OSSB's image (deploy/Dockerfile, built by OSSB)"
if [ -z "$image_tar" ]; then
  image_tar=$state/ossb-image.tar
  deploy/build-image.sh --output "type=docker,dest=$image_tar" >"$state/deploy.log" 2>&1 ||
    { tail -20 "$state/deploy.log"; echo "docker-acceptance: deploy/build-image.sh failed"; exit 1; }
fi
docker load -i "$image_tar" >/dev/null
image=ossb/ossb:dev
# The static binary of the image, used on the host too (base image, test images).
ossb=target/x86_64-unknown-linux-gnu/release/ossb
[ -x "$ossb" ] || ossb=target/debug/ossb
ossb=$(realpath "$ossb")
docker run --rm "$image" version >/dev/null && pass "docker run $image version"

harness_start_registry "$state"
reg=$REG
harness_push_base "$ossb" "$state" "$reg/base/busybox:latest"

# Contexts: the bench workloads, and two small Dockerfiles of our own.
for w in multi-stage run-heavy; do
  bash "$bench/workloads/$w/gen-context.sh" "$state/ctx/$w" >/dev/null
  cp "$bench/workloads/$w/Dockerfile" "$state/ctx/$w/Dockerfile"
done
mkdir -p "$state/ctx/failing" "$state/ctx/slow"
printf 'ARG BASE\nFROM $BASE\nRUN echo about to fail; exit 3\n' >"$state/ctx/failing/Dockerfile"
printf 'ARG BASE\nFROM $BASE\nRUN echo "step-$((1+1))-started"; sleep 120\n' >"$state/ctx/slow/Dockerfile"
chmod -R a+rX "$state/ctx"

# The Kubernetes volume layout (atomic-writer `..data` symlinks) for the pod configuration.
atomic_volume() { # DIR KEY=VALUE...
  local dir=$1; shift
  local data=..2026_12_02_00_00_00.000000001
  mkdir -p "$dir/$data"
  for kv in "$@"; do
    printf '%s' "${kv#*=}" >"$dir/$data/${kv%%=*}"
    ln -s "..data/${kv%%=*}" "$dir/${kv%%=*}"
  done
  ln -s "$data" "$dir/..data"
  chmod -R a+rX "$dir"
}
pod=$state/pod
atomic_volume "$pod/secrets/registry-secret" \
  ".dockerconfigjson={\"auths\":{\"$reg\":{\"auth\":\"$(printf 'pod-user:pod-password-not-for-logs' | base64)\"}}}"
atomic_volume "$pod/secrets/build-secrets" "npm_token=acceptance-secret-value"
atomic_volume "$pod/configmaps/registry-config" "config.yaml=insecure: [ \"$reg\" ]"

# Security configurations, like the pods users run. Each: NAME|docker run flags|expected rung.
restricted="--user 1000:1000 --cap-drop ALL --security-opt no-new-privileges --read-only --tmpfs /tmp:rw,exec,mode=1777"
CONFIGS=(
  "restricted|$restricted|ptrace"
  "restricted-unconfined-seccomp|$restricted --security-opt seccomp=unconfined|reduced"
  "root-default-capabilities|--user 0:0|chroot"
  "restricted-pod-layout|--user 1000:1000 --cap-drop ALL --security-opt no-new-privileges --read-only|ptrace"
)

run_in() { # CONFIG_NAME FLAGS WORKSPACE NAME ARGS... : runs the OSSB image like a pod would
  local cfg=$1 flags=$2 ws=$3 name=$4; shift 4
  local extra=()
  if [ "$cfg" = restricted-pod-layout ]; then
    mkdir -p "$state/pod-tmp-$name"; chmod 1777 "$state/pod-tmp-$name"
    extra=(-v "$pod/secrets/registry-secret:/var/run/secrets/registry-secret:ro"
           -v "$pod/secrets/build-secrets:/var/run/secrets/build-secrets:ro"
           -v "$pod/configmaps/registry-config:/var/run/configmaps/registry-config:ro"
           -v "$state/pod-tmp-$name:/tmp"
           -e JOB_NAME=acceptance-job -e POD_NAME=acceptance-pod -e POD_NAMESPACE=builds
           -e KUBERNETES_SERVICE_HOST=10.0.0.1 -e OSSB_WORKSPACE=/workspace)
  else
    extra=(-e OSSB_ROOT=/workspace/store)
  fi
  containers+=("$name")
  # shellcheck disable=SC2086 # flags are word lists on purpose
  docker run --name "$name" --network host $flags "${extra[@]}" \
    -v "$ws:/workspace" -v "$state/ctx:/ctx:ro" "$image" "$@"
}

declare -A table_row
for entry in "${CONFIGS[@]}"; do
  IFS='|' read -r cfg flags want_rung <<<"$entry"
  echo "== configuration $cfg: docker run $flags"
  ws=$state/ws-$cfg
  mkdir -p "$ws"; chmod 0777 "$ws"

  # The rung the ladder picks here.
  got_rung=$(run_in "$cfg" "$flags" "$ws" "acc-$cfg-doctor" doctor --json 2>"$ws/doctor.err" |
    jq -r '.rung // "none"' 2>/dev/null || echo unknown)
  docker rm -f "acc-$cfg-doctor" >/dev/null 2>&1 || true
  if [ "$got_rung" = "$want_rung" ]; then pass "ladder picks $got_rung"; else fail "ladder picked $got_rung, expected $want_rung"; fi

  # The workloads, validated outside the container by skopeo, umoci and validate.sh.
  row_results=""
  for w in multi-stage run-heavy; do
    ref=$reg/acceptance/$w:$cfg
    if run_in "$cfg" "$flags" "$ws" "acc-$cfg-$w" build --progress plain \
         --build-arg "BASE=$reg/base/busybox:latest" -t "$ref" --push "/ctx/$w" >"$ws/$w.log" 2>&1; then
      if harness_validate "$bench" "$w" "$ref" "$state/ctx/$w" "$state/validate-$cfg-$w" >"$ws/$w.validate" 2>&1; then
        pass "$w VALID"; row_results+=" VALID |"
      else
        fail "$w INVALID"; tail -5 "$ws/$w.validate" | sed 's/^/    /'; row_results+=" INVALID |"
      fi
    else
      fail "$w build failed"; tail -4 "$ws/$w.log" | cut -c1-400 | sed 's/^/    /'; row_results+=" build failed |"
    fi
    docker rm -f "acc-$cfg-$w" >/dev/null 2>&1 || true
  done
  if grep -q "sandbox" "$ws/run-heavy.log" && ! grep -qi "sandbox.*$want_rung\|$want_rung.*sandbox" "$ws/run-heavy.log"; then
    fail "the build log does not name the $want_rung rung"
  fi

  # A failing RUN exits 2.
  code=0
  run_in "$cfg" "$flags" "$ws" "acc-$cfg-failing" build --progress plain \
    --build-arg "BASE=$reg/base/busybox:latest" /ctx/failing >"$ws/failing.log" 2>&1 || code=$?
  docker rm -f "acc-$cfg-failing" >/dev/null 2>&1 || true
  if [ "$code" = 2 ]; then pass "failing RUN exits 2"; else fail "failing RUN exited $code, expected 2"; tail -3 "$ws/failing.log" | cut -c1-400 | sed 's/^/    /'; fi

  # `docker stop` during a RUN exits 8.
  name=acc-$cfg-stop
  run_in "$cfg" "-d $flags" "$ws" "$name" build --progress plain \
    --build-arg "BASE=$reg/base/busybox:latest" /ctx/slow >/dev/null
  for _ in $(seq 300); do docker logs "$name" 2>&1 | grep -q step-2-started && break; sleep 0.2; done
  docker stop -t 30 "$name" >/dev/null
  stop_code=$(docker wait "$name")
  if [ "$stop_code" = 8 ]; then pass "docker stop during RUN exits 8"; else fail "docker stop exited $stop_code, expected 8"; docker logs "$name" 2>&1 | tail -3 | cut -c1-400 | sed 's/^/    /'; fi
  if [ "$cfg" = restricted-pod-layout ]; then
    status=$state/pod-tmp-$name/ossb-status.json
    if jq -e '.phase == "Cancelled" or .status == "Cancelled" or .state == "Cancelled"' "$status" >/dev/null 2>&1; then
      pass "status file says Cancelled"
    else
      fail "status file does not say Cancelled: $(cat "$status" 2>/dev/null || echo missing)"
    fi
    # In a pod the logs are JSON lines carrying the pod's fields, and no secret value.
    log=$ws/multi-stage.log
    if jq -R 'fromjson? | select(.job_name == "acceptance-job" and .pod_name == "acceptance-pod")' "$log" | grep -q .; then
      pass "JSON logs carry job_name and pod_name"
    else
      fail "JSON logs lack the pod fields"; head -3 "$log" | sed 's/^/    /'
    fi
    progress=$state/pod-tmp-acc-$cfg-multi-stage/ossb-progress.json
    if jq -e . "$progress" >/dev/null 2>&1 || (head -1 "$progress" | jq -e . >/dev/null 2>&1); then
      pass "progress file written"
    else
      fail "no progress file at $progress"
    fi
    if grep -rq "pod-password-not-for-logs\|acceptance-secret-value" "$ws"/*.log "$state"/pod-tmp-*/ 2>/dev/null; then
      fail "a secret value reached a log, status or progress file"
    else
      pass "no secret value in logs, status or progress files"
    fi
  fi
  docker rm -f "$name" >/dev/null 2>&1 || true
  table_row[$cfg]="| $cfg | \`$flags\` | $got_rung |$row_results $code | $stop_code |"
done

# --- Images OSSB builds run in Docker -------------------------------------------------------------
echo "== images built by OSSB, loaded and run by Docker"
app=$state/app
harness_busybox_context "$app"
cat >"$app/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
ENV GREETING=hello APP_HOME=/srv/app
WORKDIR /srv/app
RUN printf '#!/bin/sh\necho "$GREETING from $(pwd) as $(id -u):$(id -g) args: $*"\n' > run.sh && chmod 0755 run.sh \
 && echo 'app:x:1234:1234:app:/srv/app:/bin/sh' >> /etc/passwd && echo 'app:x:1234:' >> /etc/group
USER app:app
EXPOSE 8080/tcp 5353/udp
HEALTHCHECK --interval=5s --timeout=3s --start-period=1s --retries=2 CMD ["/bin/true"]
LABEL org.example.suite="docker-acceptance"
STOPSIGNAL SIGINT
ENTRYPOINT ["/srv/app/run.sh"]
CMD ["one", "two"]
EOF
OSSB_ROOT=$state/store-app "$ossb" build --progress quiet -t ossb-acceptance/app:latest \
  --output "type=docker,dest=$state/app.tar" "$app" >/dev/null
docker load -i "$state/app.tar" >/dev/null
out=$(docker run --rm ossb-acceptance/app:latest)
[ "$out" = "hello from /srv/app as 1234:1234 args: one two" ] && pass "entrypoint + cmd + env + workdir + user: $out" || fail "docker run printed: $out"
out=$(docker run --rm ossb-acceptance/app:latest three)
[ "$out" = "hello from /srv/app as 1234:1234 args: three" ] && pass "arguments replace CMD" || fail "docker run IMAGE three printed: $out"
inspect=$(docker image inspect ossb-acceptance/app:latest)
check() { # DESCRIPTION JQ-EXPRESSION
  if jq -e "$2" <<<"$inspect" >/dev/null; then pass "inspect: $1"; else fail "inspect: $1 ($2)"; fi
}
check "Env" '.[0].Config.Env | index("GREETING=hello") != null and index("APP_HOME=/srv/app") != null'
check "WorkingDir" '.[0].Config.WorkingDir == "/srv/app"'
check "User" '.[0].Config.User == "app:app"'
check "ExposedPorts" '.[0].Config.ExposedPorts | keys == ["5353/udp", "8080/tcp"]'
check "Healthcheck" '.[0].Config.Healthcheck == {"Test":["CMD","/bin/true"],"Interval":5000000000,"Timeout":3000000000,"StartPeriod":1000000000,"Retries":2}'
check "Labels" '.[0].Config.Labels["org.example.suite"] == "docker-acceptance"'
check "StopSignal" '.[0].Config.StopSignal == "SIGINT"'
check "Entrypoint and Cmd" '.[0].Config.Entrypoint == ["/srv/app/run.sh"] and .[0].Config.Cmd == ["one","two"]'
check "Architecture and Os" '.[0].Architecture == "amd64" and .[0].Os == "linux"'

# A shell-form CMD and a multi-stage image: the final stage only, with the file made in the first.
mkdir -p "$state/ms"
cat >"$state/ms/Dockerfile" <<EOF
FROM $reg/base/busybox:latest AS build
RUN echo built-in-stage-one > /artifact
FROM $reg/base/busybox:latest
COPY --from=build /artifact /artifact
CMD cat /artifact && echo shell-form
EOF
OSSB_ROOT=$state/store-app "$ossb" build --progress quiet -t ossb-acceptance/ms:latest \
  --output "type=docker,dest=$state/ms.tar" "$state/ms" >/dev/null
docker load -i "$state/ms.tar" >/dev/null
out=$(docker run --rm ossb-acceptance/ms:latest | tr '\n' ' ')
[ "$out" = "built-in-stage-one shell-form " ] && pass "multi-stage image with a shell-form CMD runs" || fail "multi-stage image printed: $out"
inspect=$(docker image inspect ossb-acceptance/ms:latest)
check "shell-form Cmd" '.[0].Config.Cmd == ["/bin/sh","-c","cat /artifact && echo shell-form"]'
docker rmi -f ossb-acceptance/app:latest ossb-acceptance/ms:latest >/dev/null 2>&1 || true

# --- Multi-platform output: each platform's image loads and inspects as that platform ----------
echo "== multi-platform output, one platform at a time into Docker"
arm64_busybox=/usr/local/lib/ossb-test/arm64/busybox
if [ ! -x "$arm64_busybox" ]; then
  fail "no arm64 busybox at $arm64_busybox (scripts/install-deps.sh extracts it)"
else
  mp=$state/mp
  mkdir -p "$mp/rootfs-amd64/bin" "$mp/rootfs-arm64/bin"
  cp /bin/busybox "$mp/rootfs-amd64/bin/busybox"
  cp "$arm64_busybox" "$mp/rootfs-arm64/bin/busybox"
  printf 'FROM scratch\nARG TARGETARCH\nCOPY rootfs-$TARGETARCH/ /\nCMD ["/bin/busybox", "uname", "-m"]\n' >"$mp/Dockerfile"
  OSSB_ROOT=$state/store-mp "$ossb" build --progress quiet --platform linux/amd64,linux/arm64 \
    -t ossb-acceptance/mp:latest --output "type=oci,dest=$state/mp-oci" "$mp" >/dev/null
  blob() { echo "$state/mp-oci/blobs/${1%%:*}/${1#*:}"; }
  index=$(blob "$(jq -r '.manifests[0].digest' "$state/mp-oci/index.json")")
  for arch in amd64 arm64; do
    manifest=$(jq -r --arg a "$arch" '.manifests[] | select(.platform.architecture == $a) | .digest' "$index")
    want_config=$(jq -r '.config.digest' "$(blob "$manifest")")
    # The same build for one platform (served from the cache) into a docker archive.
    OSSB_ROOT=$state/store-mp "$ossb" build --progress quiet --platform "linux/$arch" \
      -t "ossb-acceptance/mp:$arch" --output "type=docker,dest=$state/mp-$arch.tar" "$mp" >/dev/null
    docker load -i "$state/mp-$arch.tar" >/dev/null
    got=$(docker image inspect "ossb-acceptance/mp:$arch" | jq -r '.[0] | "\(.Id) \(.Os)/\(.Architecture)"')
    if [ "$got" = "$want_config linux/$arch" ]; then
      pass "linux/$arch image of the index loads as $got"
    else
      fail "linux/$arch: docker sees '$got', the index says '$want_config linux/$arch'"
    fi
  done
  out=$(docker run --rm ossb-acceptance/mp:amd64)
  [ "$out" = x86_64 ] && pass "the amd64 image runs ($out)" || fail "the amd64 image printed: $out"
  docker rmi -f ossb-acceptance/mp:amd64 ossb-acceptance/mp:arm64 >/dev/null 2>&1 || true
fi

# --- The table ------------------------------------------------------------------------------------
table="| configuration | docker run flags | rung | multi-stage | run-heavy | failing RUN exit | exit on docker stop |
| --- | --- | --- | --- | --- | --- | --- |"
for entry in "${CONFIGS[@]}"; do table+=$'\n'"${table_row[${entry%%|*}]}"; done
echo "$table"
[ -z "$table_out" ] || { mkdir -p "$(dirname "$table_out")"; echo "$table" >"$table_out"; }
echo "docker-acceptance: $failures failure(s)"
[ "$failures" = 0 ]
