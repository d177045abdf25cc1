"""Whisper encoder on the true length (``pad_to_30s: false``) vs the paper's 30 s padding.

Run: ``python benchmarks/whisper_padding.py [--batch 4 --repeats 5 --tiny]``.

The encoder as speechllm runs it (``WhisperSpeechEncoder.forward``: torch log-mel features, then
the encoder), on batches of 2–10 s clips, float32, for the real Whisper tiny.en (preset
``whisper-tiny.en``, when its package is installed) and for a tiny random Whisper
(``speechllm.presets.tiny.build_tiny_whisper``, 64 wide, 2 layers). The padded path does the same work
for any clip of at most 30 s (every clip becomes a 30 s window), so one padded variant is timed,
interleaved with every true-length batch, and each ratio divides by it.

The two paths give different representations (Whisper attends over its padding without a mask;
see DESIGN.md): this measures speed only, not quality.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import _timing
import torch

from speechllm.encoders.whisper import WhisperSpeechEncoder

CLIP_SETS = {
    "2 s": [2.0],
    "5 s": [5.0],
    "10 s": [10.0],
    "2–10 s mixed": [2.0, 4.5, 7.0, 10.0],
}


def clips(durations: list[float], batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S) noise-like audio with the durations cycled over the batch, and (B,) lengths."""
    gen = torch.Generator().manual_seed(seed)
    lens = torch.tensor([int(durations[i % len(durations)] * 16000) for i in range(batch)])
    audio = 0.1 * torch.randn(batch, int(lens.max()), generator=gen)
    return audio * (torch.arange(audio.shape[1])[None, :] < lens[:, None]), lens


def measure(path: str, batch: int, repeats: int) -> dict[str, float]:
    """Median seconds per batch: ``padded`` plus one true-length entry per clip set."""
    padded = WhisperSpeechEncoder(path, pad_to_30s=True)
    true_length = WhisperSpeechEncoder(path, pad_to_30s=False)
    inputs = {name: clips(durations, batch) for name, durations in CLIP_SETS.items()}
    mixed = inputs["2–10 s mixed"]
    runs = {"padded": lambda: padded(*mixed)}
    for name, (audio, lens) in inputs.items():
        runs[name] = lambda a=audio, n=lens: true_length(a, n)
    times = _timing.interleaved_times(runs, repeats)
    return {name: _timing.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="only the tiny random Whisper (for tests)")
    args = parser.parse_args()

    models: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-whisper-") as tmp:
        from speechllm.presets.tiny import build_tiny_whisper

        models.append(("tiny random (64×2)", str(build_tiny_whisper(Path(tmp) / "tiny-random-whisper"))))
        if not args.tiny:
            try:
                from speechllm.presets import resolve_model_path

                models.insert(0, ("Whisper tiny.en (384×4)", str(resolve_model_path("whisper-tiny.en"))))
            except ImportError as err:  # the demo extra is not installed: say so, measure the rest
                print(f"(Whisper tiny.en skipped: {err})")
        results = {label: measure(path, args.batch, args.repeats) for label, path in models}

    print(
        f"Whisper encoder, true length vs 30 s padding, batch {args.batch}, float32; {_timing.machine_line()}"
    )
    print(f"| encoder | clips | padded, median of {args.repeats} (ms) | true length (ms) | speed-up |")
    print("|---|---|---:|---:|---:|")
    for label, medians in results.items():
        for name in CLIP_SETS:
            print(
                f"| {label} | {name} | {medians['padded'] * 1e3:.0f} | {medians[name] * 1e3:.0f} "
                f"| {medians['padded'] / medians[name]:.1f}× |"
            )


if __name__ == "__main__":
    main()
