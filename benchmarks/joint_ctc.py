"""Joint CTC decoding (``ctc_weight``) against the LLM alone: what the CTC prefix scores cost.

Run: ``python benchmarks/joint_ctc.py --model DIR --manifest M [--batch 8 --ctc_weight 0.8
--max_new_tokens 64 --repeats 3 --threads 2]`` with a pre-aligned ``save_pretrained`` directory
(the demo's: ``demo_out/runs/asr_conv/model``), or ``--tiny`` for the tiny random Whisper and Llama
with a pre-alignment head (tests).

Each clip is encoded alone first (as the encoder-output cache does), then the batch is decoded
greedily by the LLM alone, greedily with joint CTC scoring, and with beams and joint CTC scoring,
timed interleaved. The decoded token counts are printed too: a decoding that writes more tokens
takes more LLM steps, which is not the scorer's cost.
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
        overrides = [
            "model.encoder.path=tiny-random-whisper",
            "model.llm.path=tiny-random-llama",
            "model.prealign.readout=tokens",
        ]
        torch.manual_seed(0)
        return SpeechLLM.from_config(load_config(None, overrides).model).eval()
    return SpeechLLM.from_pretrained(args.model).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a pre-aligned save_pretrained directory")
    parser.add_argument("--manifest", type=Path, default=None, help="clips to decode (default: noise)")
    parser.add_argument("--tiny", action="store_true", help="tiny random Whisper and Llama (for tests)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--ctc_weight", type=float, default=0.8)
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.model is None and not args.tiny:
        print("joint_ctc: skipped, give --model DIR (e.g. demo_out/runs/asr_conv/model) or --tiny")
        return
    torch.set_num_threads(args.threads)
    model = load_model(args)
    hidden, lens, frames = _timing.encode_each(model, _timing.decoding_clips(args.manifest, args.batch))
    guard = {"max_new_tokens": args.max_new_tokens, "no_repeat_ngram_size": 3}
    variants = {
        "LLM alone, greedy": guard,
        f"joint CTC {args.ctc_weight}, greedy": {**guard, "ctc_weight": args.ctc_weight},
        f"LLM alone, beam {args.beams}": {**guard, "num_beams": args.beams},
        f"joint CTC {args.ctc_weight}, beam {args.beams}": {
            **guard,
            "num_beams": args.beams,
            "ctc_weight": args.ctc_weight,
        },
    }
    tokens: dict[str, int] = {}

    def decode(name: str) -> None:
        out = model.generate_detailed(encoder_hidden=hidden, encoder_lens=lens, **variants[name])
        tokens[name] = sum(out.num_tokens)

    with torch.no_grad():
        times = _timing.interleaved_times(
            {name: (lambda n=name: decode(n)) for name in variants}, args.repeats
        )
    base = statistics.median(times["LLM alone, greedy"])
    print(
        f"{_timing.machine_line()}; {len(frames)} clips, at most {args.max_new_tokens} new tokens, "
        f"{args.threads} thread(s), fp32"
    )
    print(f"| decoding | median of {args.repeats} (s) | tokens written | time vs LLM alone, greedy |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {tokens[name]} | {median / base:.2f}× |")


if __name__ == "__main__":
    main()
