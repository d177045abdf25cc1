"""Beam search, batched (every clip's beams in one LLM call per step) vs clip by clip, and greedy.

Run: ``python benchmarks/beam_search.py --model DIR [--batch 8 --beams 4 --max_new_tokens 32
--repeats 3 --threads 2]`` with a ``save_pretrained`` directory (the demo's trained model:
``demo_out/runs/asr_conv/model``), or ``--tiny`` for the tiny random Whisper and Llama (tests).

The clips are the demo's test clips when ``--manifest`` is given, else noise of the demo's clip
lengths. Each clip is encoded alone first (as the encoder-output cache does): Whisper on its true
length attends over a batch's padding, so a padded batch would change the encoder's outputs,
which is not what this measures. Before timing, the batched and per-clip outputs are compared
and the count of equal ones printed: the search is exact (tests/evaluation/test_search.py asserts equality on
the tiny models), but a left-padded batch rounds differently in the LLM, which can flip a near-tie.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import _timing
import torch

from speechllm.config import load_config
from speechllm.model import SpeechLLM


def load_model(args: argparse.Namespace) -> SpeechLLM:
    if args.tiny:
        cfg = load_config(
            None, ["model.encoder.path=tiny-random-whisper", "model.llm.path=tiny-random-llama"]
        )
        torch.manual_seed(0)
        return SpeechLLM.from_config(cfg.model).eval()
    return SpeechLLM.from_pretrained(args.model).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a save_pretrained directory")
    parser.add_argument("--manifest", type=Path, default=None, help="clips to decode (default: noise)")
    parser.add_argument("--tiny", action="store_true", help="tiny random Whisper and Llama (for tests)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--max_new_tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="under bf16 autocast (outputs then may differ)")
    args = parser.parse_args()
    if args.model is None and not args.tiny:
        print("beam_search: skipped, give --model DIR (e.g. demo_out/runs/asr_conv/model) or --tiny")
        return
    torch.set_num_threads(args.threads)
    model = load_model(args)
    hidden, lens, frames = _timing.encode_each(model, _timing.decoding_clips(args.manifest, args.batch))
    options = {"num_beams": args.beams, "max_new_tokens": args.max_new_tokens}

    def batched() -> list[str]:
        return model.generate(encoder_hidden=hidden, encoder_lens=lens, **options)

    def per_clip() -> list[str]:
        return [
            model.generate(encoder_hidden=f[None], encoder_lens=torch.tensor([len(f)]), **options)[0]
            for f in frames
        ]

    def greedy() -> list[str]:
        return model.generate(encoder_hidden=hidden, encoder_lens=lens, max_new_tokens=args.max_new_tokens)

    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
        same = sum(a == b for a, b in zip(batched(), per_clip()))
        times = _timing.interleaved_times(
            {"beam, clip by clip": per_clip, "beam, batched": batched, "greedy, batched": greedy},
            args.repeats,
        )
    base = statistics.median(times["beam, clip by clip"])
    print(
        f"{_timing.machine_line()}; {len(frames)} clips, {args.beams} beams, at most "
        f"{args.max_new_tokens} new tokens, {args.threads} thread(s), {'bf16' if args.bf16 else 'fp32'}; "
        f"batched output = per-clip output for {same} of {len(frames)} clips"
    )
    print(f"| variant | median of {args.repeats} (s) | speed-up vs clip by clip |")
    print("|---|---:|---:|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} | {base / statistics.median(values):.2f}× |")


if __name__ == "__main__":
    main()
