#!/usr/bin/env bash
# Installs the Debian packages OSSB's tests use (real registry, independent image checkers, a
# busybox to make base images from, uid mapping tools). Needs root; idempotent.
set -euo pipefail
pkgs=(docker-registry skopeo umoci busybox-static uidmap apache2-utils openssl ca-certificates
      gzip xz-utils bzip2 zstd attr jq util-linux)
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
