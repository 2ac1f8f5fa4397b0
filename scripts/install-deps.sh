#!/usr/bin/env bash
# Installs the Debian packages OSSB's tests use (real registry, independent image checkers, a
# busybox to make base images from, uid mapping tools). Needs root; idempotent.
set -euo pipefail
pkgs=(docker-registry skopeo umoci busybox-static uidmap apache2-utils openssl ca-certificates
      gzip xz-utils bzip2 zstd attr jq util-linux qemu-user-static)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages ${missing[*]}; run this script as root" >&2
    exit 5
  fi
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "install-deps: cargo not found; install Rust (rustup) first" >&2; exit 5; }

# An arm64 static busybox for the multi-platform tests (a second architecture's base image):
# Debian's busybox-static for arm64, extracted, never installed. Tests skip without it.
ARM64_BUSYBOX=/usr/local/lib/ossb-test/arm64/busybox
if [ ! -x "$ARM64_BUSYBOX" ] && [ "$(id -u)" = 0 ]; then
  dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64; apt-get update; }
  tmp=$(mktemp -d)
  if (cd "$tmp" && chmod 777 . && apt-get download busybox-static:arm64 && dpkg-deb -x busybox-static_*_arm64.deb x); then
    install -D -m 0755 "$tmp/x/bin/busybox" "$ARM64_BUSYBOX"
  else
    echo "install-deps: could not fetch busybox-static:arm64; multi-platform tests will skip" >&2
  fi
  rm -rf "$tmp"
fi
