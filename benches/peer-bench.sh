#!/usr/bin/env bash
# OSSB side by side with the peer builders, through the shared peer bench
# (../shared/bench, see its README "Adding OSSB"): one interleaved run, the same
# registry, base image, contexts, timing and validation (skopeo, umoci, validate.sh)
# for every builder. Run as root on an otherwise idle machine.
#
#   benches/peer-bench.sh                       # buildah-chroot vs ossb, RUNS=1
#   RUNS=3 CONFIGS="buildah-chroot podman-chroot ossb" WORKLOADS="copy-heavy" benches/peer-bench.sh
#
# Results: /tmp/ossb-bench/results/<UTC time>/summary.md (ratios to buildah-chroot).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bench=${OSSB_BENCH_DIR:-$root/../shared/bench}
cargo build --release --locked -p ossb-cli
export OSSB=$root/target/release/ossb
export RUNS=${RUNS:-1}
export CONFIGS=${CONFIGS:-"buildah-chroot ossb"}
export WORKLOADS=${WORKLOADS:-"copy-heavy run-heavy multi-stage cache-rebuild"}
cd "$bench"
./registry.sh start
[ -d /tmp/ossb-bench/base/oci ] || ./make-base.sh
./run-peers.sh
