#!/usr/bin/env bash
# Installs minimind-tui into ./.venv. Usage: scripts/install.sh [--test]
# On a box without an NVIDIA GPU it installs the CPU build of torch first, so pip
# never pulls the multi-GB CUDA build just to satisfy "torch>=2.6".
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${MINIMIND_VENV:-.venv}
extra=""
[ "${1:-}" = "--test" ] && extra="[test]"

if [ ! -x "$VENV/bin/python" ]; then
    # System site-packages let an already installed torch be reused as it is.
    "$PY" -m venv --system-site-packages "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "$@"; }

if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        pip install "torch>=2.6"
    else
        echo "No NVIDIA GPU found: installing the CPU build of torch." >&2
        pip install --retries 0 --timeout 15 --index-url https://download.pytorch.org/whl/cpu "torch>=2.6" \
            || pip install "torch==${MINIMIND_CPU_TORCH:-2.13.0}"
    fi
fi
pip install -q -e ".$extra"
echo "minimind-tui installed in $VENV" >&2
