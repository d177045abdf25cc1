"""``speechllm plan`` on a paper recipe, offline: one table with the planned quantities."""

from __future__ import annotations

import pytest
from helpers.paths import REPO
from helpers.tiny_training import one_error_line

from speechllm.cli import main
from speechllm.config import load_config
from speechllm.planning.memory import memory_per_gpu
from speechllm.planning.plan import plan


def test_plan_prints_one_table_for_a_paper_recipe(capsys):
    config = REPO / "recipes" / "seamless_mistral" / "conf" / "asr.yaml"
    assert main(["plan", str(config), "model.adapter.name=conv", "--gpu", "a100", "--gpus", "4"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("| seamless-m4t-v2-large + Mistral-7B-Instruct-v0.3, adapter conv")
    assert all(line.startswith("|") for line in out)  # one table, nothing else
    text = "\n".join(out)
    assert "7,248.0 M frozen" in text and "on 4 × a100" in text
    assert "GiB per GPU, fsdp + ckpt" in text and "GiB per GPU, deepspeed_stage_2" in text


def test_sharding_and_checkpointing_lower_the_memory_per_gpu(tiny_model_overrides):
    cfg = load_config(None, [*tiny_model_overrides, "model.adapter.name=base", "data.max_duration=4"])
    result = plan(cfg, gpus=4)
    ddp, fsdp = result.memory["ddp", False], result.memory["fsdp", False]
    assert fsdp.params < ddp.params and fsdp.optimizer < ddp.optimizer
    assert result.memory["ddp", True].activations < ddp.activations
    step, layers = result.steps[1], 2
    one_gpu = memory_per_gpu(result.counts, step, "fsdp", 1, False, layers)
    assert one_gpu.params == sum(part["bytes"] for part in result.counts.values())


def test_an_unknown_gpu_is_one_error_line(capsys):
    config = REPO / "recipes" / "whisper_llama" / "conf" / "asr.yaml"
    assert main(["plan", str(config), "--gpu", "tpu"]) == 2
    assert "unknown GPU 'tpu'; known: h100" in one_error_line(capsys)


@pytest.mark.parametrize("mfu", ["1.5"])
def test_an_mfu_over_one_is_refused(capsys, mfu):
    config = REPO / "recipes" / "whisper_llama" / "conf" / "asr.yaml"
    assert main(["plan", str(config), "--mfu", mfu]) == 2
    assert "--mfu must be in (0, 1]" in one_error_line(capsys)
