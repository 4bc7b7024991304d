#!/usr/bin/env bash
# The device check of the GPU path (issue 14): parity with the CPU and throughput, under 8 min.
#   here, once:  bash tools/gpu_check.sh prepare    # fills .device/ (git-ignored, ~57 MiB) from
#                                                   # ../shared: dlib's model files, photos
#   there:       bash tools/gpu_check.sh            # with .device carried; results in $OUT
#                (device tool: run with carry [".device"], timeout_s 540)
#   anywhere:    bash tools/gpu_check.sh --dry-run  # the same on CPU, 100 photos: tries the script
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = prepare ]; then
    exec "${PYTHON:-.venv/bin/python}" bench/gpu_check.py prepare
fi
if [ "${1:-}" = --dry-run ]; then
    PYTHONPATH="$PWD/src" exec "${PYTHON:-.venv/bin/python}" bench/gpu_check.py run --dry-run \
        --out "${OUT:-/tmp/gpu-check-dry}"
fi
# the bare GPU machine has no internet: dlib's model files travel in .device, as a cache
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export FACEDIST_CACHE="$PWD/.device/cache" FACEDIST_OFFLINE=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
exec python3 bench/gpu_check.py run --out "${OUT:-bench/results-gpu}"
