#!/usr/bin/env bash
# Cost of the ptrace sandbox (OSSB_SANDBOX=ptrace) against the namespace sandbox: the
# run-heavy workload (30 busybox RUN steps, ../shared/bench) and 30 x `RUN true`, built
# without cache from a local OCI-layout busybox base (no registry, no network), with
# hyperfine. Per RUN step = (t30 - t0) / 30. Run on an idle machine; root or not.
#
#   benches/ptrace.sh [OSSB_BINARY]      (default target/release/ossb; RUNS=5)
set -euo pipefail
cd "$(dirname "$0")/.."
ossb=$(realpath "${1:-target/release/ossb}")
bench=${OSSB_BENCH_DIR:-$(pwd)/../shared/bench}
work=$(mktemp -d /tmp/ossb-ptrace-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/base/rootfs/bin" "$work/base/rootfs/etc" "$work/base/rootfs/tmp" "$work/base/rootfs/root" \
  "$work/base/rootfs/home" "$work/base/rootfs/var/tmp" "$work/ctx0" "$work/ctx30" "$work/rh" \
  "$work/loop" "$work/stat"
cp /bin/busybox "$work/base/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$work/base/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$work/base/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$work/base/rootfs/etc/group"
printf 'hosts: files dns\n' >"$work/base/rootfs/etc/nsswitch.conf"
chmod 1777 "$work/base/rootfs/tmp" "$work/base/rootfs/var/tmp"
printf 'FROM scratch\nCOPY rootfs/ /\n' >"$work/base/Dockerfile"
OSSB_ROOT=$work/store "$ossb" build --progress quiet --output "type=oci,dest=$work/base-oci" "$work/base" >/dev/null
base=oci-layout://$work/base-oci:latest
echo "FROM $base" >"$work/ctx0/Dockerfile"
{ echo "FROM $base"; for _ in $(seq 30); do echo "RUN true"; done; } >"$work/ctx30/Dockerfile"
# 20,000 trapped stat calls, and the same shell loop without them.
printf 'FROM %s\nRUN i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done\n' "$base" >"$work/loop/Dockerfile"
printf 'FROM %s\nRUN i=0; while [ $i -lt 20000 ]; do [ -e /etc/passwd ]; i=$((i+1)); done\n' "$base" >"$work/stat/Dockerfile"
build() { # SANDBOX CTX [DOCKERFILE]
  local df=${3:+-f $3}
  echo "env OSSB_SANDBOX=$1 OSSB_ROOT=$work/store $ossb build --progress quiet --no-cache $df --build-arg BASE=$base --output type=oci,dest=$work/out $2"
}
cmds=()
for s in full ptrace; do
  cmds+=("$(build $s "$work/ctx0")" "$(build $s "$work/ctx30")" "$(build $s "$work/rh" "$bench/workloads/run-heavy/Dockerfile")")
done
cmds+=("$(build ptrace "$work/loop")" "$(build ptrace "$work/stat")")
hyperfine -N --warmup 1 --runs "${RUNS:-5}" --export-markdown "$work/result.md" "${cmds[@]}"
cat "$work/result.md"
python3 - "$work/result.md" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rows = [l for l in text.splitlines() if l.startswith("| `")]
unit = 1.0 if "[ms]" in text else 1000.0
mean = [float(re.split(r"\s*\|\s*", r)[2].split()[0]) * unit for r in rows]
f0, f30, frh, p0, p30, prh, loop, stat = mean
print(f"per RUN step: full {(f30 - f0) / 30:.1f} ms, ptrace {(p30 - p0) / 30:.1f} ms")
print(f"run-heavy: full {frh:.0f} ms, ptrace {prh:.0f} ms, ratio {prh / frh:.2f}")
print(f"trapped stat in the ptrace sandbox: {(stat - loop) * 1000 / 20000:.1f} us per call")
PY
