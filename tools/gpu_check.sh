#!/usr/bin/env bash
# The device check of the GPU path (issue 14): parity with the CPU and throughput, under 8 min.
#   here, once:  bash tools/gpu_check.sh prepare    # fills .device/ (git-ignored, ~57 MiB) from
#                                                   # ../shared and PyPI: dlib-bin, dlib's files, photos
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
# the bare GPU machine lacks dlib: its wheel and model files travel in .device
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .device/whl/*.whl
export PYTHONPATH="$PWD/src:/tmp/site:$PWD/.device${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
exec python3 bench/gpu_check.py run --out "${OUT:-bench/results-gpu}"
