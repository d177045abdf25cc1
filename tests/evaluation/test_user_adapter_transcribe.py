"""A model trained on a user adapter (`imports:` naming a module beside the config) transcribes
with one documented step, `--trust-imports`, from any directory and without PYTHONPATH; without
the flag nothing is imported and the error names the flag and the module."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers.paths import TINY_RECIPE
from helpers.tiny_training import tiny_train_args

import speechllm
from speechllm.cli import main
from speechllm.registry import ADAPTERS

MODULE = "newcomer_pool"  # a name no other test uses: modules stay imported for the session
ADAPTER = textwrap.dedent(f"""
    import torch.nn.functional as F
    from speechllm import Adapter, register_adapter

    @register_adapter("{MODULE}")
    class NewcomerPool(Adapter):  # mean of every `stride` frames
        def __init__(self, in_dim, out_dim, *, stride: int = 2, **modality_options):
            super().__init__(in_dim, out_dim, **modality_options)
            self.stride = stride

        def compress(self, hidden, lens, targets=None):
            pooled = F.avg_pool1d(hidden.transpose(1, 2), self.stride, ceil_mode=True).transpose(1, 2)
            return pooled, (lens + self.stride - 1) // self.stride
""")


@pytest.fixture(scope="module")
def user_model(tiny_dirs, tones_dir, tmp_path_factory) -> Path:
    """The user's project (config + adapter module side by side) trained 2 steps; its model dir."""
    project = tmp_path_factory.mktemp("project")
    (project / f"{MODULE}.py").write_text(ADAPTER)
    config = project / "run.yaml"
    config.write_text(f"extends: {TINY_RECIPE}\nimports: [{MODULE}]\nmodel:\n  adapter: {{name: {MODULE}}}\n")
    out = project / "runs" / "pool"
    cwd = os.getcwd()
    os.chdir(project)
    try:
        with ADAPTERS.isolated():  # the module-scoped registration must not outlive this file
            assert main(tiny_train_args(config, tiny_dirs, tones_dir, out)) == 0
    finally:
        os.chdir(cwd)
        sys.modules.pop(MODULE, None)
        sys.path[:] = [p for p in sys.path if Path(p) != project]
    return out / "model"


def test_without_trust_nothing_is_imported_and_the_error_names_flag_and_module(
    user_model, tones_dir, capsys
) -> None:
    wav = tones_dir / "wav" / "tones-test-00000.wav"
    assert main(["transcribe", "--model", str(user_model), str(wav)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("speechllm: error:")]
    assert len(errors) == 1 and "--trust-imports" in errors[0] and MODULE in errors[0], errors
    assert MODULE not in sys.modules


def test_trust_imports_alone_transcribes_from_another_directory(user_model, tones_dir, tmp_path) -> None:
    wav = tones_dir / "wav" / "tones-test-00000.wav"
    # A fresh interpreter in a directory of its own, PYTHONPATH holding only speechllm itself.
    env = {**os.environ, "PYTHONPATH": str(Path(speechllm.__file__).parents[1]), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "speechllm.cli", "transcribe", "--model", str(user_model)]
    done = subprocess.run(
        [*command, "--trust-imports", "--max-new-tokens", "4", str(wav)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"{wav}\t")


def test_a_module_moved_away_is_an_error_naming_where_it_was(user_model, tones_dir, tmp_path, capsys) -> None:
    moved = tmp_path / "model"
    moved.mkdir()
    for name in ("config.yaml", "trainable.safetensors"):
        (moved / name).write_bytes((user_model / name).read_bytes())
    config = (moved / "config.yaml").read_text()
    project = user_model.parents[2]
    (moved / "config.yaml").write_text(config.replace(str(project), str(tmp_path / "elsewhere")))
    wav = tones_dir / "wav" / "tones-test-00000.wav"
    assert main(["transcribe", "--model", str(moved), "--trust-imports", str(wav)]) == 2
    error = capsys.readouterr().err
    assert f"cannot import '{MODULE}'" in error and str(tmp_path / "elsewhere") in error
    assert "PYTHONPATH" in error
