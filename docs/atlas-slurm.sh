#!/bin/bash
# An atlas as a Slurm job array: one shard per array task, one GPU each, all
# writing into one site directory on a shared file system, then one small
# job that merges the parts into the site.
#
# Submit from a login node (this script submits itself):
#
#   docs/atlas-slurm.sh MODEL.onnx SITE_DIR LAYER[,LAYER...] [lucidvk atlas options...]
#   SHARDS=16 docs/atlas-slurm.sh mobilenet_v2_1.0_224.onnx /shared/atlas-v2 \
#       MobilenetV2/expanded_conv_3/expand/Relu6,MobilenetV2/Conv_1/Relu6 --range -1,1
#
# Environment: SHARDS (array size, default 8), LUCIDVK (path to the binary,
# default lucidvk on PATH), SBATCH_EXTRA (more sbatch options for both jobs,
# e.g. "--partition=gpu --account=me").
#
# A task that dies (preemption, node failure, time limit) loses at most the
# batch it was rendering: --requeue reruns it, and the rerun resumes from the
# shard's manifest. Rerunning the whole array after a failure does the same:
# finished shards find nothing to do. The merge job runs when every task has
# succeeded; 'lucidvk atlas-merge SITE_DIR' by hand does the same at any time
# (with --partial for a site with gaps).
#
# Devices: lucidvk uses the first discrete GPU Vulkan lists. Vulkan ignores
# CUDA_VISIBLE_DEVICES, so each task must see only its own GPU, which Slurm
# arranges with ConstrainDevices=yes in cgroup.conf (the usual setup). Where
# it does not, set LVK_DEVICE to the GPU's name or Vulkan index per task.

#SBATCH --job-name=lucidvk-atlas
#SBATCH --gpus-per-task=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=08:00:00
#SBATCH --requeue
#SBATCH --output=lucidvk-atlas-%A_%a.log

set -euo pipefail

lucidvk=${LUCIDVK:-lucidvk}

if [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then
    # On the login node: check the arguments, then submit the array and the
    # merge that waits for it.
    if [ $# -lt 3 ]; then
        sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2
        exit 2
    fi
    shards=${SHARDS:-8}
    site=$2
    mkdir -p "$site"
    # shellcheck disable=SC2086  # SBATCH_EXTRA is a list of options
    jid=$(sbatch --parsable ${SBATCH_EXTRA:-} --array="0-$((shards - 1))" "$0" "$@")
    # shellcheck disable=SC2086
    mid=$(sbatch --parsable ${SBATCH_EXTRA:-} --dependency="afterok:${jid%%;*}" --job-name=lucidvk-atlas-merge \
        --cpus-per-task=1 --mem=4G --time=01:00:00 \
        --output="lucidvk-atlas-merge-%j.log" --wrap="$(printf '%q atlas-merge %q' "$lucidvk" "$site")")
    echo "submitted array job ${jid%%;*} ($shards shards) and merge job ${mid%%;*}; site: $site/index.html"
    exit 0
fi

# In an array task: render this task's shard. --shard auto reads
# SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT.
model=$1
site=$2
layers=$3
shift 3
echo "task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_TASK_COUNT on $(hostname)"
exec "$lucidvk" atlas "$model" -l "$layers" -o "$site" --shard auto "$@"
