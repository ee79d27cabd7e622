#!/bin/sh
# Installs the Debian packages lucid-vk needs for a target, when missing.
#   scripts/bootstrap.sh build   compile lucid-vk and run it (lavapipe included)
#   scripts/bootstrap.sh test    also the test suite's needs
#   scripts/bootstrap.sh bench   also PyTorch for the side-by-side benchmark
# As root it runs apt-get itself; otherwise it prints the exact command.
set -eu

build="cmake make gcc g++ pkg-config libvulkan-dev libvulkan1 libvulkan-volk-dev
glslang-tools glslang-dev libvkfft-dev libpng-dev zlib1g-dev libprotobuf-c-dev
protobuf-c-compiler libonnx-dev libqhull-dev mesa-vulkan-drivers"
test="$build libcmocka-dev libonnx-testdata vulkan-validationlayers dataset-fashion-mnist chromium"
bench="$build python3-torch python3-numpy python3-onnx"

case "${1:-build}" in
    build) want=$build ;;
    test) want=$test ;;
    bench) want=$bench ;;
    *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -eq 0 ]; then
    echo "lucid-vk: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    $cmd
else
    echo "lucid-vk: missing Debian packages. Run as root:" >&2
    echo "  apt-get update && $cmd" >&2
    exit 1
fi
