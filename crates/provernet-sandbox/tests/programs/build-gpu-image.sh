#!/usr/bin/env bash
# Builds the OCI image of the GPU probe (gpu_probe.c) for the sandbox's GPU check, offline,
# from Debian's gcc and umoci: layer 1 the C library it loads, layer 2 the probe.
# Usage: build-gpu-image.sh OUT_DIR [NVIDIA_REQUIRE_CUDA]
set -euo pipefail
out="$1"
require="${2:-cuda>=11.0}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
gcc -O2 -Wall -o "$work/gpu-probe" "$here/gpu_probe.c" -ldl -lpthread
rm -rf "$out"
umoci init --layout "$out"
umoci new --image "$out:probe"
umoci unpack --rootless --image "$out:probe" "$work/bundle"
# The probe's own libraries, and what the driver's libraries load from the image (as any
# distribution's base image has them): libm, libdl, libpthread, librt, libgcc_s.
extra=$(ldd /bin/ls | grep -o '/[^ ]*libc.so.6' | xargs dirname)
for lib in $(ldd "$work/gpu-probe" | grep -o '/[^ ]*') \
  "$extra/libm.so.6" "$extra/libdl.so.2" "$extra/libpthread.so.0" "$extra/librt.so.1" "$extra/libgcc_s.so.1"; do
  mkdir -p "$work/bundle/rootfs$(dirname "$lib")"
  cp -L "$lib" "$work/bundle/rootfs$lib"
done
umoci repack --image "$out:probe" "$work/bundle"
rm -rf "$work/bundle"
umoci unpack --rootless --image "$out:probe" "$work/bundle"
install -D -m 0755 "$work/gpu-probe" "$work/bundle/rootfs/usr/local/bin/gpu-probe"
umoci repack --image "$out:probe" "$work/bundle"
umoci config --image "$out:probe" --config.entrypoint /usr/local/bin/gpu-probe \
  --config.env "PATH=/usr/local/bin:/usr/bin:/bin" --config.env "NVIDIA_REQUIRE_CUDA=$require"
umoci gc --layout "$out"
echo "built $out"
