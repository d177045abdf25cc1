"""Achieved FLOP/s of a speechllm training step as a fraction of a measured matmul peak (MFU).

Run: ``python benchmarks/mfu.py [--size cpu --adapters conv --batch 4 --seconds 10 --repeats 5]``;
on a GPU: ``--device cuda --size small --adapters base conv cif ctc wlq_former`` (``gpu.sh``).

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` over one whole step
(frozen encoder forward, adapter and LLM forward, backward; the optimizer adds no matmul). The
peak is a square matmul of ``--matmul`` in the same dtype, timed on the same machine, interleaved
with the steps: bf16-mixed steps against the bf16 peak, float32 steps against the float32 peak.
Throughput: seconds of audio and target tokens per second of step time; peak memory only on CUDA
(``max_memory_allocated``; see train_step_vs_voxtral.py for CPU memory).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import _timing
import torch
from torch.utils.flop_counter import FlopCounterMode


def matmul_fn(n: int, dtype: torch.dtype, device: str) -> tuple[object, float]:
    """A closure multiplying two (n, n) matrices, and its FLOPs (2 n³)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)

    def run() -> None:
        torch.mm(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return run, 2.0 * n**3


def count_flops(step: object) -> float:
    """FLOPs of one call of ``step`` (forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        step()  # type: ignore[operator]
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(_timing.SIZES), default="cpu")
    parser.add_argument("--adapters", nargs="+", default=["conv"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="clip duration (true length)")
    parser.add_argument("--target_tokens", type=int, default=30)
    parser.add_argument("--precisions", nargs="+", default=["bf16-mixed", "32"], choices=["bf16-mixed", "32"])
    parser.add_argument("--matmul", type=int, default=None, help="peak matmul size (default 2048; cuda 8192)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    n = args.matmul or (8192 if cuda else 2048)
    sizes = _timing.SIZES[args.size]

    runs: dict[str, object] = {}
    flops: dict[str, float] = {}
    for precision in args.precisions:
        dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float32
        runs[f"peak {precision}"], flops[f"peak {precision}"] = matmul_fn(n, dtype, args.device)
    batch = _timing.make_batch(
        sizes, args.batch, [args.seconds] * args.batch, args.target_tokens, sizes.vocab - 1, args.device
    )
    memory: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-mfu-") as tmp:
        dirs = _timing.write_model_dirs(sizes, Path(tmp))
        for adapter in args.adapters:
            for precision in args.precisions:
                frozen = "bfloat16" if precision == "bf16-mixed" else "float32"
                model = _timing.build_speechllm(
                    *dirs, _timing.adapter_options(adapter, sizes), pad_to_30s=False, frozen_dtype=frozen
                ).to(args.device)
                key = f"{adapter} {precision}"
                runs[key] = _timing.train_step_fn(model, batch.speechllm, precision, peer=False)
                runs[key]()  # optimizer state exists before counting and timing
                flops[key] = count_flops(runs[key])
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                    runs[key]()
                    memory[key] = torch.cuda.max_memory_allocated() / 2**30
        times = {
            name: _timing.median(values)
            for name, values in _timing.interleaved_times(runs, args.repeats).items()
        }

    print(
        f"MFU of a training step, size {args.size} (encoder {sizes.enc_dim}×{sizes.enc_layers}, LLM "
        f"{sizes.llm_dim}×{sizes.llm_layers}), batch {args.batch} × {args.seconds:g} s, {args.target_tokens} "
        f"target tokens, {args.device}; peak = {n}² matmul; {_timing.machine_line()}"
    )
    print(
        f"| step | GFLOP / step | median of {args.repeats} (ms) | achieved TFLOP/s | peak TFLOP/s | MFU "
        "| audio s / s | target tokens / s | peak memory (GiB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    audio = args.batch * args.seconds
    tokens = args.batch * args.target_tokens
    for adapter in args.adapters:
        for precision in args.precisions:
            key = f"{adapter} {precision}"
            achieved = flops[key] / times[key]
            peak = flops[f"peak {precision}"] / times[f"peak {precision}"]
            mem = f"{memory[key]:.2f}" if key in memory else "–"
            print(
                f"| {key} | {flops[key] / 1e9:.1f} | {times[key] * 1e3:.0f} | {achieved / 1e12:.3f} "
                f"| {peak / 1e12:.3f} | {achieved / peak:.0%} | {audio / times[key]:.1f} "
                f"| {tokens / times[key]:.0f} | {mem} |"
            )


if __name__ == "__main__":
    main()
