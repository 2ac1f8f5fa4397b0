#!/usr/bin/env bash
# Runs every test: the whole workspace as the current user (root in CI), then the test binaries
# again as an unprivileged user (uid 1000, no capabilities), because rootless is the point.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --all-targets --locked --no-fail-fast

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  echo "== tests again as uid 1000 with no capabilities"
  # Test binaries, built above, are run directly so no cargo state is written as uid 1000.
  list=$(cargo test --workspace --locked --no-run --message-format=json 2>/dev/null |
    jq -r 'select(.reason=="compiler-artifact" and .profile.test==true and .executable!=null)
           | "\(.manifest_path) \(.executable)"')
  scratch=$(mktemp -d); chmod 0777 "$scratch"
  fail=0
  while read -r manifest bin; do
    [ -n "$bin" ] || continue
    echo "-- $(basename "$bin") as uid 1000"
    # Like cargo, run each binary from its package directory.
    if ! (cd "$(dirname "$manifest")" && env -i PATH="$PATH" HOME="$scratch" TMPDIR="$scratch" \
          CI="${CI:-}" ${OSSB_CONFORMANCE_DIR:+OSSB_CONFORMANCE_DIR="$OSSB_CONFORMANCE_DIR"} \
          setpriv --reuid=1000 --regid=1000 --clear-groups --inh-caps=-all "$bin" -q); then
      fail=1
    fi
  done <<< "$list"
  rm -rf "$scratch"
  [ "$fail" = 0 ] || { echo "tests as uid 1000 failed"; exit 1; }
fi

if [ "$(id -u)" = 0 ]; then
  echo "== bench workloads built by ossb, checked by skopeo, umoci and validate.sh"
  # Each as root and as uid 1000 with no capabilities and no subuid range.
  scripts/workloads.sh --as-user 1000 run-heavy multi-stage
fi

if [ "$(id -u)" = 0 ]; then
  echo "== acceptance in real restricted Docker containers (skipped without a Docker Engine)"
  tests/docker-acceptance.sh --table target/docker-acceptance/table.md
fi
