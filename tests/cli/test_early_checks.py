"""Inputs are checked before any model loads, and each error says where the mistake is: the command
line override that set a key, the missing file, the model directory a run folder holds. A failing
`train` leaves no output folder behind.

"Before any model loads" is asserted by making the model builders fail the test if they run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.paths import REPO
from helpers.tiny_training import one_error_line
from helpers.tiny_training import tiny_train_args as tiny_train_args_for

from speechllm.cli import main
from speechllm.errors import ConfigError

TINY_RECIPE = REPO / "recipes" / "tiny" / "conf" / "asr.yaml"


def train_args(tiny_dirs: dict[str, Path], tones_dir: Path, out: Path, *extra: str) -> list[str]:
    return tiny_train_args_for(TINY_RECIPE, tiny_dirs, tones_dir, out, "trainer.max_steps=1", *extra)


@pytest.fixture
def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to build a frozen encoder or LLM fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the inputs were checked")

    monkeypatch.setattr("speechllm.model.build_encoder", refuse)
    monkeypatch.setattr("speechllm.model.build_llm", refuse)


# -- where a config error comes from -------------------------------------------------------------
def test_a_typo_in_an_override_names_the_override_not_the_yaml_file(capsys) -> None:
    assert main(["train", str(TINY_RECIPE), "model.adaptr.name=conv", "--print-config"]) == 2
    line = one_error_line(capsys)
    assert "command line override 'model.adaptr.name=conv': unknown config key 'model.adaptr'" in line
    assert str(TINY_RECIPE) not in line


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.adapter.kernel=3", "model.adapter.kernel: unknown option of adapter 'base'"),
        ("model.adapter={name: conv, kernel: 3}", "model.adapter.kernel: unknown option of adapter 'conv'"),
        ("optim.lr=fast", "could not be converted"),
        ("optim.lr=-1", "optim.lr=-1.0: must be > 0"),
    ],
)
def test_an_error_in_an_overrides_value_names_the_override(override, expected, capsys) -> None:
    assert main(["train", str(TINY_RECIPE), override, "--print-config"]) == 2
    line = one_error_line(capsys)
    assert f"command line override {override!r}: " in line and expected in line


def test_a_typo_in_a_base_file_names_that_file(tmp_path, capsys) -> None:
    base = tmp_path / "shared" / "base.yaml"
    base.parent.mkdir()
    base.write_text("optim: {lr: 1.0e-3, warmup: 0.1}\n")
    child = tmp_path / "run.yaml"
    child.write_text("extends: shared/base.yaml\nseed: 3\n")
    assert main(["train", str(child), "--print-config"]) == 2
    line = one_error_line(capsys)
    assert f"{base}: unknown config key 'optim.warmup'" in line


# -- component options before models load --------------------------------------------------------
def test_an_adapter_option_typo_is_found_before_transformers_is_imported() -> None:
    """The adapter is checked first: its module needs torch only; the encoder's and LLM's pull in
    transformers (seconds on a laptop). A fresh process shows what was imported."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from speechllm.cli import main\n"
        f"rc = main(['train', {str(TINY_RECIPE)!r}, 'model.adapter.name=conv', 'model.adapter.kernel=3', "
        "'--print-config'])\n"
        "print(rc, 'transformers' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.split() == ["2", "False"], result.stdout + result.stderr
    assert "model.adapter.kernel: unknown option of adapter 'conv'" in result.stderr


def test_the_python_api_checks_component_options_before_building(no_model_loads) -> None:
    from speechllm.model import SpeechLLM

    config = {
        "encoder": {"name": "whisper", "path": "tiny-random-whisper"},
        "adapter": {"name": "conv", "kernal": 3},
        "llm": {"name": "hf_causal_lm", "path": "tiny-random-llama"},
    }
    with pytest.raises(ConfigError, match="model.adapter.kernal: unknown option of adapter 'conv'"):
        SpeechLLM.from_config(config)


def test_a_model_dir_with_a_user_adapter_checks_its_options_before_the_models_load(
    tmp_path, tones_dir, monkeypatch, no_model_loads, capsys
) -> None:
    """A user component's options are only known once its module is imported (--trust-imports),
    which read_model_dir cannot do: the check runs after the import, before the first model."""
    from safetensors.torch import save_file

    (tmp_path / "early_user_adapter.py").write_text(
        "from speechllm import Adapter, register_adapter\n"
        "@register_adapter('early_stack')\n"
        "class Stack(Adapter):\n"
        "    def __init__(self, in_dim, out_dim, *, stride: int = 4, **options):\n"
        "        super().__init__(in_dim, out_dim, **options)\n"
        "    def compress(self, hidden, lens, targets=None):\n"
        "        return hidden, lens\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.yaml").write_text(
        "imports: [early_user_adapter]\n"
        "model:\n"
        "  encoder: {name: whisper, path: tiny-random-whisper}\n"
        "  adapter: {name: early_stack, strid: 2}\n"
        "  llm: {name: hf_causal_lm, path: tiny-random-llama}\n"
    )
    save_file({}, str(model / "trainable.safetensors"))
    wav = next((tones_dir / "wav").glob("*.wav"))
    assert main(["transcribe", "--model", str(model), "--trust-imports", str(wav)]) == 2
    line = one_error_line(capsys)
    assert "model.adapter.strid: unknown option of adapter 'early_stack'" in line


# -- files before models load --------------------------------------------------------------------
def test_transcribe_of_a_missing_file_loads_no_model(tmp_path, monkeypatch, capsys) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded for no file")

    monkeypatch.setattr("speechllm.model.SpeechLLM.from_pretrained", refuse)
    missing = tmp_path / "missing.wav"
    assert main(["transcribe", "--model", str(tmp_path / "model"), str(missing)]) == 1
    assert f"{missing}: file not found" in one_error_line(capsys)


def test_transcribe_files_reports_missing_files_without_loading_the_model(tmp_path, monkeypatch) -> None:
    from speechllm.inference import transcribe_files

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded for no file")

    monkeypatch.setattr("speechllm.model.SpeechLLM.from_pretrained", refuse)
    results = list(transcribe_files(tmp_path / "model", [tmp_path / "a.wav", tmp_path / "b.wav"]))
    assert [(r.path, r.error) for r in results] == [
        (str(tmp_path / "a.wav"), "file not found"),
        (str(tmp_path / "b.wav"), "file not found"),
    ]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.train=[{path: MISSING/cuts.jsonl.gz}]", "manifest not found: MISSING/cuts.jsonl.gz"),
        ("data.encoder_cache=MISSING/cache", "data.encoder_cache: MISSING/cache is not a directory"),
        (
            "prealign.init=MISSING/prealign/model",
            "prealign.init: MISSING/prealign/model/config.yaml not found",
        ),
    ],
    ids=["manifest", "encoder cache", "prealign init"],
)
def test_train_checks_what_it_reads_before_models_load_and_writes_nothing(
    override, expected, tiny_dirs, tones_dir, tmp_path, no_model_loads, capsys
) -> None:
    out = tmp_path / "runs" / "tiny" / "conv"
    argv = train_args(tiny_dirs, tones_dir, out, override.replace("MISSING", str(tmp_path / "missing")))
    assert main(argv) == 2
    assert expected.replace("MISSING", str(tmp_path / "missing")) in one_error_line(capsys)
    assert not (tmp_path / "runs").exists()  # no output_dir, no logs/, no parent folders


def test_train_failing_while_it_builds_leaves_no_new_output_dir(
    tiny_dirs, tones_dir, tmp_path, capsys
) -> None:
    """The LLM's preset name is misspelt: the encoder loads, the LLM does not; the run wrote nothing
    of its own (the output_dir lock and precision.json are removed with the folder)."""
    out = tmp_path / "runs" / "bad"
    argv = [*train_args(tiny_dirs, tones_dir, out), "model.llm.path=tiny-lama"]  # a preset typo
    assert main(argv) == 2
    one_error_line(capsys)
    assert not (tmp_path / "runs").exists()


def test_train_failing_keeps_an_output_dir_that_was_there_before(
    tiny_dirs, tones_dir, tmp_path, capsys
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    argv = [*train_args(tiny_dirs, tones_dir, out), "data.train=[{path: missing.jsonl.gz}]"]
    assert main(argv) == 2
    one_error_line(capsys)
    assert (out / "notes.txt").read_text() == "my notes"


# -- a run folder instead of its model -----------------------------------------------------------
@pytest.mark.parametrize("command", ["transcribe", "evaluate"])
def test_a_run_directory_given_as_model_points_at_its_model_folder(
    command, tmp_path, tones_dir, capsys
) -> None:
    run = tmp_path / "runs" / "tiny" / "conv"
    (run / "model").mkdir(parents=True)
    (run / "model" / "config.yaml").write_text("model: {}\n")
    (run / "model" / "trainable.safetensors").write_bytes(b"")
    if command == "transcribe":
        argv = ["transcribe", "--model", str(run), str(next((tones_dir / "wav").glob("*.wav")))]
    else:
        argv = ["evaluate", "--model", str(run), "--manifest", str(tones_dir / "tones_cuts_test.jsonl.gz")]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert "not a speechllm model directory" in line and f"did you mean {run / 'model'}?" in line
