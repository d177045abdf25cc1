"""One real-size training step on a GPU beside its plan: the Llama 3.1 8B architecture (random
bf16 weights, LoRA), Whisper large-v3's encoder and the Base adapter, as the planner builds them.

Run (from ``benchmarks/gpu.sh``): ``python benchmarks/plan_vs_gpu.py [--batch 8 --seconds 10]``

The meta-built model of ``recipes/whisper_llama/conf/asr.yaml`` (+ LoRA) is materialised on the
GPU with random weights and runs the planner's own step (:func:`speechllm.planning.step.training_step`)
for real: once counted (FLOPs), then timed without the counters. Printed: measured peak memory
(``torch.cuda.max_memory_allocated``) and step time beside the plan's memory (one GPU, parameters +
gradients + activations, no optimizer step) and its time at the measured MFU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from speechllm.config import load_config
from speechllm.config.loading import plain_config
from speechllm.planning.hardware import GIB
from speechllm.planning.memory import activation_bytes
from speechllm.planning.meta_model import build_meta_model, parameter_counts
from speechllm.planning.step import training_step
from speechllm.planning.workload import step_shape

CONFIG = Path(__file__).resolve().parents[1] / "recipes" / "whisper_llama" / "conf" / "asr.yaml"
LORA = "model.llm.lora={r: 16, alpha: 32, dropout: 0.0, target_modules: [q_proj, k_proj, v_proj, o_proj]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--peak-tflops", type=float, default=989.4, help="the GPU's dense bf16 peak")
    args = parser.parse_args()
    if not torch.cuda.is_available():  # `make bench` runs every script; this one needs a GPU
        print("plan_vs_gpu: no CUDA device here; benchmarks/gpu.sh runs it on a GPU machine")
        return
    cfg = load_config(CONFIG, ["model.encoder.dtype=bfloat16", LORA])
    model = build_meta_model(plain_config(cfg.model))
    shape = step_shape(model, "base", args.seconds, args.seconds * args.batch, batch=args.batch)
    planned = training_step(model, shape)  # on meta
    counts = parameter_counts(model)
    layers = len(model.decoder_layers)
    plan_bytes = sum(p["bytes"] for p in counts.values()) + 4 * sum(p["trained"] for p in counts.values())
    plan_bytes += activation_bytes(planned, layers, checkpointing=False)
    for module in (model.encoder, model.adapter, model.causal_lm):
        module.to_empty(device="cuda")
        with torch.no_grad():
            for param in module.parameters():
                param.normal_(0.0, 0.02)
    torch.cuda.reset_peak_memory_stats()
    measured = training_step(model, shape)  # counted: FLOPs on the GPU
    peak = torch.cuda.max_memory_allocated()
    times = []
    for _ in range(3):
        torch.cuda.synchronize()
        start = time.perf_counter()
        training_step(model, shape, counting=False)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    step_s = min(times)
    mfu = measured.total_flops / step_s / (args.peak_tflops * 1e12)
    gpu = torch.cuda.get_device_name()
    print(f"batch {shape.batch} × {args.seconds:g} s, LLM length {shape.llm_tokens}, {gpu}")
    print("| quantity | plan | measured |")
    print("|---|---|---|")
    print(f"| TFLOPs per step | {planned.total_flops / 1e12:.2f} | {measured.total_flops / 1e12:.2f} |")
    print(f"| peak GiB (no optimizer states) | {plan_bytes / GIB:.1f} | {peak / GIB:.1f} |")
    plan_s = planned.total_flops / (args.peak_tflops * 1e12 * 0.4)
    print(f"| step s | {plan_s:.3f} at 40 % MFU | {step_s:.3f} ({mfu:.0%} MFU) |")


if __name__ == "__main__":
    main()
