#!/usr/bin/env bash
# Installs the system libraries Elucidate builds against (Debian 12 / Ubuntu 22.04+).
# Needs root (uses sudo when not root). Swift itself must already be installed.
set -euo pipefail
packages=(libopenblas-dev liblapacke-dev libpng-dev libturbojpeg0-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
