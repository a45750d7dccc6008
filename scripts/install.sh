#!/usr/bin/env bash
# Create .venv, install scbranch with its test extras, and run the demo (the main job) once.
# torch is pinned through constraints.txt *before* scvi-tools, so pip never resolves a CUDA build here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt "torch==2.13.0"
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev,doc]"
.venv/bin/python -c "import importlib.metadata as m, torch, scvi, scbranch; print('scbranch', scbranch.__version__, '| torch', torch.__version__, '| scvi-tools', scvi.__version__, '| scanpy', m.version('scanpy'))"
# the main job on a shipped real data set (scanpy's pbmc68k_reduced): fit, generate, quality report
.venv/bin/scbranch demo --no-progress
