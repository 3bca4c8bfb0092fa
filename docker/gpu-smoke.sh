#!/usr/bin/env bash
# GPU smoke test for xgrad: the default command of the Docker image
# (see ../Dockerfile).  Also runs as-is on any GPU machine where xgrad and
# its test/examples dependencies are importable:
#
#   bash docker/gpu-smoke.sh
#
# Steps: environment report (`python -m xgrad info`), the GPU test leg
# (`pytest --backend cupy --require-gpu`), then a short example run.
#
# Environment variables:
#   XGRAD_SMOKE_PYTEST_ARGS  extra pytest arguments, split on whitespace
#                            (no shell quoting), e.g. "-x -k grad"
#   PYTHON                   interpreter to use (default: python, else python3)
set -euo pipefail

# Work from the repository root, wherever the script is called from.
repo_root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd -- "${repo_root}"

if [[ -z "${PYTHON:-}" ]]; then
    if command -v python >/dev/null 2>&1; then
        PYTHON=python
    else
        PYTHON=python3
    fi
fi

section() {
    printf '\n==== %s ====\n' "$*"
}

section "GPU (nvidia-smi)"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi || echo "nvidia-smi failed (exit $?); continuing"
else
    echo "nvidia-smi not found (in Docker: was the container started with --gpus all?)"
fi

section "xgrad info"
"${PYTHON}" -m xgrad info

section "GPU test leg: pytest --backend cupy --require-gpu"
pytest_extra=()
if [[ -n "${XGRAD_SMOKE_PYTEST_ARGS:-}" ]]; then
    read -r -a pytest_extra <<< "${XGRAD_SMOKE_PYTEST_ARGS}"
    echo "extra pytest arguments: ${pytest_extra[*]}"
fi
"${PYTHON}" -m pytest -q -p no:cacheprovider --backend cupy --require-gpu \
    ${pytest_extra[@]+"${pytest_extra[@]}"} tests/

section "Example: examples/spiral_mlp.py --backend cupy --epochs 5"
if [[ -f examples/spiral_mlp.py ]]; then
    "${PYTHON}" examples/spiral_mlp.py --backend cupy --epochs 5
else
    echo "examples/spiral_mlp.py not found; skipped"
fi

section "GPU smoke test passed"
