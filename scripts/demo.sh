#!/usr/bin/env bash
# Main job: set up .venv if needed, then run the tracker node end to end on the bundled real sequence
# (ocean_ros/data/Crossing): frames published at 30 Hz as a camera would, the first ground-truth box sent as the
# init, detections collected; prints frames, latency and accuracy, and writes the boxes file.
#   scripts/demo.sh [ocean_demo options...]     e.g. --checkpoint OceanV.pth --device cuda --sequence DIR
# Weights: --checkpoint or $OCEAN_CHECKPOINT (an official Ocean .pth, README "Checkpoints"); without one the
# node runs the shipped Ocean-Lite model (ocean_ros/models/, model card there).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/setup_env.py >&2
exec .venv/bin/ocean_demo "$@"
