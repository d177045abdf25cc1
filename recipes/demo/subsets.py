"""Cut the demo's task manifests out of the prepared corpora (stage 1 of recipes/demo/run.sh).

The synthetic corpus holds every language in each split; the demo trains English ASR on the
English cuts and de/es/fr/it → en ST on the others, and evaluates on fixed, seeded samples so
that a run of any length decodes the same sentences.

Usage: python recipes/demo/subsets.py DATA_DIR OUT_DIR [--num-test N] [--num-real N] ...

Writes to OUT_DIR: ``asr_{train,dev,test}.jsonl.gz`` (English), ``st_{train,dev,test}.jsonl.gz``
(de/es/fr/it with an English translation), ``asr_train_probe.jsonl.gz`` (training clips decoded
to show the model fits what it saw) and ``real_en.jsonl.gz`` (real recorded Asterisk prompts).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from lhotse import CutSet, load_manifest

ST_SOURCES = ("de", "es", "fr", "it")


def _language(cut) -> str:
    return cut.supervisions[0].language


def _is_st(cut) -> bool:
    custom = cut.supervisions[0].custom or {}
    return _language(cut) in ST_SOURCES and custom.get("tgt_lang") == "en"


def sample(cuts: list, count: int | None, seed: int) -> list:
    """``count`` cuts drawn with ``seed`` (all of them for None), in a stable id order."""
    cuts = sorted(cuts, key=lambda cut: cut.id)
    if count is not None and count < len(cuts):
        cuts = random.Random(seed).sample(cuts, count)
    return sorted(cuts, key=lambda cut: cut.id)


def per_language(cuts: list, count: int | None, seed: int) -> list:
    """``count`` cuts of each source language."""
    out = []
    for lang in ST_SOURCES:
        out += sample([cut for cut in cuts if _language(cut) == lang], count, seed)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="holds synthetic/ and realspeech/")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--num-test", type=int, default=100, help="English synthetic test clips")
    parser.add_argument("--num-dev", type=int, default=8, help="dev clips decoded during training")
    parser.add_argument("--num-real", type=int, default=100, help="real English prompts")
    parser.add_argument("--num-st-test", type=int, default=25, help="ST test clips per source language")
    parser.add_argument("--num-probe", type=int, default=16, help="training clips decoded after training")
    parser.add_argument("--max-train-duration", type=float, default=10.0, help="seconds (longer: left out)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--asr-only", action="store_true", help="no ST sets (an English-only corpus)")
    args = parser.parse_args()

    synthetic = args.data_dir / "synthetic"
    splits = {
        split: list(load_manifest(synthetic / f"synthetic_cuts_{split}.jsonl.gz"))
        for split in ("train", "dev", "test")
    }
    english = {split: [c for c in cuts if _language(c) == "en"] for split, cuts in splits.items()}
    st = {split: [c for c in cuts if _is_st(c)] for split, cuts in splits.items()}
    short = [c for c in english["train"] if c.duration <= args.max_train_duration]
    subsets = {
        "asr_train": sample(short, None, args.seed),
        "asr_dev": sample(english["dev"], args.num_dev, args.seed),
        "asr_test": sample(english["test"], args.num_test, args.seed),
        "asr_train_probe": sample(short, args.num_probe, args.seed),
        "st_train": sample(
            [c for c in st["train"] if c.duration <= args.max_train_duration], None, args.seed
        ),
        "st_dev": per_language(st["dev"], max(1, args.num_dev // len(ST_SOURCES)), args.seed),
        "st_test": per_language(st["test"], args.num_st_test, args.seed),
    }
    if args.asr_only:
        subsets = {name: cuts for name, cuts in subsets.items() if not name.startswith("st_")}
    real = args.data_dir / "realspeech" / "realspeech_cuts_test.jsonl.gz"
    if real.is_file():
        real_en = [c for c in load_manifest(real) if _language(c) == "en"]
        subsets["real_en"] = sample(real_en, args.num_real, args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, cuts in subsets.items():
        if not cuts:
            raise SystemExit(f"subsets.py: no cuts for {name} in {args.data_dir}; was stage 0 run?")
        CutSet.from_cuts(cuts).to_file(args.out_dir / f"{name}.jsonl.gz")
        hours = sum(c.duration for c in cuts) / 3600
        print(f"{name}: {len(cuts)} cuts, {hours:.2f} h")


if __name__ == "__main__":
    main()
