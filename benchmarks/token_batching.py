"""Token batching (``data.max_llm_tokens``) against duration buckets, per adapter: LLM load,
padding and LLM step throughput.

Run: ``python benchmarks/token_batching.py [--cuts 4000 --budget 4096 --batches 3 --repeats 3
--size cpu] [--tiny]``.

CoVoST-like clips (log-normal, median 4.5 s, 1–15 s, about 2.5 words per second of transcript)
go through the library's own samplers (``SpeechDataModule._sampler``, 30 buckets): by audio
seconds (``data.max_duration: 200``, the default) and by LLM tokens (``data.max_llm_tokens``).
A clip's LLM length is :class:`speechllm.data.token_batching.LLMLength`: the tiny BPE
tokenizer's prompt and target tokens plus ``ceil(seconds × rate)`` adapter outputs, at each
adapter's rate on Whisper (50 Hz frames; :func:`~speechllm.data.token_batching.adapter_rate_hz`).

Per sampler and adapter: batches per epoch, the padded LLM input per batch (clips × longest:
mean and max, the load the LLM sees), real/padded LLM tokens, and the step time of a random
Llama (``--size``) training on ``--batches`` batches spread over the epoch, as audio seconds per
second of LLM step (the encoder and adapter are left out: they do not depend on the batching).
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import _timing
import numpy as np
import torch
from lhotse import CutSet, SupervisionSegment
from lhotse.testing.dummies import dummy_cut

from speechllm.config import DataConfig
from speechllm.data.datamodule import SpeechDataModule
from speechllm.data.token_batching import LLMLength, adapter_rate_hz
from speechllm.llms.prompts import PromptBuilder

ADAPTERS = ("base", "conv", "wlq_former", "ctc", "cif")
WORDS_PER_SECOND = 2.5
WORDS = ("the", "speech", "model", "reads", "every", "clip", "and", "writes", "its", "words")


def covost_like_cuts(count: int, seed: int = 0) -> CutSet:
    """``count`` audio-less English cuts with CoVoST-like durations and transcripts."""
    rng = np.random.default_rng(seed)
    durations = np.clip(rng.lognormal(np.log(4.5), 0.45, count), 1.0, 15.0)
    cuts = []
    for i, seconds in enumerate(durations):
        cut = dummy_cut(i, duration=round(float(seconds), 2))
        words = max(1, round(WORDS_PER_SECOND * cut.duration))
        text = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(words))
        cut.supervisions = [
            SupervisionSegment(f"s{i}", cut.recording_id, 0.0, cut.duration, text=text, language="en")
        ]
        cut.custom = {"task": "asr"}
        cuts.append(cut)
    return CutSet.from_cuts(cuts)


def epoch(cuts: CutSet, prompts: PromptBuilder, rate: float, budget: int | None) -> list[list]:
    """One epoch of the library's training sampler, by seconds (``budget`` None) or LLM tokens."""
    config = DataConfig(num_buckets=30, max_llm_tokens=budget)
    module = SpeechDataModule(config, prompts, llm_rate_hz=rate)
    length = module.llm_length("asr", True)
    return [list(batch) for batch in module._sampler(cuts, True, world_size=1, rank=0, length=length)]


def llm_step(model: torch.nn.Module, clips: int, longest: int, dim: int) -> None:
    """One training step of the LLM on a padded batch of ``clips × longest`` input embeddings."""
    embeds = torch.randn(clips, longest, dim)
    labels = torch.randint(0, 100, (clips, longest))
    model(inputs_embeds=embeds, labels=labels).loss.backward()
    model.zero_grad(set_to_none=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuts", type=int, default=4000)
    parser.add_argument("--budget", type=int, default=4096, help="data.max_llm_tokens")
    parser.add_argument("--batches", type=int, default=3, help="batches timed per epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", default="tiny", choices=sorted(_timing.SIZES))
    parser.add_argument("--tiny", action="store_true", help="400 cuts, 1 batch, 2 adapters (for tests)")
    args = parser.parse_args()
    adapters = ADAPTERS
    if args.tiny:
        args.cuts, args.batches, adapters = 400, 1, ("base", "cif")
    warnings.filterwarnings("ignore", message="You are using DynamicBucketingSampler with an eagerly")
    cuts = covost_like_cuts(args.cuts).to_eager()
    sizes = _timing.SIZES[args.size]
    with tempfile.TemporaryDirectory(prefix="bench-token-batching-") as tmp:
        from transformers import AutoTokenizer, LlamaForCausalLM

        from speechllm.presets.tiny import build_bpe_tokenizer

        build_bpe_tokenizer(Path(tmp))
        prompts = PromptBuilder(AutoTokenizer.from_pretrained(tmp))
    torch.manual_seed(0)
    llm = LlamaForCausalLM(_timing.llama_config(sizes))
    rows, runs, audio = [], {}, {}
    for adapter in adapters:
        rate, _ = adapter_rate_hz({"name": adapter}, {"name": "whisper"}, 50.0)
        length = LLMLength(prompts, rate)
        for sampler, budget in (("200 s buckets", None), (f"{args.budget} tokens", args.budget)):
            batches = epoch(cuts, prompts, rate, budget)
            shapes = [(len(b), max(length(c) for c in b)) for b in batches]
            padded = [n * longest for n, longest in shapes]
            real = sum(length(c) for b in batches for c in b)
            name = f"{adapter} | {sampler}"
            timed = [i * len(batches) // args.batches for i in range(args.batches)]
            steps = [shapes[i] for i in timed]
            runs[name] = lambda steps=steps: [
                llm_step(llm, n, longest, sizes.llm_dim) for n, longest in steps
            ]
            audio[name] = sum(c.duration for i in timed for c in batches[i])
            rows.append((name, rate, len(batches), np.mean(padded), max(padded), real / sum(padded)))
    times = _timing.interleaved_times(runs, args.repeats)
    print(
        f"Token batching vs duration buckets (30 buckets), {args.cuts} CoVoST-like cuts "
        f"({sum(c.duration for c in cuts) / 3600:.1f} h), LLM step of a random Llama ({args.size}: "
        f"{sizes.llm_layers} layers, {sizes.llm_dim} wide), fp32; {_timing.machine_line()}"
    )
    print(
        "| adapter | batches by | LLM rate (Hz) | batches / epoch | padded LLM tokens per batch, mean "
        f"| max | real / padded | audio s per LLM-step s, median of {args.repeats} |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, rate, count, mean, peak, fill in rows:
        throughput = audio[name] / _timing.median(times[name])
        print(f"| {name} | {rate:.2f} | {count} | {mean:.0f} | {peak} | {fill:.1%} | {throughput:.0f} |")


if __name__ == "__main__":
    main()
