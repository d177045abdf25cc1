"""Checkpoint averaging: the mean of known tensors is exact, the newest K step checkpoints are taken
(by step number, last.ckpt left out), the result loads as a model, and mismatched files are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from speechllm.cli import main
from speechllm.config import load_config
from speechllm.errors import CheckpointError
from speechllm.lightning.averaging import average_checkpoints, average_tensors, last_checkpoints
from speechllm.model import SpeechLLM


def _checkpoint(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    """A checkpoint as the LightningModule writes it: trained parameters under ``model.``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {f"model.{k}": v for k, v in tensors.items()}, "global_step": 1}, path)
    return path


def test_the_average_of_known_tensors_is_exact(tmp_path):
    values = [
        {"w": torch.tensor([1.0, -2.0, 8.0]), "h": torch.tensor([1.0, 2.0], dtype=torch.bfloat16)},
        {"w": torch.tensor([2.0, 4.0, 0.5]), "h": torch.tensor([3.0, 4.0], dtype=torch.bfloat16)},
        {"w": torch.tensor([6.0, 1.0, 0.5]), "h": torch.tensor([5.0, 0.0], dtype=torch.bfloat16)},
    ]
    vocab = torch.tensor([3, 7, 11])  # ids: equal in every file, kept as they are
    paths = [_checkpoint(tmp_path / f"{i}.ckpt", {**v, "ids": vocab}) for i, v in enumerate(values)]
    mean = average_tensors(paths)
    assert torch.equal(mean["w"], torch.tensor([3.0, 1.0, 3.0]))
    assert mean["h"].dtype == torch.bfloat16 and torch.equal(mean["h"], torch.tensor([3.0, 2.0]).bfloat16())
    assert torch.equal(mean["ids"], vocab)


def test_mismatched_keys_shapes_and_ids_name_the_file(tmp_path):
    first = _checkpoint(tmp_path / "a.ckpt", {"w": torch.zeros(3), "ids": torch.tensor([1, 2])})
    other_key = _checkpoint(tmp_path / "b.ckpt", {"v": torch.zeros(3), "ids": torch.tensor([1, 2])})
    other_shape = _checkpoint(tmp_path / "c.ckpt", {"w": torch.zeros(4), "ids": torch.tensor([1, 2])})
    other_ids = _checkpoint(tmp_path / "d.ckpt", {"w": torch.zeros(3), "ids": torch.tensor([1, 3])})
    with pytest.raises(CheckpointError, match=r"b\.ckpt.*missing: \['w'\], unexpected: \['v'\]"):
        average_tensors([first, other_key])
    with pytest.raises(CheckpointError, match=r"c\.ckpt: w is \(4,\)"):
        average_tensors([first, other_shape])
    with pytest.raises(CheckpointError, match=r"d\.ckpt: ids"):
        average_tensors([first, other_ids])


def test_the_newest_step_checkpoints_are_taken_by_step_number(tmp_path):
    for step in (9, 10, 100):
        _checkpoint(tmp_path / "checkpoints" / f"step={step}.ckpt", {"w": torch.zeros(1)})
    _checkpoint(tmp_path / "checkpoints" / "last.ckpt", {"w": torch.zeros(1)})
    assert [p.name for p in last_checkpoints(tmp_path, 2)] == ["step=10.ckpt", "step=100.ckpt"]
    with pytest.raises(CheckpointError, match="3 step checkpoint.*save_top_k=4"):
        last_checkpoints(tmp_path, 4)


def test_averaged_run_loads_as_a_model_with_the_mean_parameters(tmp_path, tiny_model_overrides, capsys):
    torch.manual_seed(0)
    model = SpeechLLM.from_config(load_config(None, tiny_model_overrides).model)
    model.save_pretrained(tmp_path / "model")
    trained = model.trainable_state_dict()
    for step, scale in ((10, 1.0), (20, 2.0), (30, 4.0)):
        scaled = {k: v * scale for k, v in trained.items()}
        _checkpoint(tmp_path / "checkpoints" / f"step={step}.ckpt", scaled)

    assert main(["average", str(tmp_path), "--last", "2", "--out", str(tmp_path / "avg")]) == 0
    assert "wrote" in capsys.readouterr().out
    averaged = SpeechLLM.from_pretrained(tmp_path / "avg").trainable_state_dict()
    for name, value in trained.items():
        torch.testing.assert_close(averaged[name], value * 3.0)

    _checkpoint(tmp_path / "checkpoints" / "step=40.ckpt", {"adapter.other": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"step=40\.ckpt"):
        average_checkpoints(tmp_path, tmp_path / "bad", last=2)
