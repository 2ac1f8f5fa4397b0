#!/usr/bin/env bash
# Fixed cost of a RUN step: a Dockerfile of 30 `RUN true` against the same with 0, built
# without cache; (t30 - t0) / 30 is the per-step cost. OSSB side by side with Buildah
# (chroot isolation, the fastest peer here) in one hyperfine run. Run as root, machine idle;
# needs the peer bench registry and base (../shared/bench: ./registry.sh start && ./make-base.sh).
#
#   benches/run-steps.sh [OSSB_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
ossb=$(realpath "${1:-target/release/ossb}")
base=${BASE:-127.0.0.1:5000/base/busybox:latest}
work=$(mktemp -d /tmp/ossb-run-steps.XXXXXX)
cleanup() { # buildah leaves its overlay mounts behind
  grep " $work/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/ctx30" "$work/ctx0"
{ echo "FROM $base"; for _ in $(seq 30); do echo "RUN true"; done; } >"$work/ctx30/Dockerfile"
echo "FROM $base" >"$work/ctx0/Dockerfile"
export CONTAINERS_REGISTRIES_CONF=$work/registries.conf
printf '[[registry]]\nlocation = "127.0.0.1:5000"\ninsecure = true\n' >"$CONTAINERS_REGISTRIES_CONF"
cmds=()
for n in 0 30; do
  cmds+=("env OSSB_ROOT=$work/ossb-store $ossb build --progress quiet --no-cache --output type=oci,dest=$work/out$n $work/ctx$n")
  cmds+=("buildah --root $work/buildah-root --runroot $work/buildah-run build --isolation chroot --layers=false --tls-verify=false -q -t steps$n $work/ctx$n")
done
# Warm the base image into both stores first (pulls are not what is measured).
for c in "${cmds[@]}"; do $c >/dev/null 2>&1 || true; done
hyperfine -N --warmup 1 --runs "${RUNS:-5}" --export-markdown "$work/result.md" "${cmds[@]}"
cat "$work/result.md"
python3 - "$work/result.md" <<'PY'
import re, sys
rows = [l for l in open(sys.argv[1]) if l.startswith("| `")]
mean = [float(re.split(r"\s*\|\s*", r)[2].split()[0]) for r in rows]
unit = 1.0 if "[ms]" in open(sys.argv[1]).read() else 1000.0
o0, b0, o30, b30 = mean
print(f"per RUN step: ossb {(o30 - o0) * unit / 30:.1f} ms, buildah {(b30 - b0) * unit / 30:.1f} ms")
PY
