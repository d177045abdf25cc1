"""``trainer.strategy: fsdp2`` for real: two gloo processes on the CPU shard the tiny Llama's decoder
layers with ``fully_shard`` and train the adapter and LoRA as one process does with the same
global batch; checkpoints and the exported model hold the same keys as an unsharded run's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.exact_runs import exact_run_overrides, free_port, step_losses
from helpers.paths import TINY_RECIPE
from safetensors.torch import load_file

from speechllm.config import ConfigError, load_config
from speechllm.lightning.checkpoint import load_checkpoint
from speechllm.model import TRAINED_WEIGHTS
from speechllm.training import train

LORA = "model.llm.lora={r: 4, alpha: 8, dropout: 0.0, target_modules: [q_proj, v_proj]}"
# A constant lr: the schedule of a 2-step run resumed to 3 steps is then that of a 3-step run.
CONSTANT_LR = "optim.scheduler=constant"


def _cli_train(out: Path, args: list[str], *extra: str) -> None:
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "speechllm.cli", "train", str(TINY_RECIPE), *args, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_fsdp2_two_processes_match_one_process_and_resume(tiny_dirs, tones_dir, tmp_path):
    # Reference: one process, 3 optimizer steps of 2 accumulated batches. FSDP2: two ranks each take
    # every other batch (the same global batch of 2), 2 steps, then a resume from its own last
    # checkpoint for the third. FSDP2 averages gradients over ranks as accumulation does over batches.
    ref_dir, out = tmp_path / "reference", tmp_path / "fsdp2"
    reference = exact_run_overrides(
        tiny_dirs, tones_dir, ref_dir, 3, LORA, CONSTANT_LR, "trainer.accumulate_grad_batches=2"
    )
    train(load_config(TINY_RECIPE, reference))
    sharded = exact_run_overrides(
        tiny_dirs, tones_dir, out, 2, LORA, CONSTANT_LR, "trainer.strategy=fsdp2", "trainer.devices=2"
    )
    _cli_train(out, sharded)
    checkpoint = load_checkpoint(out / "checkpoints" / "last.ckpt")
    expected_keys = set(load_checkpoint(ref_dir / "checkpoints" / "last.ckpt")["state_dict"])
    # Trained parameters only (adapter + LoRA), gathered from the shards under the unsharded names.
    assert set(checkpoint["state_dict"]) == expected_keys
    assert any(".lora_A." in key for key in expected_keys) and any(
        ".adapter." in key for key in expected_keys
    )
    assert checkpoint["global_step"] == 2
    _cli_train(out, [*sharded, "trainer.max_steps=3"], "--resume", "last")

    losses, expected = step_losses(out), step_losses(ref_dir)
    assert sorted(losses) == sorted(expected) == [0, 1, 2]
    for step in expected:  # step 2 comes from the resumed processes
        assert losses[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step
    trained = load_file(str(out / "model" / TRAINED_WEIGHTS))
    reference_weights = load_file(str(ref_dir / "model" / TRAINED_WEIGHTS))
    assert trained.keys() == reference_weights.keys()
    # As a whole (see the DDP test: AdamW magnifies float-order noise where a gradient is ~0).
    flat = torch.cat([trained[name].flatten() for name in sorted(trained)])
    flat_expected = torch.cat([reference_weights[name].flatten() for name in sorted(trained)])
    assert float((flat - flat_expected).norm() / flat_expected.norm()) < 1e-4


def test_fsdp2_with_bf16_true_is_a_config_error(tiny_dirs, tones_dir, tmp_path):
    args = exact_run_overrides(
        tiny_dirs, tones_dir, tmp_path, 1, "trainer.strategy=fsdp2", "trainer.precision=bf16-true"
    )
    with pytest.raises(ConfigError, match="bf16-true cannot be used with trainer.strategy=fsdp2"):
        train(load_config(TINY_RECIPE, args))
