"""The `speechllm` commands agree: an option several commands take has one name, one default and one
meaning; the retired spellings still work for a release, with a warning; `train` and `cache`
without arguments name CONFIG; `report` writes beside the runs by default."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from speechllm.cli import build_parser, main
from speechllm.cli.report import default_report_dir
from speechllm.deprecations import SpeechLLMDeprecationWarning

DECODING_COMMANDS = ("evaluate", "transcribe")
SHARED_DECODING_OPTIONS = (
    "--model",
    "--imports",
    "--trust-imports",
    "--task",
    "--device",
    "--batch-size",
    "--max-new-tokens",
    "--decoder",
    "--precision",
    "--bf16",
    "--num-beams",
    "--length-penalty",
    "--no-repeat-ngram-size",
    "--repetition-penalty",
    "--chunk-seconds",
)
# Options whose default differs between commands on purpose, and why.
DIFFERENT_ON_PURPOSE = {
    "--out": "each command's output has its own place (MODEL/eval, data.encoder_cache, beside the runs)",
    "--model": "whisper-baseline takes a Whisper preset (default whisper-tiny.en), the others a model dir",
    "--num-train": "each corpus has its own size",
    "--num-dev": "each corpus has its own size",
    "--num-test": "each corpus has its own size",
    "--languages": "each corpus has its own languages",
    "--max-duration": "evaluate batches by --batch-size unless it is given; cache by seconds only (120)",
    "--src-lang": "prepare manifest: for rows without src_lang (none: each row says); transcribe: en",
}


def commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (sub)command's parser, named as typed (``prepare manifest``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub
                yield from commands(sub, f"{prefix}{name} ")


def visible_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        option: action
        for action in parser._actions
        if action.help != argparse.SUPPRESS
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def all_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {option: action for action in parser._actions for option in action.option_strings}


def test_every_command_that_decodes_has_the_same_decoding_options() -> None:
    parsers = dict(commands(build_parser()))
    evaluate, transcribe = (visible_options(parsers[name]) for name in DECODING_COMMANDS)
    for option in SHARED_DECODING_OPTIONS:
        assert option in evaluate and option in transcribe, option
        a, b = evaluate[option], transcribe[option]
        assert (a.dest, a.default, a.choices, a.type, a.nargs, a.const) == (
            b.dest,
            b.default,
            b.choices,
            b.type,
            b.nargs,
            b.const,
        ), option
        assert a.help == b.help or option == "--batch-size", option  # cuts per batch / files per batch
    assert evaluate["--decoder"].default == "llm" and list(evaluate["--decoder"].choices) == [
        "llm",
        "prealign",
    ]
    assert evaluate["--precision"].default == "auto" and evaluate["--device"].default == "auto"


def test_an_option_shared_by_commands_has_one_default_everywhere() -> None:
    defaults: dict[str, dict[str, object]] = {}
    for name, parser in commands(build_parser()):
        for option, action in visible_options(parser).items():
            defaults.setdefault(option, {})[name] = action.default
    disagreeing = {
        option: by_command
        for option, by_command in defaults.items()
        if option not in DIFFERENT_ON_PURPOSE and len({repr(v) for v in by_command.values()}) > 1
    }
    assert not disagreeing


def test_every_command_that_runs_a_model_defaults_to_the_device_auto() -> None:
    parsers = dict(commands(build_parser()))
    for name in ("evaluate", "transcribe", "cache", "whisper-baseline"):
        assert visible_options(parsers[name])["--device"].default == "auto", name


def test_languages_are_src_lang_and_tgt_lang_in_every_command() -> None:
    for name, parser in commands(build_parser()):
        options = visible_options(parser)
        assert "--language" not in options, name
        if "--tgt-lang" in options:
            assert "--src-lang" in options, name


@pytest.mark.parametrize(
    ("argv", "dest", "value", "new"),
    [
        (["prepare", "manifest", "t.tsv", "out", "--language", "de"], "src_lang", "de", "--src-lang"),
        (["evaluate", "--model", "m", "--manifest", "x", "--sfm", "S"], "sfm", "S", "--sfm-label"),
        (["evaluate", "--model", "m", "--manifest", "x", "--llm", "L"], "llm", "L", "--llm-label"),
        (
            ["evaluate", "--model", "m", "--manifest", "x", "--adapter", "A"],
            "adapter",
            "A",
            "--adapter-label",
        ),
        (["prepare", "covost2", "cv", "tsv", "out", "--max-duration", "15"], "max_cut_duration", 15.0, None),
        (["prepare", "covost2", "cv", "tsv", "out", "--min-duration", "1"], "min_cut_duration", 1.0, None),
        (["prepare", "realspeech", "out", "--max-duration", "30"], "max_cut_duration", 30.0, None),
        (["cache", "c.yaml", "--batch-duration", "60"], "max_duration", 60.0, "--max-duration"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_a_retired_option_still_works_and_warns_naming_the_new_one(argv, dest, value, new):
    new = new or argv[-2].replace("-duration", "-cut-duration")
    with pytest.warns(SpeechLLMDeprecationWarning, match=f"{argv[-2]} is deprecated .*; use {new}"):
        args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    parsers = dict(commands(build_parser()))
    command = parsers[next(name for n in (2, 1) if (name := " ".join(argv[:n])) in parsers)]
    assert argv[-2] not in visible_options(command) and argv[-2] in all_options(command)  # hidden


def test_the_new_names_parse_without_a_warning(recwarn) -> None:
    args = build_parser().parse_args(
        [
            "evaluate",
            "--model",
            "m",
            "--manifest",
            "x",
            "--sfm-label",
            "S",
            "--llm-label",
            "L",
            "--adapter-label",
            "A",
        ]
    )
    assert (args.sfm, args.llm, args.adapter) == ("S", "L", "A")
    args = build_parser().parse_args(["prepare", "manifest", "t.tsv", "out", "--src-lang", "de"])
    assert args.src_lang == "de"
    assert not [w for w in recwarn if issubclass(w.category, SpeechLLMDeprecationWarning)]


def test_evaluate_says_its_label_options_only_label_the_run(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for kind in ("sfm", "llm", "adapter"):
        assert f"--{kind}-label LABEL" in help_text
    assert "they change nothing in decoding" in help_text


@pytest.mark.parametrize("command", ["train", "cache"])
def test_a_config_command_without_arguments_names_config(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "the following arguments are required: CONFIG" in err and "overrides" not in err
    assert f"speechllm {command}" in err and "CONFIG [KEY=VALUE ...]" in err


def test_report_needs_no_out_and_writes_beside_the_runs(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["report", "runs/tiny/base/eval", "runs/tiny/conv/eval"])
    assert args.out is None
    assert default_report_dir(args.run_dirs) == Path("runs/tiny/report")
    assert default_report_dir([Path("runs/tiny/conv/eval")]) == Path("runs/tiny/conv/report")
    assert default_report_dir([tmp_path / "a" / "eval", tmp_path / "b" / "eval"]) == Path("report")


def test_transcribe_passes_decoder_precision_and_device_to_the_library(monkeypatch, tmp_path, capsys) -> None:
    import speechllm.inference

    seen: dict[str, object] = {}

    def fake(model_dir, paths, decoder="llm", precision="auto", device="auto", imports=(), **rest):
        seen.update(decoder=decoder, precision=precision, device=device, imports=imports)
        return iter(())

    monkeypatch.setattr(speechllm.inference, "transcribe_files", fake)
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"")
    argv = ["transcribe", "--model", "m", str(wav), "--decoder", "prealign", "--precision", "32"]
    assert main([*argv, "--imports", "my_mod,other", "--device", "cpu"]) == 0
    assert (seen["decoder"], seen["precision"], seen["device"]) == ("prealign", "32", "cpu")
    assert seen["imports"] == ["my_mod", "other"]


def test_transcribe_with_the_prealign_decoder_needs_a_prealigned_model(
    tmp_path, tones_dir, tiny_model_overrides
):
    from speechllm.config import load_config
    from speechllm.errors import UsageError
    from speechllm.inference import transcribe_files
    from speechllm.model import SpeechLLM

    model = SpeechLLM.from_config(load_config(None, [*tiny_model_overrides, "model.prealign={}"]).model)
    with_head = model.save_pretrained(tmp_path / "with_head")
    model.prealign = None
    model.config.pop("prealign")
    without_head = model.save_pretrained(tmp_path / "without_head")
    wav = next((tones_dir / "wav").glob("*.wav"))
    (result,) = transcribe_files(with_head, [wav], decoder="prealign", device="cpu")
    assert result.error is None and isinstance(result.text, str)
    with pytest.raises(UsageError, match="--decoder prealign. needs a pre-aligned model"):
        list(transcribe_files(without_head, [wav], decoder="prealign", device="cpu"))
