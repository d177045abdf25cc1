"""Building the encoder-output cache: clips batched in manifest order vs sorted by duration.

Run: ``python benchmarks/cache_order.py [--clips 400 --repeats 3 --tiny]``.

``speechllm cache`` (``speechllm.prepare.encoder_cache_writer``) encodes clips in batches of
120 s of audio. In manifest order a batch mixes short and long clips, and Whisper on the true
length runs every clip of a batch to the longest one's length; sorted by duration
(``duration_sorted_batches``, in windows of 20 000 cuts) a batch holds clips of similar lengths.
Both variants encode the same
noise clips of the demo's lengths (1.5–7 s, uniform, seeded), interleaved; the table gives the
seconds per pass, the padded frames encoded, and the ratio sorted / manifest order. Real Whisper
tiny.en when its package is installed (``--tiny``: only the tiny random Whisper, for tests).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from types import SimpleNamespace

import _timing
import torch

from speechllm.encoders.whisper import WhisperSpeechEncoder
from speechllm.masking import pad_audio
from speechllm.prepare.encoder_cache_writer import duration_sorted_batches

BATCH_SECONDS = 120.0  # speechllm cache's default --max-duration


def demo_like_clips(count: int, seed: int = 0) -> list[SimpleNamespace]:
    """``count`` noise clips of 1.5–7 s with an ``id``, a ``duration`` and their ``audio``."""
    gen = torch.Generator().manual_seed(seed)
    durations = 1.5 + 5.5 * torch.rand(count, generator=gen)
    return [
        SimpleNamespace(id=str(i), duration=float(d), audio=0.1 * torch.randn(int(d * 16000), generator=gen))
        for i, d in enumerate(durations)
    ]


def in_order_batches(clips: list, max_duration: float) -> list[list]:
    """Batches of at most ``max_duration`` seconds in the clips' own order (what a plain sampler gives)."""
    batches: list[list] = [[]]
    total = 0.0
    for clip in clips:
        if batches[-1] and total + clip.duration > max_duration:
            batches.append([])
            total = 0.0
        batches[-1].append(clip)
        total += clip.duration
    return batches


def encode_all(encoder: WhisperSpeechEncoder, batches: list[list]) -> int:
    """Encode every batch; returns the frames computed, padding included."""
    frames = 0
    with torch.no_grad():
        for batch in batches:
            audio, lens = pad_audio([clip.audio for clip in batch])
            hidden, _ = encoder(audio, lens)
            frames += hidden.shape[0] * hidden.shape[1]
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="only the tiny random Whisper (for tests)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clips = demo_like_clips(args.clips)
    variants = {
        "manifest order": in_order_batches(clips, BATCH_SECONDS),
        "sorted by duration": list(duration_sorted_batches(clips, BATCH_SECONDS)),
    }
    with tempfile.TemporaryDirectory(prefix="bench-cache-order-") as tmp:
        if args.tiny:
            from speechllm.presets.tiny import build_tiny_whisper

            label, path = "tiny random Whisper", str(build_tiny_whisper(Path(tmp) / "tiny-random-whisper"))
        else:
            from speechllm.presets import resolve_model_path

            label, path = "Whisper tiny.en", str(resolve_model_path("whisper-tiny.en"))
        encoder = WhisperSpeechEncoder(path, pad_to_30s=False)
        frames = {name: encode_all(encoder, batches) for name, batches in variants.items()}
        runs = {name: (lambda b=batches: encode_all(encoder, b)) for name, batches in variants.items()}
        times = _timing.interleaved_times(runs, args.repeats)
    base = _timing.median(times["manifest order"])
    print(
        f"{label}, {args.clips} clips of 1.5-7 s in batches of {BATCH_SECONDS:.0f} s, float32; "
        f"{_timing.machine_line()}"
    )
    print(
        f"| order | median of {args.repeats} (s) | frames encoded (with padding) | time vs manifest order |"
    )
    print("|---|---:|---:|---:|")
    for name in variants:
        median = _timing.median(times[name])
        print(f"| {name} | {median:.2f} | {frames[name]} | {median / base:.2f}× |")


if __name__ == "__main__":
    main()
