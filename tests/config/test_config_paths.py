"""One rule for relative paths: in a config file, relative to that file (its `extends:` bases
included); on the command line, relative to the working directory; what a run writes (output_dir,
data.skip_report) relative to the working directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.paths import REPO

from speechllm.config import load_config

ROOT = REPO
RECIPE_CONFIGS = sorted((ROOT / "recipes").glob("*/conf/*.yaml"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory that is neither config's folder."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_a_base_files_data_paths_are_relative_to_the_base_not_the_working_directory(tmp_path, elsewhere):
    write(
        tmp_path / "shared" / "base.yaml",
        "data:\n  train: [{path: corpus/train.jsonl.gz}]\n  val: [{path: ../sets/dev.jsonl.gz}]\n",
    )
    child = write(
        tmp_path / "experiments" / "run.yaml",
        "extends: ../shared/base.yaml\ndata:\n  test: [{path: test.jsonl.gz}]\n",
    )
    cfg = load_config(child)
    assert cfg.data.train[0].path == str(tmp_path / "shared" / "corpus" / "train.jsonl.gz")
    assert cfg.data.val[0].path == str(tmp_path / "sets" / "dev.jsonl.gz")
    assert cfg.data.test[0].path == str(tmp_path / "experiments" / "test.jsonl.gz")


def test_a_relative_config_path_gives_paths_relative_to_the_working_directory(tmp_path, monkeypatch):
    write(tmp_path / "conf" / "run.yaml", "data:\n  train: [{path: ../data/train.jsonl.gz}]\n")
    monkeypatch.chdir(tmp_path)
    assert load_config("conf/run.yaml").data.train[0].path == os.path.join("data", "train.jsonl.gz")


def test_overrides_are_relative_to_the_working_directory(tmp_path, elsewhere):
    config = write(tmp_path / "conf" / "run.yaml", "data:\n  train: [{path: train.jsonl.gz}]\n")
    cfg = load_config(
        config,
        [
            "data.train=[{path: mine.jsonl.gz}]",
            "data.encoder_cache=cache",
            "prealign.init=runs/a/prealign/model",
        ],
    )
    assert cfg.data.train[0].path == "mine.jsonl.gz"
    assert cfg.data.encoder_cache == "cache"
    assert cfg.prealign.init == "runs/a/prealign/model"


def test_the_inputs_a_config_names_are_anchored_and_its_outputs_are_not(tmp_path, elsewhere):
    config = write(
        tmp_path / "conf" / "run.yaml",
        "output_dir: runs/x\n"
        "data: {encoder_cache: ../cache, skip_report: skipped.tsv}\n"
        "prealign: {init: ../runs/a/prealign/model}\n",
    )
    cfg = load_config(config)
    assert cfg.data.encoder_cache == str(tmp_path / "cache")
    assert cfg.prealign.init == str(tmp_path / "runs" / "a" / "prealign" / "model")
    assert cfg.output_dir == "runs/x"  # where the command runs, like --out
    assert cfg.data.skip_report == "skipped.tsv"


def test_model_paths_anchor_only_when_they_name_a_local_folder(tmp_path, elsewhere):
    (tmp_path / "conf" / "my_whisper").mkdir(parents=True)
    config = write(
        tmp_path / "conf" / "run.yaml",
        "model:\n"
        "  encoder: {name: whisper, path: my_whisper}\n"  # exists beside the file
        "  llm: {name: hf_causal_lm, path: ./llm}\n"  # explicitly relative, not there yet
        "eval: {comet_model: Unbabel/wmt22-comet-da}\n",  # a hub name
    )
    cfg = load_config(config)
    assert cfg.model.encoder.path == str(tmp_path / "conf" / "my_whisper")
    assert cfg.model.llm.path == str(tmp_path / "conf" / "llm")
    assert cfg.eval.comet_model == "Unbabel/wmt22-comet-da"
    presets = write(
        tmp_path / "conf" / "presets.yaml",
        "model:\n  encoder: {name: whisper, path: whisper-tiny.en}\n"
        "  llm: {name: hf_causal_lm, path: meta-llama/Llama-3.1-8B-Instruct}\n",
    )
    cfg = load_config(presets)
    assert cfg.model.encoder.path == "whisper-tiny.en"
    assert cfg.model.llm.path == "meta-llama/Llama-3.1-8B-Instruct"


def test_absolute_paths_and_interpolations_pass_unchanged(tmp_path, elsewhere):
    config = write(
        tmp_path / "conf" / "run.yaml",
        f"data:\n  train: [{{path: {tmp_path / 'abs.jsonl.gz'}}}]\n"
        "  val: [{path: '${output_dir}/dev.jsonl.gz'}]\n",
    )
    cfg = load_config(config)
    assert cfg.data.train[0].path == str(tmp_path / "abs.jsonl.gz")
    assert cfg.data.val[0].path == "runs/default/dev.jsonl.gz"


def test_dot_dot_is_taken_as_written_through_a_symlinked_folder(tmp_path, monkeypatch):
    """The README's layout in a test: the recipes folder linked into a fresh working directory."""
    real = tmp_path / "checkout"
    write(real / "recipes" / "conf" / "asr.yaml", "data:\n  train: [{path: ../../data/train.jsonl.gz}]\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "recipes").symlink_to(real / "recipes")
    monkeypatch.chdir(work)
    assert load_config("recipes/conf/asr.yaml").data.train[0].path == os.path.join("data", "train.jsonl.gz")


def test_a_module_beside_a_base_config_is_imported(tmp_path, elsewhere):
    write(tmp_path / "shared" / "my_paths_module_xyz.py", "LOADED = True\n")
    write(tmp_path / "shared" / "base.yaml", "imports: [my_paths_module_xyz]\n")
    child = write(tmp_path / "experiments" / "run.yaml", "extends: ../shared/base.yaml\n")
    assert list(load_config(child).imports) == ["my_paths_module_xyz"]


@pytest.mark.parametrize("config", RECIPE_CONFIGS, ids=lambda p: f"{p.parents[1].name}/{p.name}")
def test_recipe_data_paths_point_into_the_repositorys_data_folder_from_any_directory(config, elsewhere):
    cfg = load_config(config)
    paths = [Path(m.path) for split in ("train", "val", "test") for m in cfg.data[split]]
    assert paths, f"{config} names no manifest"
    for path in paths:
        assert path.is_absolute() and ROOT / "data" in path.parents, path
    assert not Path(cfg.output_dir).is_absolute()  # runs are written where the command runs
