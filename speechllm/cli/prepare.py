"""``speechllm prepare {covost2,synthetic,realspeech,fillets,manifest,tones,shar}``: data on disk →
manifests.

Each subcommand forwards its flags to the recipe's ``prepare_*`` function of the same parameter
names; handlers import their recipe lazily so ``speechllm --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from speechllm.cli._args import (
    add_deprecated_alias,
    add_trust_manifest_argument,
    call_with_args,
    fraction,
    non_negative_int,
    positive_float,
    positive_int,
)
from speechllm.languages import LANGUAGE_NAMES, PAPER_ST_PAIRS, pair_name

logger = logging.getLogger(__name__)


def _summary(manifests: dict[str, dict[str, Any]]) -> None:
    for split, parts in manifests.items():
        cuts = parts["cuts"]
        hours = sum(cut.duration for cut in cuts) / 3600
        print(f"{split}: {len(cuts)} cuts, {hours:.2f} h")


def _run_covost2(args: argparse.Namespace) -> None:
    from speechllm.prepare.covost2 import PAPER_TEST_MAX_DURATION, PAPER_TEST_MIN_DURATION, prepare_covost2

    min_duration, max_duration, filter_splits = args.min_cut_duration, args.max_cut_duration, None
    if args.paper_test_filter:
        min_duration, max_duration, filter_splits = PAPER_TEST_MIN_DURATION, PAPER_TEST_MAX_DURATION, ["test"]
    _summary(
        call_with_args(
            prepare_covost2,
            args,
            min_duration=min_duration,
            max_duration=max_duration,
            duration_filter_splits=filter_splits,
        )
    )


def _run_synthetic(args: argparse.Namespace) -> None:
    from speechllm.prepare.synthetic import prepare_synthetic

    _summary(call_with_args(prepare_synthetic, args, num_train=_train_counts(args.num_train, args.languages)))


def _count_or_language_count(text: str) -> tuple[str | None, int]:
    """``"600"`` → (None, 600); ``"en=6000"`` → ("en", 6000)."""
    lang, _, count = text.rpartition("=")
    if lang and lang not in LANGUAGE_NAMES:
        raise argparse.ArgumentTypeError(
            f"unknown language {lang!r} in {text!r}; valid: {', '.join(sorted(LANGUAGE_NAMES))}"
        )
    try:
        value = int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r} (N or LANG=N)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a count must be >= 0: {text!r}")
    return (lang or None, value)


def _train_counts(given: list[tuple[str | None, int]], languages: list[str]) -> int | dict[str, int]:
    """One count for all languages, or per language (LANG=N entries over the plain count, else 2000)."""
    default = next((n for lang, n in reversed(given) if lang is None), 2000)
    per_language = {lang: n for lang, n in given if lang is not None}
    return {lang: per_language.get(lang, default) for lang in languages} if per_language else default


def _run_realspeech(args: argparse.Namespace) -> None:
    from speechllm.prepare.realspeech import prepare_realspeech

    _summary(call_with_args(prepare_realspeech, args, max_duration=args.max_cut_duration))


def _run_fillets(args: argparse.Namespace) -> None:
    from speechllm.prepare.fillets import prepare_fillets

    _summary(call_with_args(prepare_fillets, args, max_duration=args.max_cut_duration))


def _run_manifest(args: argparse.Namespace) -> None:
    from speechllm.prepare.manifest_import import import_manifest

    _summary(call_with_args(import_manifest, args, language=args.src_lang))


def _run_tones(args: argparse.Namespace) -> None:
    from speechllm.prepare.tones import prepare_tones

    _summary({split: {"cuts": cuts} for split, cuts in call_with_args(prepare_tones, args).items()})


def register(subparsers: argparse._SubParsersAction) -> None:
    prepare = subparsers.add_parser(
        "prepare",
        help="turn corpora on disk into lhotse manifests",
        description="Turn corpora on disk into lhotse manifests (and Shar shards).",
    )
    commands = prepare.add_subparsers(
        dest="prepare_command", metavar="{covost2,synthetic,realspeech,fillets,manifest,tones,shar}"
    )
    commands.required = True
    for add in (
        _add_covost,
        _add_synthetic,
        _add_real,
        _add_fillets,
        _add_manifest,
        _add_tones,
        add_shar_command,
    ):
        add(commands)


def _add_covost(commands: argparse._SubParsersAction) -> None:
    covost = commands.add_parser("covost2", help="CoVoST 2 (Common Voice clips + CoVoST 2 TSVs)")
    covost.add_argument("cv_root", help="Common Voice root with <lang>/clips/")
    covost.add_argument("covost_tsv_dir", help="directory of covost_v2.<src>_<tgt>.<split>.tsv")
    covost.add_argument("output_dir")
    covost.add_argument(
        "--pairs",
        nargs="+",
        default=[pair_name(src, tgt) for src, tgt in PAPER_ST_PAIRS],
        help="directions src_tgt (default: the paper's en_de de_en es_en fr_en it_en)",
    )
    covost.add_argument(
        "--splits", nargs="+", default=["train", "dev", "test"], choices=["train", "dev", "test"]
    )
    _add_cut_duration_arguments(covost, "clips (all splits)")
    covost.add_argument(
        "--paper-test-filter",
        action="store_true",
        help="keep test clips of 1-15 s as the paper does (overrides --min/--max-cut-duration)",
    )
    _add_num_jobs_argument(covost)
    covost.set_defaults(func=_run_covost2)


def _add_synthetic(commands: argparse._SubParsersAction) -> None:
    languages = sorted(LANGUAGE_NAMES)
    synthetic = commands.add_parser(
        "synthetic", help="parallel en/de/es/fr/it corpus spoken by espeak-ng, festival, flite, piper"
    )
    synthetic.add_argument("output_dir")
    synthetic.add_argument("--languages", nargs="+", default=languages, choices=languages)
    synthetic.add_argument(
        "--num-train",
        nargs="+",
        type=_count_or_language_count,
        default=[(None, 2000)],  # parsed form: argparse does not convert a list default
        metavar="N|LANG=N",
        help="training sentences per language: one count, and/or LANG=N for a language (default 2000)",
    )
    synthetic.add_argument("--num-dev", type=non_negative_int, default=100, help="sentences per language")
    synthetic.add_argument("--num-test", type=non_negative_int, default=100, help="sentences per language")
    _add_num_jobs_argument(synthetic, "synthesis processes")
    synthetic.add_argument(
        "--cache-dir", default=None, help="Debian text sources (default: <output_dir>/debian)"
    )
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument(
        "--engines",
        nargs="+",
        default=["espeak-ng"],
        choices=["espeak-ng", "festival", "flite", "piper"],
        help="synthesis engines each utterance's voice is drawn from (default: espeak-ng)",
    )
    synthetic.add_argument(
        "--extra-train-text",
        nargs="+",
        default=[],
        choices=["wordnet"],
        help="training-only English text: wordnet = WordNet's usage examples (broader vocabulary); "
        "dev and test stay the same sentences",
    )
    synthetic.add_argument(
        "--extra-train-share",
        type=fraction,
        default=0.5,
        help="share of the English training sentences taken from --extra-train-text (default 0.5)",
    )
    synthetic.set_defaults(func=_run_synthetic)


def _add_real(commands: argparse._SubParsersAction) -> None:
    real = commands.add_parser(
        "realspeech", help="evaluation-only real speech (Asterisk prompts, en/es/fr/it)"
    )
    real.add_argument("output_dir")
    real.add_argument(
        "--languages", nargs="+", default=["en", "es", "fr", "it"], choices=["en", "es", "fr", "it"]
    )
    real.add_argument("--cache-dir", default=None, help="Debian packages (default: <output_dir>/debian)")
    real.add_argument(
        "--package-root", default=None, help="already unpacked packages (skips apt-get download)"
    )
    _add_cut_duration_arguments(real, "prompts", minimum=False)
    _add_num_jobs_argument(real)
    real.set_defaults(func=_run_realspeech)


def _add_fillets(commands: argparse._SubParsersAction) -> None:
    fillets = commands.add_parser(
        "fillets", help="evaluation-only real speech (Fish Fillets NG voices: nl/cs with English, en)"
    )
    fillets.add_argument("output_dir")
    fillets.add_argument(
        "--languages",
        nargs="+",
        default=["nl", "cs"],
        choices=["nl", "cs", "en"],
        help="voices to read (default: nl cs; en: the few texted clips of the English package)",
    )
    fillets.add_argument("--cache-dir", default=None, help="Debian packages (default: <output_dir>/debian)")
    fillets.add_argument(
        "--package-root", default=None, help="already unpacked packages (skips apt-get download)"
    )
    _add_cut_duration_arguments(fillets, "clips", minimum=False)
    _add_num_jobs_argument(fillets)
    fillets.set_defaults(func=_run_fillets)


def _add_manifest(commands: argparse._SubParsersAction) -> None:
    manifest = commands.add_parser(
        "manifest",
        help="your own data: a TSV/JSONL table (audio, text[, translation, src_lang, tgt_lang, id]) "
        "or a kaldi data dir",
    )
    manifest.add_argument("source", help="a .tsv / .jsonl table, or a kaldi data directory")
    manifest.add_argument("output_dir")
    manifest.add_argument("--corpus", default="custom", help="file name prefix (default: custom)")
    manifest.add_argument("--split", default="train")
    manifest.add_argument("--src-lang", default=None, help="source language where the table has no src_lang")
    add_deprecated_alias(manifest, "--language", "--src-lang", dest="src_lang")
    manifest.add_argument("--tgt-lang", default=None, help="target language where the table has no tgt_lang")
    manifest.add_argument(
        "--audio-root", default=None, help="base of relative audio paths (default: the table's dir)"
    )
    manifest.add_argument(
        "--resample-to", type=positive_int, default=None, help="cuts resample to this rate on load"
    )
    _add_num_jobs_argument(manifest)
    manifest.set_defaults(func=_run_manifest)


def _add_tones(commands: argparse._SubParsersAction) -> None:
    tones = commands.add_parser("tones", help="tiny tone-word corpus for CI and the tiny recipe (no speech)")
    tones.add_argument("output_dir")
    tones.add_argument("--num-train", type=non_negative_int, default=200, help="clips (default 200)")
    tones.add_argument("--num-dev", type=non_negative_int, default=20, help="clips (default 20)")
    tones.add_argument("--num-test", type=non_negative_int, default=20, help="clips (default 20)")
    tones.add_argument("--seed", type=int, default=0)
    tones.set_defaults(func=_run_tones)


def _add_num_jobs_argument(parser: argparse.ArgumentParser, what: str = "worker processes") -> None:
    parser.add_argument("--num-jobs", type=positive_int, default=1, help=f"{what} (default 1)")


def _add_cut_duration_arguments(parser: argparse.ArgumentParser, what: str, minimum: bool = True) -> None:
    """``--min/--max-cut-duration``: a clip's length, as ``data.min/max_cut_duration`` in a config
    (``--max-duration`` is seconds of audio per batch in ``evaluate``, as ``data.max_duration``)."""
    for bound, side in (("min", "shorter"), ("max", "longer"))[0 if minimum else 1 :]:
        parser.add_argument(
            f"--{bound}-cut-duration",
            type=positive_float,
            default=None,
            metavar="SECONDS",
            help=f"leave out {side} {what}",
        )
        add_deprecated_alias(
            parser, f"--{bound}-duration", f"--{bound}-cut-duration", dest=f"{bound}_cut_duration",
            type=positive_float,
        )  # fmt: skip


def add_shar_command(commands: argparse._SubParsersAction) -> None:
    """Add ``shar`` to the ``speechllm prepare`` subcommands."""
    shar = commands.add_parser("shar", help="export a manifest to lhotse Shar shards (multi-node streaming)")
    shar.add_argument("manifest", help="a CutSet manifest (.jsonl.gz)")
    shar.add_argument("output_dir")
    shar.add_argument("--shard-size", type=positive_int, default=1000, help="cuts per shard (default: 1000)")
    shar.add_argument("--audio-format", default="flac", choices=("flac", "wav"))
    shar.add_argument(
        "--with-encoder-cache", default=None, metavar="DIR", help="also store cached encoder outputs"
    )
    _add_num_jobs_argument(shar)
    add_trust_manifest_argument(shar)
    shar.set_defaults(func=_run_shar)


def _run_shar(args: argparse.Namespace) -> int:
    from speechllm.prepare.shar_writer import export_shar

    written = call_with_args(export_shar, args, encoder_cache=args.with_encoder_cache)
    print(f"{len(written.get('cuts', []))} shards in {args.output_dir} ({', '.join(sorted(written))})")
    return 0
