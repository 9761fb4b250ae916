#!/usr/bin/env bash
# Main job: set up .venv if needed, then track a bundled real sequence with the Ocean tracker and print
# per-frame boxes, speed and accuracy.
#   scripts/demo.sh [SEQUENCE_FOLDER] [ocean_track_sequence options...]
# Weights: $OCEAN_CHECKPOINT (e.g. an official OceanV.pth); default: the reference checkpoint of the project's
# data folder, which has TracKit's exact format but random values (it proves the computation, it tracks nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/setup_env.py >&2

data="${OCEAN_ROS_DATA:-../shared/data}"
sequence="${1:-$data/sequences/Crossing}"
shift $(( $# > 0 ? 1 : 0 ))
checkpoint="${OCEAN_CHECKPOINT:-$data/golden/ocean_random_seed1.pth}"
if [ ! -f "$checkpoint" ]; then
  echo "no checkpoint at $checkpoint: set OCEAN_CHECKPOINT to an Ocean .pth (README 'Checkpoints')" >&2
  exit 2
fi
exec .venv/bin/ocean_track_sequence "$sequence" --checkpoint "$checkpoint" "$@"
