#!/usr/bin/env bash
# Installs minimind-tui into ./.venv. Usage: scripts/install.sh [--test]
# A torch that already works is kept (on a GPU box: one that sees the GPU). Otherwise, on a box with an NVIDIA
# GPU, the newest PyTorch CUDA build the installed driver can run is chosen (minimind_tui/gpu/torch_build.py:
# plain `pip install torch` takes a build for the newest CUDA, which older drivers cannot run, and training
# would silently fall back to the CPU); without a GPU, the CPU build, so pip never pulls the multi-GB CUDA one.
# MINIMIND_TORCH_BUILD=cu126 (or cpu) forces a build.
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
say() { echo "install: $*" >&2; }
torch_imports() { "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; }
torch_sees_gpu() { "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    >/dev/null 2>&1; }
torch_version() { "$VENV/bin/python" -c "import torch; print(torch.__version__, 'CUDA', torch.version.cuda)" \
    2>/dev/null || echo "none"; }
has_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }

install_cuda_torch() {
    local tag requirement why
    if [ -n "${MINIMIND_TORCH_BUILD:-}" ]; then
        tag=$MINIMIND_TORCH_BUILD requirement="torch>=2.6" why="MINIMIND_TORCH_BUILD=$MINIMIND_TORCH_BUILD"
    else
        IFS=$'\t' read -r tag requirement why < <("$VENV/bin/python" minimind_tui/gpu/torch_build.py) || {
            say "cannot choose a PyTorch build for this GPU (the reason is above); install torch yourself, then rerun"
            exit 1
        }
    fi
    say "installing $requirement from https://download.pytorch.org/whl/$tag: $why"
    # --ignore-installed: a torch of the right version but the wrong build (CPU, newer CUDA) must be replaced.
    pip install --ignore-installed --index-url "https://download.pytorch.org/whl/$tag" "$requirement"
    if torch_sees_gpu; then
        say "installed torch $(torch_version); torch.cuda.is_available() is True"
    else
        say "installed torch $(torch_version), but torch.cuda.is_available() is False; run" \
            "'.venv/bin/minimind-tui doctor' to see why (driver, GPU), or force a build with MINIMIND_TORCH_BUILD=cu126"
        exit 1
    fi
}

if has_gpu && [ "${MINIMIND_TORCH_BUILD:-}" != "cpu" ]; then
    if torch_imports && torch_sees_gpu; then
        say "keeping torch $(torch_version): it already works on the GPU"
    else
        say "torch $(torch_version) $(torch_imports && echo "does not see the GPU" || echo "is not installed")"
        install_cuda_torch
    fi
elif ! torch_imports; then
    echo "No NVIDIA GPU found: installing the CPU build of torch." >&2
    pip install --retries 0 --timeout 15 --index-url https://download.pytorch.org/whl/cpu "torch>=2.6" \
        || pip install "torch==${MINIMIND_CPU_TORCH:-2.13.0}"
fi
pip install -q -e ".$extra"
echo "minimind-tui installed in $VENV" >&2
