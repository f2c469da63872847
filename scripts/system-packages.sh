#!/usr/bin/env bash
# Installs the Debian packages irnet-edge needs (cross compilers, QEMU, OpenOCD, Fashion-MNIST) when one
# is missing. As root on Debian/Ubuntu it runs apt-get; otherwise it prints the exact command and fails.
set -euo pipefail
packages=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm qemu-user gcc-aarch64-linux-gnu
          libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross openocd dataset-fashion-mnist
          clang lld cmake)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
line="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing system packages: ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    echo "irnet-edge needs these system packages: ${missing[*]}" >&2
    echo "install them as root with:" >&2
    echo "  $line" >&2
    exit 1
fi
