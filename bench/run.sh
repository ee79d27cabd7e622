#!/bin/sh
# make bench: lucid-vk's speed against PyTorch on the same machine (see
# bench/README.md). Not a test: it checks only that both compute the same
# outputs.
#   bench/run.sh [BUILD_DIR]     (default: build, relative to the repository)
# Builds bench/bench_forward and bench/bench_render against
# BUILD_DIR/liblucidvk.a, then runs each
# workload section below; each prints Markdown that is also appended to
# bench/results/<YYYY-MM-DD>-<device>-<driver>.md (rewritten by every run).
# Settings, from the environment:
#   LVK_BENCH_BATCHES  batch sizes (default "1 8")
#   LVK_BENCH_BUDGET   seconds of timed rounds per network and batch (default
#                      40; at least 3 rounds are run whatever it says)
#   LVK_BENCH_OUT      results file (default as above)
#   LVK_BENCH_PARTS    which workloads run (default "forward render")
#   LVK_BENCH_RENDER_STEPS  steps of each render (default 512, Lucid's)
#   LVK_BENCH_RENDER_REPS   renders per engine and workload (default 3)
#   LVK_BENCH_TORCH_DEVICE  PyTorch's device (default cpu: the CPU lavapipe
#                      runs on; cuda beside NVIDIA's Vulkan driver)
#   LVK_BENCH_PYTHON   the interpreter that has PyTorch (default /usr/bin/python3,
#                      Debian's python3-torch; a CUDA build lives elsewhere)
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${1:-build}
python=${LVK_BENCH_PYTHON:-/usr/bin/python3}
torch_device=${LVK_BENCH_TORCH_DEVICE:-cpu}
shared=$root/../shared

# ---- the benchmark program ------------------------------------------------------
# It is not part of the CMake project: compiled here against the built static
# library, with what liblucidvk.a links (see CMakeLists.txt). When the library
# carries VkFFT, that includes glslang's static libraries (C++, so -lstdc++);
# the group lets the linker resolve their mutual references in any order.
build_programs() {
    extra=""
    if nm "$build/liblucidvk.a" 2>/dev/null | grep -q ' U glslang_'; then
        extra="-Wl,--start-group"
        for l in glslang SPIRV MachineIndependent OGLCompiler OSDependent GenericCodeGen \
                 glslang-default-resource-limits SPIRV-Tools-opt SPIRV-Tools; do
            # gcc prints the bare name when it finds no such library (newer
            # glslang releases merged some of them)
            if [ "$(gcc -print-file-name=lib$l.a)" != "lib$l.a" ]; then
                extra="$extra -l$l"
            fi
        done
        extra="$extra -Wl,--end-group -lstdc++"
    fi
    for prog in bench_forward bench_render; do
        gcc -std=c11 -O2 -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -DVK_NO_PROTOTYPES \
            -Iinclude -Isrc -I"$build/generated" "bench/$prog.c" "$build/liblucidvk.a" \
            -lprotobuf-c -lpng -lz -ldl -lm -lpthread $extra -o "$build/$prog"
    done
}
# Without the library, programs already built there are used as they are
# (copied to a machine that has a GPU but not lucid-vk's build dependencies).
if [ -f "$build/liblucidvk.a" ]; then
    build_programs
elif [ -x "$build/bench_forward" ] && [ -x "$build/bench_render" ]; then
    echo "bench: no $build/liblucidvk.a: using the programs already built in $build" >&2
else
    echo "bench: $build/liblucidvk.a missing: run 'make build'" >&2
    exit 1
fi
bin=$build/bench_forward

# ---- the results file -------------------------------------------------------------
slugify() { printf '%s' "$1" | tr 'A-Z' 'a-z' | sed 's/[^a-z0-9][^a-z0-9]*/-/g; s/^-//; s/-$//'; }
ident=$("$bin" --device-name)
device=$(printf '%s\n' "$ident" | sed -n 1p)
driver=$(printf '%s\n' "$ident" | sed -n 2p)
# The driver's version is part of the name: two Mesa releases report the same
# llvmpipe device ("llvmpipe Mesa 25.0.7 (LLVM 15.0.6)" gives mesa-25-0-7;
# the driver's name is left out where the device's starts with it).
drv=$(slugify "$(printf '%s' "$driver" | sed 's/([^)]*)//g')")
dev=$(slugify "$device")
case $drv in "${dev%%-*}"-*) drv=${drv#*-} ;; esac
slug=$dev${drv:+-$drv}
out=${LVK_BENCH_OUT:-bench/results/$(date +%F)-$slug.md}
mkdir -p "$(dirname "$out")"
parts=${LVK_BENCH_PARTS:-forward render}
for p in $parts; do
    case $p in
        forward|render) ;;
        *) echo "bench: LVK_BENCH_PARTS: unknown part '$p' (forward, render)" >&2; exit 2 ;;
    esac
done
wants() { case " $parts " in *" $1 "*) return 0 ;; esac; return 1; }
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit + uncommitted changes"
cpu=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)
{
    echo "# lucid-vk benchmark, $(date +%F)"
    echo
    echo "- commit: $commit"
    echo "- device: $device"
    echo "- driver: ${driver:-unknown}"
    echo "- CPU: ${cpu:-unknown}, $(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- command: make bench (bench/run.sh), parts: $parts; columns are explained in bench/README.md"
    echo
} > "$out"

# Runs a section: its Markdown goes to the terminal and the results file
# (through a file, so that a failing section stops the run).
section() {
    "$@" > "$out.part"
    echo >> "$out.part"
    tee -a "$out" < "$out.part"
    rm -f "$out.part"
}

# ---- workload: forward and input gradient of whole networks -------------------
# lucid-vk and PyTorch side by side, interleaved round by round (the machine
# is shared and noisy), plus lucid-vk with its classic direct convolution
# kernel (the reference the tuned kernels are measured against) at batch 1.
nets() {
    echo "## Forward and input gradient, lucid-vk and PyTorch"
    echo
    batches=""
    for b in ${LVK_BENCH_BATCHES:-1 8}; do batches="$batches --batch $b"; done
    $python bench/torch_forward.py compare --lvk "$bin" $batches \
        --round-budget "${LVK_BENCH_BUDGET:-40}" \
        --net "MobileNet V2 1.0=$shared/models/mobilenet_v2_1.0_224.onnx:-1,1" \
        --net "MobileNet V1 0.25=$shared/models/mobilenet_v1_0.25_224.onnx:-1,1" \
        --net "GoogLeNet (random weights)=$shared/torch/googlenet_random.onnx:-1,1" \
        --variant "classic conv kernel:LVK_CONV_KERNEL=classic" --torch-device "$torch_device"
}
if wants forward; then section nets; fi

# ---- workload: Lucid's render recipe ------------------------------------------------
# Whole renders (spectral image, decorrelated colour, standard transforms,
# Adam) of one channel objective per image on a mid layer, lucid-vk's
# lvk_render against the same recipe in PyTorch, renders alternating.
# GoogLeNet's export expects torchvision's ImageNet normalisation.
render() {
    echo "## Render: Lucid's recipe, lucid-vk and PyTorch"
    echo
    batches=""
    for b in ${LVK_BENCH_BATCHES:-1 8}; do batches="$batches --batch $b"; done
    $python bench/torch_render.py compare --lvk "$build/bench_render" $batches \
        --steps "${LVK_BENCH_RENDER_STEPS:-512}" --reps "${LVK_BENCH_RENDER_REPS:-3}" \
        --torch-device "$torch_device" \
        --net "name=GoogLeNet (random weights);model=$shared/torch/googlenet_random.onnx;layer=inception4d;range=0,1;mean=0.485,0.456,0.406;std=0.229,0.224,0.225" \
        --net "name=MobileNet V2 1.0;model=$shared/models/mobilenet_v2_1.0_224.onnx;layer=MobilenetV2/expanded_conv_11/expand/Relu6;range=-1,1"
}
if wants render; then section render; fi

# ---- further workloads --------------------------------------------------------------
# Add a function printing a Markdown section ("## Title", then tables) and
# call it with `section NAME` here (and a part name for LVK_BENCH_PARTS).

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out"
echo "bench: results in $out" >&2
