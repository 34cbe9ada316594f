#!/usr/bin/env bash
# Create .venv (if missing) and install the project with its pinned dependencies.
# Usage: bash setup.sh        (idempotent; re-run after pulling)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet -e ".[test,zarr,realism]"
.venv/bin/python -c "import autodecoder, torch; print(f'set up: autodecoder {autodecoder.__version__}, torch {torch.__version__}')"
