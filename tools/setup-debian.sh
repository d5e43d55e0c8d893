#!/usr/bin/env bash
# Installs the system libraries Elucidate builds against (Debian 12 / Ubuntu 22.04+).
# Needs root (uses sudo when not root). Swift itself must already be installed.
#
#   tools/setup-debian.sh           what building, running and testing need (the built-in
#                                   model and its test slice are committed)
#   tools/setup-debian.sh --train   also dataset-fashion-mnist, which tools/train_builtin.py
#                                   reads (it needs python3 with torch, numpy, safetensors, Pillow)
set -euo pipefail
# time: GNU time, with which the hostile-input tests measure each run's peak memory.
# patchelf: tools/install.sh gives the installed libelucidate.so its soname and RUNPATH.
packages=(libopenblas-dev liblapacke-dev libpng-dev libturbojpeg0-dev pkg-config time patchelf)
for argument in "$@"; do
    case "$argument" in
        --train) packages+=(dataset-fashion-mnist) ;;
        *) echo "setup-debian.sh: unknown option $argument (known: --train)" >&2; exit 2 ;;
    esac
done
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
