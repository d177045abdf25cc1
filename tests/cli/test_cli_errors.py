"""The `speechllm` command's answer to bad input: one line naming the file or key, exit status 2.

Run through `speechllm.cli.main`, the path a user takes; `--debug` gives the traceback instead.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest
from helpers.paths import TINY_RECIPE
from helpers.tiny_training import one_error_line
from helpers.tiny_training import tiny_train_args as tiny_train_args_for

from speechllm.cli import main
from speechllm.errors import SpeechLLMError


def tiny_train_args(tiny_dirs: dict[str, Path], tones_dir: Path, out: Path, *extra: str) -> list[str]:
    return tiny_train_args_for(TINY_RECIPE, tiny_dirs, tones_dir, out, *extra)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model:\n  adapter: [\n", r"not valid YAML: .*line 3"),
        ("- a\n- b\n", r"a config is a mapping of keys"),
        ("model:\n  adapter:\n    name: conv\n    kernel: 3\n", r"model\.adapter\.kernel: unknown option"),
        ("modle: {}\n", r"modle"),
    ],
    ids=["yaml syntax", "top-level list", "unknown option", "unknown key"],
)
def test_bad_configs_are_one_line_naming_the_file_or_key(tmp_path, capsys, text, expected) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert main(["train", str(config), "--print-config"]) == 2
    line = one_error_line(capsys)
    assert re.search(expected, line), line
    if "key" not in expected and "option" not in expected:
        assert str(config) in line


def test_debug_shows_the_traceback(tmp_path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("- a\n")
    with pytest.raises(SpeechLLMError, match="a config is a mapping"):
        main(["--debug", "train", str(config), "--print-config"])


def test_missing_config_file_is_one_line(tmp_path, capsys) -> None:
    assert main(["train", str(tmp_path / "absent.yaml"), "--print-config"]) == 2
    assert str(tmp_path / "absent.yaml") in one_error_line(capsys)


def test_a_broken_manifest_in_training_is_one_line_naming_file_and_line(
    tiny_dirs, tones_dir, tmp_path, capsys
) -> None:
    manifest = tmp_path / "cuts.jsonl.gz"
    with gzip.open(tones_dir / "tones_cuts_train.jsonl.gz", "rt") as good:
        first = good.readline()
    with gzip.open(manifest, "wt") as bad:
        bad.write(first + "{not json\n")
    args = tiny_train_args(tiny_dirs, tones_dir, tmp_path / "run")
    args[5] = f"data.train=[{{path: {manifest}}}]"
    assert main(args) == 2
    line = one_error_line(capsys)
    assert f"{manifest}:2: not valid JSON" in line


def test_a_truncated_checkpoint_is_one_line_naming_it(tiny_dirs, tones_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(tiny_train_args(tiny_dirs, tones_dir, out)) == 0
    last = out / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    capsys.readouterr()
    assert main([*tiny_train_args(tiny_dirs, tones_dir, out), "--resume", "last"]) == 2
    line = one_error_line(capsys)
    assert str(last) in line and "truncated or corrupt" in line


def test_training_into_a_used_output_dir_needs_resume_or_overwrite(
    tiny_dirs, tones_dir, tmp_path, capsys
) -> None:
    out = tmp_path / "run"
    assert main(tiny_train_args(tiny_dirs, tones_dir, out)) == 0
    weights = (out / "model" / "trainable.safetensors").read_bytes()
    capsys.readouterr()
    assert main(tiny_train_args(tiny_dirs, tones_dir, out, "seed=1")) == 2
    line = one_error_line(capsys)
    assert "trainable.safetensors" in line and "--resume last" in line and "--overwrite" in line
    assert (out / "model" / "trainable.safetensors").read_bytes() == weights  # nothing was lost

    assert main([*tiny_train_args(tiny_dirs, tones_dir, out, "seed=1"), "--overwrite"]) == 0
    # Lightning would have kept the old last.ckpt beside a new last-v1.ckpt
    assert not list((out / "checkpoints").glob("*-v1.ckpt"))
    assert (out / "model" / "trainable.safetensors").read_bytes() != weights


@pytest.mark.parametrize(
    "argv",
    [
        ["transcribe", "--model", "m", "a.wav", "--batch-size", "-1"],
        ["transcribe", "--model", "m", "a.wav", "--batch-size", "0"],
        ["transcribe", "--model", "m", "a.wav", "--chunk-seconds", "0"],
        ["evaluate", "--model", "m", "--manifest", "x.jsonl.gz", "--batch-size", "0"],
        ["evaluate", "--model", "m", "--manifest", "x.jsonl.gz", "--max-duration", "-1"],
        ["evaluate", "--model", "m", "--manifest", "x.jsonl.gz", "--num-beams", "0"],
        ["whisper-baseline", "--manifest", "x.jsonl.gz", "--out", "o", "--max-new-tokens", "0"],
        ["cache", "c.yaml", "--batch-duration", "nan"],
    ],
    ids=lambda argv: " ".join(argv[:1] + argv[-2:]),
)
def test_sizes_and_durations_that_cannot_work_are_refused_naming_the_flag(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {argv[-2]}: must be" in err and "Traceback" not in err


def test_the_python_api_refuses_the_same_sizes(tmp_path) -> None:
    from speechllm.evaluation import evaluate
    from speechllm.inference import transcribe_files

    with pytest.raises(SpeechLLMError, match="batch_size must be positive, got 0"):
        evaluate(tmp_path / "m", tmp_path / "x.jsonl.gz", batch_size=0)
    with pytest.raises(SpeechLLMError, match="max_duration must be positive, got -1"):
        evaluate(tmp_path / "m", tmp_path / "x.jsonl.gz", batch_size=None, max_duration=-1)
    with pytest.raises(SpeechLLMError, match="got -1 and 200"):
        next(transcribe_files(tmp_path / "m", [tmp_path / "a.wav"], batch_size=-1))


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("optim.lr=-1", "optim.lr=-1.0: must be > 0"),
        ("data.max_duration=0", "data.max_duration=0.0: must be > 0"),
        ("trainer.max_steps=-5", "trainer.max_steps=-5: must be > 0, or -1"),
        ("optim.warmup_ratio=1.5", "optim.warmup_ratio=1.5: must be in [0, 1)"),
        ("data.max_text_tokens=0", "data.max_text_tokens=0: must be >= 1 or null"),
        ("prealign.lr=nan", "prealign.lr=nan: must be > 0"),
    ],
)
def test_numbers_no_run_can_work_with_are_one_line_before_anything_loads(override, expected, capsys) -> None:
    assert main(["train", str(TINY_RECIPE), override, "--print-config"]) == 2
    assert expected in one_error_line(capsys)


def test_a_preset_typo_names_the_presets_instead_of_trying_the_hub(
    tiny_dirs, tones_dir, tmp_path, capsys
) -> None:
    argv = tiny_train_args(tiny_dirs, tones_dir, tmp_path / "run")
    argv = [a if not a.startswith("model.llm.path=") else "model.llm.path=tiny-lama" for a in argv]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert "'tiny-lama' is neither a local directory nor a preset; did you mean 'tiny-random-llama'?" in line
    assert "smollm2-135m-instruct" in line  # the list of presets


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.llm.prompt.asr_instructions=[]", "asr_instructions is empty"),
        ("model.llm.prompt.asr_instructions=['Transcribe the {language} audio.']", "uses {language}"),
        ("model.llm.prompt.st_instructions=['From {src} to {tgt} in {style}.']", "uses {style}"),
        (
            "model.llm.prompt.system_prompt='Listen: <|speechllm_audio|>'",
            "system_prompt holds <|speechllm_audio|>",
        ),
        ("model.llm.prompt.sytem_prompt=hi", "sytem_prompt"),
    ],
    ids=["empty list", "unknown field", "unknown st field", "audio placeholder", "unknown key"],
)
def test_prompts_that_cannot_render_are_one_line_before_the_llm_loads(override, expected, capsys) -> None:
    assert main(["train", str(TINY_RECIPE), override, "--print-config"]) == 2
    assert expected in one_error_line(capsys)


def test_an_empty_training_manifest_is_one_line_before_the_models_load(
    tiny_dirs, tones_dir, tmp_path, capsys
):
    empty = tmp_path / "empty.jsonl.gz"
    with gzip.open(empty, "wt"):
        pass
    argv = tiny_train_args(tiny_dirs, tones_dir, tmp_path / "run")
    argv = [a if not a.startswith("data.train=") else f"data.train=[{{path: {empty}}}]" for a in argv]
    assert main(argv) == 2
    assert f"data.train: {empty} holds no cut" in one_error_line(capsys)
    assert not (tmp_path / "run" / "precision.json").exists()  # before anything was built
