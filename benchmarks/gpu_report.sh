#!/usr/bin/env bash
# Every GPU measurement of the package in one go, written as one table (benchmarks/gpu_table.py).
#
#   benchmarks/gpu_report.sh [OUT_DIR]        # default OUT_DIR: gpu_report/ (JSON per run + table.md)
#
# Runs on one CUDA device in under 10 minutes: both network variants (shipped Ocean-Lite; ResNet-50 Ocean on the
# golden random weights, whose speed equals the official checkpoints'), float32 and float16, the classic eager
# step and the captured CUDA-graph step, torch and TensorRT (where installed; the first run builds the engines),
# offline and online, and the node's end-to-end latency at 640x480 through
# the real node (a 1-minute soak; skipped with a note where rclpy is not importable). TF32 stays at torch's
# defaults (off for matmul). Needs $OCEAN_ROS_DATA or ../shared/data for the golden weights and sequences.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_report}
PY=${PYTHON:-python3}
DATA=${OCEAN_ROS_DATA:-$(cd .. && pwd)/shared/data}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')"
SEQ="$DATA/sequences/bag"
FRAMES=${FRAMES:-120}

run() { echo "+ $*" >&2; "$@"; }
# TensorRT rows (engines built from the exported graphs on first use, cached by GPU and TensorRT version under
# ~/.cache/ocean_ros/tensorrt; float16 engines from float16 graphs): skipped with a note where tensorrt is missing.
BACKENDS="torch"
if "$PY" -c "import tensorrt" 2>/dev/null; then BACKENDS="torch tensorrt"
else echo "TensorRT rows skipped: the tensorrt package is not importable (pip install tensorrt)" >&2; fi
run "$PY" benchmarks/bench_tracker.py --device cuda --half both --mode eager graph --sequence "$SEQ" \
    --backend $BACKENDS --frames "$FRAMES" --warmup 10 --json "$OUT/lite_offline.json"
run "$PY" benchmarks/bench_tracker.py --device cuda --half both --mode eager graph --sequence "$SEQ" \
    --backend $BACKENDS --frames "$FRAMES" --warmup 10 --checkpoint "$DATA/golden/ocean_random_seed1.pth" \
    --preset VOT2019 --json "$OUT/resnet_offline.json"
run "$PY" benchmarks/bench_online.py --device cuda --mode eager graph --sequence "$SEQ" --preset VOT2019ON \
    --frames "$FRAMES" --warmup 10 --json "$OUT/resnet_online_fp32.json"
run "$PY" benchmarks/bench_online.py --device cuda --half --mode eager graph --sequence "$SEQ" --preset VOT2019ON \
    --frames "$FRAMES" --warmup 10 --json "$OUT/resnet_online_fp16.json"
if "$PY" -c "import torch, sys; from ocean_ros.core.checkpoint import load_model; \
net, _ = load_model('ocean_ros/models/ocean_lite.pth'); sys.exit(0 if getattr(net, 'has_classifier', False) else 1)"; then
    run "$PY" benchmarks/bench_online.py --device cuda --mode eager graph --sequence "$SEQ" --online \
        --checkpoint ocean_ros/models/ocean_lite.pth --preset LITE --frames "$FRAMES" --warmup 10 \
        --json "$OUT/lite_online_fp32.json"
fi
if "$PY" -c "import rclpy" 2>/dev/null; then
    run "$PY" benchmarks/soak.py --minutes 1 --device cuda --width 640 --height 480 --malformed 0 \
        --out "$OUT/node_soak.png" || echo "soak reported a FAIL (see $OUT/node_soak.json)" >&2
else
    echo "node latency skipped: rclpy is not importable here (source ROS 2 or the venv first)" >&2
fi
run "$PY" benchmarks/gpu_table.py "$OUT" | tee "$OUT/table.md"
