"""Padding efficiency of the duration-bucketing sampler and its step-time gain over plain batches.

Run: ``python benchmarks/bucketing.py [--cuts 20000 --batches 6 --repeats 5 --tiny]``.

Durations follow a CoVoST-like distribution (log-normal, median 4.5 s, clipped to 1–15 s; CoVoST 2
En→X train clips are 1–15 s, mostly 3–7 s). The samplers are the library's own
(``SpeechDataModule._sampler``) with ``DataConfig`` defaults: ``DynamicBucketingSampler`` with 30
buckets and 200 s per batch, against ``num_buckets: 1`` (``SimpleCutSampler``, shuffled, 200 s).

Padding efficiency = real frames / (batch size × longest clip) summed over a whole epoch. Step
time: a tiny speechllm (random 64-wide Whisper on the true length, Base adapter, 2-layer Llama)
trains on ``--batches`` bucketed batches spread over the epoch and on as much audio from the
plain sampler; the figure is step time per second of audio, the two samplers interleaved. With
``pad_to_30s: true`` bucketing would not change the encoder's cost (every clip is a 30 s window);
it changes the LLM's.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import _timing
import numpy as np
from lhotse import CutSet
from lhotse.testing.dummies import dummy_cut

from speechllm.config import DataConfig
from speechllm.data.datamodule import SpeechDataModule
from speechllm.precision import bf16_support

TOKENS_PER_SECOND = 3.0  # LLM tokens of transcript per second of speech (English, BPE)


def covost_like_cuts(count: int, seed: int = 0) -> CutSet:
    """``count`` audio-less cuts with CoVoST-like durations."""
    rng = np.random.default_rng(seed)
    durations = np.clip(rng.lognormal(np.log(4.5), 0.45, count), 1.0, 15.0)
    return CutSet.from_cuts(dummy_cut(i, duration=round(float(d), 2)) for i, d in enumerate(durations))


def batches(cuts: CutSet, num_buckets: int) -> list[list[float]]:
    """One epoch of the library's training sampler: each batch as its clips' durations."""
    module = SpeechDataModule(DataConfig(num_buckets=num_buckets), prompts=None)
    sampler = module._sampler(cuts, train=True, world_size=1, rank=0)
    return [[c.duration for c in batch] for batch in sampler]


def efficiency(epoch: list[list[float]]) -> float:
    """Real frames / padded frames (50 Hz frames; the same ratio in seconds)."""
    real = sum(sum(b) for b in epoch)
    padded = sum(len(b) * max(b) for b in epoch)
    return real / padded


def first_batches(epoch: list[list[float]], audio_seconds: float) -> list[list[float]]:
    """The first batches of an epoch holding at least ``audio_seconds`` of audio."""
    chosen, total = [], 0.0
    for durations in epoch:
        if total >= audio_seconds:
            break
        chosen.append(durations)
        total += sum(durations)
    return chosen


# What `trainer.precision: auto` trains with here: bf16 autocast where the CPU runs bf16 natively.
PRECISION = "bf16-mixed" if bf16_support("cpu").bf16 else "32"


def train_on(model: object, chosen: list[list[float]]) -> tuple[Callable[[], object], float]:
    """A closure training one step on each batch, and the seconds of audio they hold."""
    sizes = _timing.SIZES["tiny"]
    steps, audio = [], 0.0
    for index, durations in enumerate(chosen):
        tokens = max(1, round(TOKENS_PER_SECOND * max(durations)))
        batch = _timing.make_batch(sizes, len(durations), durations, tokens, sizes.vocab - 1, seed=index)
        steps.append(_timing.train_step_fn(model, batch.speechllm, PRECISION, peer=False))
        audio += sum(durations)
    return (lambda: [step() for step in steps]), audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuts", type=int, default=20000)
    parser.add_argument("--batches", type=int, default=2, help="bucketed batches timed")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="2000 cuts, 1 batch (for tests)")
    args = parser.parse_args()
    if args.tiny:
        args.cuts, args.batches = 2000, 1

    # The eager CutSet is deliberate (20k audio-less cuts); lhotse's advice to read lazily is moot.
    warnings.filterwarnings("ignore", message="You are using DynamicBucketingSampler with an eagerly")
    cuts = covost_like_cuts(args.cuts).to_eager()
    epochs = {"bucketed (30 buckets)": batches(cuts, 30), "unbucketed": batches(cuts, 1)}
    with tempfile.TemporaryDirectory(prefix="bench-bucketing-") as tmp:
        sizes = _timing.SIZES["tiny"]
        dirs = _timing.write_model_dirs(sizes, Path(tmp))
        model = _timing.build_speechllm(
            *dirs, _timing.adapter_options("base", sizes), pad_to_30s=False, frozen_dtype="float32"
        )
        # The bucketed sampler's first batches, and as much audio from the plain sampler.
        # Spread over the epoch: the first batches may all come from one duration bucket.
        epoch = epochs["bucketed (30 buckets)"]
        bucketed = [epoch[i * len(epoch) // args.batches] for i in range(args.batches)]
        chosen = {
            "bucketed (30 buckets)": bucketed,
            "unbucketed": first_batches(epochs["unbucketed"], sum(map(sum, bucketed))),
        }
        runs, audio = {}, {}
        for name, batches_ in chosen.items():
            runs[name], audio[name] = train_on(model, batches_)
        times = _timing.interleaved_times(runs, args.repeats)
    per_second = {name: _timing.median(times[name]) / audio[name] for name in epochs}

    total_hours = sum(c.duration for c in cuts) / 3600
    print(
        f"Bucketing sampler (DataConfig defaults: 200 s batches), {args.cuts} CoVoST-like cuts "
        f"({total_hours:.1f} h); step time on the same audio, tiny model; "
        f"{_timing.machine_line()}"
    )
    print(
        "| sampler | batches / epoch | real frames | batches timed | audio timed (s) "
        f"| step ms per audio s, median of {args.repeats} | speed-up |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    base = per_second["unbucketed"]
    for name, epoch in epochs.items():
        print(
            f"| {name} | {len(epoch)} | {efficiency(epoch):.1%} | {len(chosen[name])} | {audio[name]:.0f} "
            f"| {per_second[name] * 1e3:.1f} | {base / per_second[name]:.2f}× |"
        )


if __name__ == "__main__":
    main()
