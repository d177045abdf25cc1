"""Evaluate one demo model on several test sets, loading it once (stage 4 of recipes/demo/run.sh).

Each ``NAME=MANIFEST`` gets its own run directory ``<out>/<NAME>`` in the ``speechllm evaluate``
format (:func:`speechllm.evaluation.evaluate`), so ``speechllm report`` and recipes/demo/report.py
read them.

Usage: python recipes/demo/evaluate.py --model DIR --out DIR --task asr NAME=MANIFEST [...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from lhotse import CutSet, load_manifest

from speechllm.deprecations import decoder_name
from speechllm.evaluation import evaluate
from speechllm.languages import DECODERS
from speechllm.model import SpeechLLM


def spread_cuts(manifest: str, count: int, path: Path) -> Path:
    """``count`` cuts spread evenly over ``manifest`` (every language of a set sorted by language),
    written to ``path``: a subset evaluated alone."""
    cuts = load_manifest(manifest)
    count = min(count, len(cuts))  # a set smaller than the sample: all of it
    picked = sorted({round(i * len(cuts) / count) for i in range(count)})
    path.parent.mkdir(parents=True, exist_ok=True)
    CutSet.from_cuts(cuts[i] for i in picked).to_file(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", metavar="NAME=MANIFEST")
    parser.add_argument("--model", required=True, type=Path, help="a save_pretrained directory")
    parser.add_argument("--out", required=True, type=Path, help="run directories go to OUT/NAME")
    parser.add_argument("--task", default="asr", choices=["asr", "st"])
    parser.add_argument("--max-new-tokens", type=int, default=64, help="greedy limit (targets are short)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8, help="clips decoded together")
    parser.add_argument(
        "--max-cuts",
        type=int,
        default=None,
        help="decode only N cuts spread over each set (the untrained floor: it writes up to "
        "--max-new-tokens of unrelated text per clip, the slowest decoding of the demo)",
    )
    parser.add_argument(
        "--decoder",
        default="llm",
        type=decoder_name,
        choices=DECODERS,
        help="prealign: the pre-aligned adapter decoded alone by the pre-alignment head (CTC greedy, no LLM)",
    )
    parser.add_argument("--num-beams", type=int, default=1, help="beam search width (1: greedy)")
    parser.add_argument(
        "--no-repeat-ngram-size",
        type=int,
        default=0,
        help="repetition guard: never repeat an n-gram (0: off)",
    )
    parser.add_argument(
        "--ctc-weight",
        type=float,
        default=0.0,
        help="joint CTC decoding (ASR, pre-aligned models): the weight of the adapter's CTC prefix "
        "score against the LLM's (0: the LLM alone; docs/evaluation.md)",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "bf16", "32"],
        help="auto: bf16 where the CPU runs it natively, else float32 (SPEECHLLM_BF16=0/1 forces it)",
    )
    parser.add_argument(
        "--normalizer",
        default="paper",
        choices=["paper", "whisper_english", "whisper_basic"],
        help="also score WER under this normalizer (docs/evaluation-checks.md)",
    )
    parser.add_argument(
        "--listening-clips",
        type=int,
        default=0,
        help="run the listening check on this many clips per set (0: off; docs/evaluation-checks.md)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = SpeechLLM.from_pretrained(args.model)
    for item in args.sets:
        name, sep, manifest = item.partition("=")
        if not sep:
            raise SystemExit(f"evaluate.py: expected NAME=MANIFEST, got {item!r}")
        started = time.perf_counter()
        if args.max_cuts:
            sample = args.out / f"{name}.sample{args.max_cuts}.jsonl.gz"
            manifest = spread_cuts(manifest, args.max_cuts, sample)
        metrics = evaluate(
            model,
            manifest,
            task=args.task,
            out_dir=args.out / name,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            device="cpu",
            precision=args.precision,
            decoder=args.decoder,
            decoding={
                "num_beams": args.num_beams,
                "no_repeat_ngram_size": args.no_repeat_ngram_size,
                **({"ctc_weight": args.ctc_weight} if args.ctc_weight else {}),
            },
            normalizer=args.normalizer,
            listening=args.listening_clips > 0,
            listening_clips=max(args.listening_clips, 2),
        )
        scores = {k: round(v, 2) for k, v in metrics.items() if k.startswith(("asr_wer", "st_bleu"))}
        print(f"{args.model} on {name}: {scores} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
