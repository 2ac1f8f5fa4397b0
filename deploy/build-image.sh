#!/usr/bin/env bash
# Builds OSSB's own image with OSSB: a static ossb binary (glibc, `+crt-static`; the musl
# target cannot be installed on these machines, see docs/deploy.md) on scratch.
#
#   deploy/build-image.sh [--output SPEC]     (default: type=docker,dest=ossb-image.tar)
#   docker load -i ossb-image.tar && docker run --rm ossb/ossb:dev version
set -euo pipefail
cd "$(dirname "$0")/.."
out=${2:-type=docker,dest=ossb-image.tar}
[ "${1:-}" = --output ] || out=type=docker,dest=ossb-image.tar
target=x86_64-unknown-linux-gnu
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$target" -p ossb-cli
bin=target/$target/release/ossb
# `file` says "static-pie linked" (or "statically linked") for a binary with no loader.
if ! file "$bin" | grep -qE 'static(-pie)? linked|statically linked'; then
  echo "build-image: $bin is not static" >&2; exit 1
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/tmp"
cp "$bin" "$ctx/ossb"
cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nossb:x:1000:1000:ossb:/home/ossb:/sbin/nologin\n' >"$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nossb:x:1000:\n' >"$ctx/rootfs/etc/group"
chmod 1777 "$ctx/rootfs/tmp"
cp deploy/Dockerfile "$ctx/Dockerfile"
"$bin" build --progress plain -t ossb/ossb:dev --output "$out" "$ctx"
