"""Cut the demo's task manifests out of the prepared corpora (stage 1 of recipes/demo/run.sh).

The synthetic corpus holds every language in each split; the demo trains English ASR on the
English cuts and de/es/fr/it → en ST on the others, and evaluates on fixed, seeded samples so
that a run of any length decodes the same sentences.

Usage: python recipes/demo/subsets.py DATA_DIR OUT_DIR [--num-test N] [--num-real N] ...

Writes to OUT_DIR: ``asr_{train,dev,test}.jsonl.gz`` (English), ``st_{train,dev,test}.jsonl.gz``
(de/es/fr/it with an English translation), ``asr_train_probe.jsonl.gz`` (training clips decoded
to show the model fits what it saw) and, from the evaluation-only real speech where stage 0
prepared it: ``real_en.jsonl.gz`` (recorded English Asterisk prompts), ``real_asr.jsonl.gz``
(``--num-real-other`` Spanish, French and Italian Asterisk prompts each, among those with an
English parallel) and ``real_st.jsonl.gz`` (the same es/fr/it prompts, plus as many Dutch and
Czech Fish Fillets lines each: real X → en speech translation).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from lhotse import CutSet, load_manifest

ST_SOURCES = ("de", "es", "fr", "it")
REAL_ASR = ("es", "fr", "it")  # Asterisk prompts with an English parallel
REAL_ST_ONLY = ("nl", "cs")  # Fish Fillets lines with their English subtitle (evaluation-only languages)


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


def real_sets(data_dir: Path, num_en: int, num_other: int, seed: int) -> dict[str, list]:
    """The real-speech test sets (each only where stage 0 prepared its corpus): ``real_en``,
    ``real_asr`` (es/fr/it) and ``real_st`` (the same es/fr/it clips, then nl/cs), by language.

    Raises:
        SystemExit: a language of a prepared corpus has no usable clip.
    """
    sets: dict[str, list] = {}
    asterisk = data_dir / "realspeech" / "realspeech_cuts_test.jsonl.gz"
    if asterisk.is_file():
        prompts = list(load_manifest(asterisk))
        sets["real_en"] = sample([c for c in prompts if _language(c) == "en"], num_en, seed)
        parallel = [c for c in prompts if (c.supervisions[0].custom or {}).get("tgt_lang") == "en"]
        if any(_language(c) in REAL_ASR for c in parallel):
            sets["real_asr"] = _each_language(parallel, REAL_ASR, num_other, seed, asterisk)
            sets["real_st"] = list(sets["real_asr"])
    fillets = data_dir / "fillets" / "fillets_cuts_test.jsonl.gz"
    if fillets.is_file():
        lines = [
            c for c in load_manifest(fillets) if (c.supervisions[0].custom or {}).get("tgt_lang") == "en"
        ]
        sets["real_st"] = sets.get("real_st", []) + _each_language(
            lines, REAL_ST_ONLY, num_other, seed, fillets
        )
    return sets


def _each_language(cuts: list, languages: tuple[str, ...], count: int, seed: int, source: Path) -> list:
    out = []
    for lang in languages:
        found = [c for c in cuts if _language(c) == lang]
        if not found:
            raise SystemExit(f"subsets.py: {source} has no {lang} clip with an English translation")
        out += sample(found, count, seed)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="holds synthetic/ and realspeech/")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--num-test", type=int, default=100, help="English synthetic test clips")
    parser.add_argument("--num-dev", type=int, default=8, help="dev clips decoded during training")
    parser.add_argument("--num-real", type=int, default=100, help="real English prompts")
    parser.add_argument(
        "--num-real-other", type=int, default=20, help="real es/fr/it prompts and nl/cs lines, each"
    )
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
    subsets.update(real_sets(args.data_dir, args.num_real, args.num_real_other, args.seed))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, cuts in subsets.items():
        if not cuts:
            raise SystemExit(f"subsets.py: no cuts for {name} in {args.data_dir}; was stage 0 run?")
        CutSet.from_cuts(cuts).to_file(args.out_dir / f"{name}.jsonl.gz")
        hours = sum(c.duration for c in cuts) / 3600
        print(f"{name}: {len(cuts)} cuts, {hours:.2f} h")


if __name__ == "__main__":
    main()
