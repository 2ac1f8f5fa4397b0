#!/usr/bin/env bash
# Builds the peer bench's workloads (../shared/bench/workloads) with ossb, pushes them to a
# real Distribution registry started here, and checks each pushed image with the bench's own
# independent path: skopeo copy -> umoci unpack -> validate.sh. Run as root (validate.sh
# chroots); each workload is built as root and, with --as-user, again as that uid with no
# capabilities and no subuid range, and with --pod in a simulated pod (target/debug/podsim
# from ossb-testkit: restricted, unconfined or root-default), repeatable.
# OSSB_SANDBOX (e.g. ptrace) is passed to the builds.
#
#   scripts/workloads.sh [--as-user UID] [--pod NAME]... [--ossb PATH] [WORKLOAD...]
#   (default workloads: run-heavy multi-stage)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. scripts/lib/harness.sh
bench=${OSSB_BENCH_DIR:-$root/../shared/bench}
ossb=$root/target/debug/ossb
as_user=""
pods=()
workloads=()
while [ $# -gt 0 ]; do
  case $1 in
    --as-user) as_user=$2; shift 2 ;;
    --pod) pods+=("$2"); shift 2 ;;
    --ossb) ossb=$(realpath "$2"); shift 2 ;;
    *) workloads+=("$1"); shift ;;
  esac
done
[ ${#workloads[@]} -gt 0 ] || workloads=(run-heavy multi-stage)
[ -d "$bench/workloads" ] || { echo "workloads: $bench/workloads not found (set OSSB_BENCH_DIR)"; exit 5; }
[ -x "$ossb" ] || { echo "workloads: $ossb is not built (cargo build -p ossb-cli)"; exit 5; }
podsim=$root/target/debug/podsim
if [ ${#pods[@]} -gt 0 ] && [ ! -x "$podsim" ]; then
  echo "workloads: $podsim is not built (cargo build -p ossb-testkit --bin podsim)"; exit 5
fi
[ "$(id -u)" = 0 ] || { echo "workloads: run as root (validate.sh chroots into the image)"; exit 5; }

state=$(mktemp -d /tmp/ossb-workloads.XXXXXX)
chmod 0755 "$state"
reg_pid=""
cleanup() { [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null; rm -rf "$state"; }
trap cleanup EXIT

harness_start_registry "$state"
reg_pid=$REG_PID
reg=$REG
# The busybox base, made and pushed by ossb itself (no network, no other builder).
harness_push_base "$ossb" "$state" "$reg/base/busybox:latest"

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
  grep -o 'build finished in [0-9.]*s' "$home/build.log" | tail -1 | sed 's/^/  /' || true
  if harness_validate "$bench" "$w" "$ref" "$ctx" "$state/validate-$label-$w"; then
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
  for pod in ${pods[@]+"${pods[@]}"}; do
    run_one "$w" "pod-$pod" "$podsim" "$pod" --
    grep -o 'RUN steps use the [a-z]* sandbox' "$state/home-pod-$pod-$w/build.log" | head -1 | sed 's/^/  /' || true
  done
done
echo "workloads: $passed passed, $failed failed"
[ "$failed" = 0 ]
