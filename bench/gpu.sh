#!/usr/bin/env bash
# The whole GPU measurement in one run of the lent GPU machine (bench/gpu_bench.py), < 8 minutes.
#
# On that machine (no network), winnow's missing dependencies come from the wheels
# bench/gpu_wheels.sh downloaded here; the device tool brings them with `carry: ["bench/gpu_wheels"]`:
#   run(command="bench/gpu.sh", carry=["bench/gpu_wheels"], timeout_s=540)
# Results go to $OUT (what the device tool copies back): gpu.json and gpu.txt.
# Here, on CPU:  PYTHON=.venv/bin/python bench/gpu.sh --quick --out bench/results --name gpu_script_cpu
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-bench/gpu_wheels}
SITE=${SITE:-/tmp/winnow-site}
if ! "$PY" -c "import fastapi, uvicorn, sqlmodel, apscheduler, open_clip, faiss, botocore, redis" \
    2>/dev/null; then
  ls "$WHEELS"/*.whl >/dev/null  # fails with the reason when the wheels did not travel
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHEELS"/*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader || true
fi
exec timeout "${LIMIT_S:-480}" "$PY" -m bench.gpu_bench --out "${OUT:-bench/results}" "$@"
