"""Decode one demo model's test set greedily and with beams 2 and 4, each with and without the
repetition guard; print the WER and decoding time of each side by side (docs/evaluation.md).

Usage: python recipes/demo/decoding.py --model demo_out/runs/asr_conv/model \
    --manifest data/demo/sets/asr_test.jsonl.gz --out demo_out/decoding [--threads 2]

Each variant is a ``speechllm evaluate`` run directory ``<out>/<variant>`` (its ``run.json``
records how it was decoded); the table goes to stdout and ``<out>/decoding.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from speechllm.evaluation import evaluate
from speechllm.io import atomic_write
from speechllm.model import SpeechLLM

GUARD = {"no_repeat_ngram_size": 3}  # the demo's loops repeat 3-grams ("the stopping of the stopping of")
VARIANTS = {
    "greedy": {},
    "greedy + guard": GUARD,
    "beam 2": {"num_beams": 2},
    "beam 2 + guard": {"num_beams": 2, **GUARD},
    "beam 4": {"num_beams": 4},
    "beam 4 + guard": {"num_beams": 4, **GUARD},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="a save_pretrained directory")
    parser.add_argument("--manifest", required=True, type=Path, help="the test set (a CutSet manifest)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--max-new-tokens", type=int, default=64, help="the demo's limit (targets are short)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "bf16", "32"],
        help="auto: bf16 where the CPU runs it natively, else float32 (SPEECHLLM_BF16=0/1 forces it)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = SpeechLLM.from_pretrained(args.model)
    rows = ["| decoding | WER % | decode time (s) | time vs greedy |", "|---|---:|---:|---:|"]
    greedy_s = None
    for name, decoding in VARIANTS.items():
        started = time.perf_counter()
        metrics = evaluate(
            model,
            args.manifest,
            out_dir=args.out / name.replace(" + ", "_").replace(" ", ""),
            batch_size=8,
            max_new_tokens=args.max_new_tokens,
            device="cpu",
            precision=args.precision,
            decoding=decoding,
        )
        seconds = time.perf_counter() - started
        greedy_s = greedy_s or seconds
        rows.append(f"| {name} | {metrics['asr_wer_en']:.1f} | {seconds:.0f} | {seconds / greedy_s:.2f}× |")
        print(rows[-1], flush=True)
    table = "\n".join(rows) + "\n"
    with atomic_write(args.out / "decoding.md") as tmp:
        tmp.write_text(f"{args.model} on {args.manifest}, {args.threads} thread(s)\n\n{table}")
    print(table)


if __name__ == "__main__":
    main()
