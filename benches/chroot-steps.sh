#!/usr/bin/env bash
# The baseline for a RUN-heavy workload: each RUN line of a Dockerfile run alone, one after the
# other, in a chroot of a copy of the bench's busybox rootfs (no overlay, no layers, no
# builder), timed with /usr/bin/time. Compare its user+sys with a build's to see how much CPU
# is the steps' own work. Single-line RUNs only (the bench workloads have no continuations).
#
#   benches/chroot-steps.sh [DOCKERFILE] [ROOTFS]   (as root)
#   default: ../shared/bench/workloads/run-heavy/Dockerfile, /tmp/ossb-bench/base/rootfs
#   (made by ../shared/bench/make-base.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
df=${1:-../shared/bench/workloads/run-heavy/Dockerfile}
base=${2:-/tmp/ossb-bench/base/rootfs}
[ "$(id -u)" = 0 ] || { echo "chroot-steps: run as root (chroot)"; exit 5; }
[ -d "$base" ] || { echo "chroot-steps: $base not found (run ../shared/bench/make-base.sh)"; exit 5; }
work=$(mktemp -d /tmp/ossb-chroot-steps.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
cp -a "$base" "$root"
mkdir -p "$root/proc" "$root/dev"
mknod -m 666 "$root/dev/null" c 1 3
mknod -m 666 "$root/dev/zero" c 1 5
n=0
grep '^RUN ' "$df" | sed 's/^RUN //' | while IFS= read -r cmd; do
  n=$((n + 1))
  printf '%s\n' "$cmd" >"$root/.step.sh"
  /usr/bin/time -f '%e %U %S' -o "$work/t.$n" chroot "$root" /bin/sh /.step.sh </dev/null >/dev/null
  printf '%2d  wall %5s  user %5s  sys %5s  %s\n' "$n" $(cat "$work/t.$n") "${cmd:0:60}"
done
cat "$work"/t.* | awk '{e += $1; u += $2; s += $3} END {printf "total  wall %.2f s  user %.2f s  sys %.2f s\n", e, u, s}'
