#!/usr/bin/env bash
# Install the Debian packages libapd needs to build, test and run its main job.
# Installs nothing when everything is already present. Needs root (or sudo) only
# when something is missing.
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config
  libzstd-dev libpng-dev liblmdb-dev libopenblas-pthread-dev libopenblas-dev
  check libsubunit-dev libjpeg62-turbo-dev zlib1g-dev
  python3 python3-numpy python3-lmdb python3-zstandard python3-pytest
  dataset-fashion-mnist
  libopenmpi-dev openmpi-bin
)
# Extra packages requested by the caller, e.g. APD_EXTRA_PKGS="python3-torch clang".
if [ -n "${APD_EXTRA_PKGS:-}" ]; then
  read -r -a extra <<<"$APD_EXTRA_PKGS"
  pkgs+=("${extra[@]}")
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
