#!/usr/bin/env bash
# GPU benchmarks (≤ 5 minutes): bf16 training-step throughput, MFU and peak memory for a
# Whisper-small-sized encoder + SmolLM2-135M-sized LLM (random weights from configs, no hub) with
# each adapter, then the Voxtral peer of the same sizes. Runs from a fresh clone after `make test`'s
# setup (.venv). Usage: bash benchmarks/gpu.sh [--tiny]   (--tiny: CPU dry run of the same Python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
if [ "${1:-}" = "--tiny" ]; then
    device=cpu; size=tiny; batch=2; matmul=256; repeats=2
else
    device=cuda; size=small; batch=8; matmul=8192; repeats=5
    "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: run with --tiny for a CPU dry run')"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
echo "== MFU, throughput and peak memory per adapter (bf16-mixed)"
timeout 160 "$PY" benchmarks/mfu.py --device "$device" --size "$size" --batch "$batch" --seconds 10 \
    --adapters base conv cif ctc wlq_former --precisions bf16-mixed --matmul "$matmul" --repeats "$repeats"
echo "== training step vs Voxtral (bf16-mixed)"
timeout 130 "$PY" benchmarks/train_step_vs_voxtral.py --device "$device" --size "$size" --batch "$batch" \
    --repeats "$repeats"
if [ "$device" = cuda ]; then
    echo "== one real-size step beside its plan (Llama 3.1 8B architecture, random bf16 weights, LoRA)"
    timeout 240 "$PY" benchmarks/plan_vs_gpu.py --batch 8 --seconds 10
fi
