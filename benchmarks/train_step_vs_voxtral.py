"""One training step of speechllm vs transformers' VoxtralForConditionalGeneration, same sizes.

Run: ``python benchmarks/train_step_vs_voxtral.py [--size cpu --batch 4 --repeats 5]``.

Both models are built from configs with random weights: a Whisper-like encoder and a Llama-like
LLM of the same widths, depths, heads and vocabulary (``--size``, see ``_timing.SIZES``). Both
freeze the encoder and the LLM and train what sits between them: speechllm the Conv adapter
(two stride-2 convolutions, 4:1, then one MLP block as wide as the LLM), Voxtral its projector
(4 stacked frames → Linear → GELU → Linear, also 4:1). Same batch, same prompt and target tokens,
same precision (``bf16-mixed``: autocast, frozen encoder weights in bf16 for speechllm).

Rows:
- 30 s clips, ``pad_to_30s: true``: both encode 1500 frames and feed 375 audio embeddings per
  example; the like-for-like comparison.
- 2–10 s clips, ``pad_to_30s: false``: speechllm on the true length; Voxtral, which always pads
  to a 30 s window, does the same work as in the first row (it is timed again, interleaved).

Each variant's peak memory is measured in a fresh process: the resident set after building the
model, then the kernel's resident-set high-water mark (``VmHWM``), reset after a warm-up step and
read after one more step (on CUDA: ``memory_allocated`` / ``max_memory_allocated``). The table
shows the peak and, in brackets, the peak above the built model: activations, gradients, optimizer
state and what the allocator keeps.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import _timing
import torch

VARIANTS = ("speechllm_30s", "voxtral_30s", "speechllm_true_length")
REALISTIC_SECONDS = (2.0, 4.5, 7.0, 10.0)  # cycled over the batch


def build_variant(name: str, args: argparse.Namespace, dirs: tuple[Path, Path]) -> tuple[object, dict, bool]:
    """(model, batch, is_peer) of one variant, on ``args.device``."""
    sizes = _timing.SIZES[args.size]
    audio_token = sizes.vocab - 1
    true_length = name == "speechllm_true_length"
    seconds = (
        [REALISTIC_SECONDS[i % len(REALISTIC_SECONDS)] for i in range(args.batch)]
        if true_length
        else [30.0] * args.batch
    )
    batch = _timing.make_batch(sizes, args.batch, seconds, args.target_tokens, audio_token, args.device)
    frozen_dtype = "bfloat16" if args.precision == "bf16-mixed" else "float32"
    if name.startswith("voxtral"):
        return _timing.build_voxtral(sizes, audio_token).to(args.device), batch.voxtral, True
    adapter = _timing.adapter_options("conv", sizes, peer_like=True)
    model = _timing.build_speechllm(*dirs, adapter, pad_to_30s=not true_length, frozen_dtype=frozen_dtype)
    return model.to(args.device), batch.speechllm, False


def audio_embeddings(model: object, batch: dict, peer: bool) -> float:
    """Mean audio embeddings per example that the LLM sees."""
    if peer:
        return 375.0  # one per 4 frames of the fixed 30 s window
    with torch.no_grad():
        out = model.encode(batch["audio"], batch["audio_lens"])  # type: ignore[attr-defined]
    return float(out.lens.float().mean())


def memory_child(args: argparse.Namespace) -> None:
    """In a fresh process: one warm-up step (optimizer state exists), then the measured step."""
    dirs = (Path(args.whisper_dir), Path(args.llm_dir))
    model, batch, peer = build_variant(args.memory_child, args, dirs)
    step = _timing.train_step_fn(model, batch, args.precision, peer)
    # "before": the built model, before any step; the peak is then taken over a steady-state step.
    cuda = args.device.startswith("cuda")
    before = torch.cuda.memory_allocated() / 2**20 if cuda else _timing.rss_mib()
    step()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        step()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        if not _timing.reset_peak_rss():
            raise SystemExit("cannot reset VmHWM (/proc/self/clear_refs): no per-step peak on this system")
        step()
        peak = _timing.peak_rss_mib()
    print(json.dumps({"before_mib": before, "peak_mib": peak}))


def measure_memory(name: str, args: argparse.Namespace, dirs: tuple[Path, Path]) -> dict[str, float]:
    command = [sys.executable, __file__, "--memory_child", name, "--whisper_dir", str(dirs[0])]
    command += ["--llm_dir", str(dirs[1]), "--size", args.size, "--batch", str(args.batch)]
    command += [
        "--target_tokens",
        str(args.target_tokens),
        "--precision",
        args.precision,
        "--device",
        args.device,
    ]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(_timing.SIZES), default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--target_tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precision", choices=("bf16-mixed", "32"), default="bf16-mixed")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no_memory", action="store_true", help="skip the per-variant memory processes")
    parser.add_argument("--memory_child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--whisper_dir", help=argparse.SUPPRESS)
    parser.add_argument("--llm_dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args)
        return

    with tempfile.TemporaryDirectory(prefix="bench-voxtral-") as tmp:
        dirs = _timing.write_model_dirs(_timing.SIZES[args.size], Path(tmp))
        built = {name: build_variant(name, args, dirs) for name in VARIANTS}
        steps = {
            name: _timing.train_step_fn(m, b, args.precision, peer) for name, (m, b, peer) in built.items()
        }
        embeddings = {name: audio_embeddings(*built[name]) for name in VARIANTS}
        times = _timing.interleaved_times(steps, args.repeats)
        memory = {} if args.no_memory else {name: measure_memory(name, args, dirs) for name in VARIANTS}

    sizes = _timing.SIZES[args.size]
    print(
        f"Training step, speechllm vs Voxtral (transformers), size {args.size}: encoder {sizes.enc_dim}×"
        f"{sizes.enc_layers}, LLM {sizes.llm_dim}×{sizes.llm_layers} vocab {sizes.vocab}; "
        f"batch {args.batch}, {args.target_tokens} target tokens, {args.precision}, {args.device}; "
        f"{_timing.machine_line()}"
    )
    print(
        f"| variant | audio embeds / example | median of {args.repeats} (ms) | min–max (ms) "
        "| time vs Voxtral | step peak memory (MiB) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    reference = _timing.median(times["voxtral_30s"])
    for name in VARIANTS:
        med = _timing.median(times[name])
        mem = memory.get(name)
        mem_text = f"{mem['peak_mib']:.0f} (+{mem['peak_mib'] - mem['before_mib']:.0f})" if mem else "–"
        print(
            f"| {name} | {embeddings[name]:.0f} | {med * 1e3:.0f} | {_timing.spread(times[name])} "
            f"| {med / reference:.2f}× | {mem_text} |"
        )


if __name__ == "__main__":
    main()
