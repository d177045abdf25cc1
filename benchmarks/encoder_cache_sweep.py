"""The 5-adapter sweep with the encoder-output cache vs 5 plain runs.

Run: ``python benchmarks/encoder_cache_sweep.py [--steps 50 --repeats 5 --tiny]``.

The tiny recipe (``recipes/tiny/conf/asr.yaml``) on the tone-word corpus
(``speechllm.prepare.tones.prepare_tones``), with the real Whisper tiny.en encoder (preset
``whisper-tiny.en``; ``--tiny``: the tiny random one, whose cost is negligible, so the cache
cannot pay there). For each adapter a training step — fetching a batch from the library's data
module, forward, backward, AdamW — is timed reading audio and running the encoder, and reading
``data.encoder_cache`` instead, interleaved. Building the cache (``build_encoder_cache``, what
``speechllm cache`` runs) is timed once: it is one pass of the encoder over the training set.

A sweep of ``--steps`` steps per adapter then costs ``Σ steps × plain step`` without the cache and
``build + Σ steps × cached step`` with it; the ratio of the two is the figure (composed from
measured parts: 2 × 5 whole Lightning runs, each repeated 5 times, would not fit in 2 minutes).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _timing
import torch
from omegaconf import OmegaConf

from speechllm.config import load_config
from speechllm.data.datamodule import SpeechDataModule
from speechllm.model import SpeechLLM
from speechllm.prepare.encoder_cache_writer import build_encoder_cache
from speechllm.prepare.tones import prepare_tones

ADAPTERS = ("base", "conv", "cif", "ctc", "wlq_former")
RECIPE = _timing.ROOT / "recipes" / "tiny" / "conf" / "asr.yaml"


def step_fn(model: SpeechLLM, data: SpeechDataModule) -> object:
    """One training step on the next batch of the data module's training loader."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    state = {"it": iter(data.train_dataloader())}

    def step() -> None:
        batch = next(state["it"], None)
        if batch is None:  # epoch over: start the next (the tone corpus is small)
            state["it"] = iter(data.train_dataloader())
            batch = next(state["it"])
        batch = data.on_before_batch_transfer(batch, 0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="training steps per adapter in the sweep")
    parser.add_argument("--train_cuts", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="tiny random Whisper (for tests)")
    args = parser.parse_args()
    encoder_path = "tiny-random-whisper" if args.tiny else "whisper-tiny.en"

    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        tones = Path(tmp) / "tones"
        prepare_tones(tones, num_train=args.train_cuts, num_dev=2, num_test=2)
        manifest = tones / "tones_cuts_train.jsonl.gz"
        cache = Path(tmp) / "cache"
        base = [
            f"data.train=[{{path: '{manifest}', task: asr}}]",
            "data.val=[]",
            "data.num_workers=0",
            f"model.encoder.path={encoder_path}",
        ]
        cfg = load_config(RECIPE, base)
        encoder_model = SpeechLLM.from_config(cfg.model)
        start = time.perf_counter()
        build_encoder_cache(encoder_model.encoder, manifest, cache)
        build_s = time.perf_counter() - start

        plain_s, cached_s = {}, {}
        for name in ADAPTERS:
            cfg = load_config(RECIPE, [*base, f"model.adapter.name={name}"])
            model = SpeechLLM.from_config(OmegaConf.to_container(cfg.model, resolve=True))
            plain = SpeechDataModule(cfg.data, model.llm.prompts, encoder=model.encoder, rank=0, world_size=1)
            cached_cfg = load_config(
                RECIPE, [*base, f"model.adapter.name={name}", f"data.encoder_cache={cache}"]
            )
            cached = SpeechDataModule(
                cached_cfg.data, model.llm.prompts, encoder=model.encoder, rank=0, world_size=1
            )
            times = _timing.interleaved_times(
                {"plain": step_fn(model, plain), "cached": step_fn(model, cached)}, args.repeats, warmup=2
            )
            plain_s[name], cached_s[name] = _timing.median(times["plain"]), _timing.median(times["cached"])

    print(
        f"5-adapter sweep, encoder-output cache vs plain runs: tiny recipe, encoder {encoder_path}, "
        f"{args.train_cuts} tone-word cuts, {args.steps} steps per adapter; {_timing.machine_line()}"
    )
    print(f"| adapter | plain step, median of {args.repeats} (ms) | cached step (ms) | cached / plain |")
    print("|---|---:|---:|---:|")
    for name in ADAPTERS:
        print(
            f"| {name} | {plain_s[name] * 1e3:.0f} | {cached_s[name] * 1e3:.0f} "
            f"| {cached_s[name] / plain_s[name]:.2f}× |"
        )
    plain_sweep = args.steps * sum(plain_s.values())
    cached_sweep = build_s + args.steps * sum(cached_s.values())
    print(
        f"| **sweep** ({args.steps} steps each; cache build {build_s:.1f} s, once) | {plain_sweep:.1f} s "
        f"| {cached_sweep:.1f} s | {cached_sweep / plain_sweep:.2f}× |"
    )


if __name__ == "__main__":
    main()
