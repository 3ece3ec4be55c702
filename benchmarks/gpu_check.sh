#!/usr/bin/env bash
# The GPU check on a machine with CUDA and no network (docs/gpu.md), in one call from the repository root:
#   bash benchmarks/gpu_check.sh [OUT.json] [exgrpo gpu-check options, e.g. --shape qwen2.5-7b]
# Installs the wheels `make gpu-wheels` put in wheels/gpu into a venv that sees the machine's own torch
# (nothing of the system Python changes), then runs `exgrpo gpu-check` from src/.
set -euo pipefail
OUT=${1:-runs/gpu-check/gpu_check.json}
shift || true
VENV=${GPU_CHECK_VENV:-/tmp/exgrpo-gpu-check-venv}
PYTHON=${PYTHON:-python3}
if [ ! -d wheels/gpu ]; then
  echo "wheels/gpu not found: run 'make gpu-wheels' where there is network, and carry wheels/gpu" >&2
  exit 2
fi
"$PYTHON" -m venv --system-site-packages "$VENV"
"$VENV/bin/python" -m pip install --quiet --no-index --no-deps wheels/gpu/*.whl
"$VENV/bin/python" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'available:', torch.cuda.is_available())"
TRL_EXPERIMENTAL_SILENCE=1 PYTHONPATH=src "$VENV/bin/python" -m exgrpo.cli gpu-check --out "$OUT" "$@"
