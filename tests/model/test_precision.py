"""Precision that fits the hardware: ``auto`` resolves per device, explicit values are kept."""

from __future__ import annotations

import json
import os

import pytest
import torch

from speechllm import precision
from speechllm.config import load_config
from speechllm.precision import (
    ENV_VAR,
    bf16_support,
    decode_precision,
    resolve_decode_precision,
    resolve_training_precision,
)
from speechllm.registry import ENCODERS
from speechllm.trainer_options import prepare_model_config, resolve_precision, write_precision_choice

EXPLICIT = ("bf16-mixed", "bf16-true", "32", "32-true", "16-mixed")


@pytest.fixture(autouse=True)
def _fresh_decisions(monkeypatch):
    """Each test decides anew: patched probes and flags must not leak into the cached answers,
    nor an earlier decision of this process be inherited."""
    names = [precision._DECIDED_VAR + device for device in ("CPU", "CUDA", "META")]
    for name in names:
        monkeypatch.delenv(name, raising=False)
    precision._bf16_support.cache_clear()
    yield
    for name in names:  # decisions made under patched probes must not reach later tests
        os.environ.pop(name, None)
    precision._bf16_support.cache_clear()


@pytest.fixture
def forced(monkeypatch):
    """Force the branch ``auto`` takes: ``forced("1")`` bf16, ``forced("0")`` float32."""

    def force(value: str) -> None:
        monkeypatch.setenv(ENV_VAR, value)

    return force


@pytest.mark.parametrize(("value", "bf16"), [("1", True), ("bf16", True), ("0", False), ("fp32", False)])
def test_the_switch_forces_either_branch_and_says_so(forced, value, bf16):
    forced(value)
    support = bf16_support("cpu")
    assert support.bf16 is bf16 and ENV_VAR in support.reason


def test_an_unknown_switch_value_is_an_error_naming_it(forced):
    forced("maybe")
    with pytest.raises(ValueError, match=f"{ENV_VAR}='maybe'"):
        bf16_support("cpu")


def test_cpu_flags_decide_without_a_probe(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ["amx_bf16"])
    monkeypatch.setattr(precision, "matmul_probe", pytest.fail)
    support = bf16_support("cpu")
    assert support.bf16 and "amx_bf16" in support.reason


@pytest.mark.parametrize(("times", "bf16"), [((1.0, 93.0), False), ((1.0, 0.6), True)])
def test_without_flags_the_matmul_probe_decides(monkeypatch, times, bf16):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: [])
    monkeypatch.setattr(precision, "matmul_probe", lambda: times)
    support = bf16_support("cpu")
    assert support.bf16 is bf16
    assert ("93.0× slower" in support.reason) is not bf16


def test_the_matmul_probe_times_both_dtypes():
    fp32_s, bf16_s = precision.matmul_probe(size=64, repeats=1)
    assert 0 < fp32_s < 10 and 0 < bf16_s < 10


def test_devices_without_a_bf16_check_take_float32(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert not bf16_support("meta").bf16


@pytest.mark.parametrize("branch", ["1", "0"])
@pytest.mark.parametrize("explicit", EXPLICIT)
def test_an_explicit_precision_is_never_overridden(forced, branch, explicit):
    forced(branch)
    assert resolve_training_precision(explicit, "cpu", frozen_dtype_ok=True, fsdp=False) == (
        explicit,
        "explicit",
    )
    assert resolve_decode_precision("32", "cpu") == ("32", "explicit")
    assert resolve_decode_precision("bf16", "cpu") == ("bf16", "explicit")


def test_auto_training_precision_per_branch(forced):
    forced("1")
    assert resolve_training_precision("auto", "cpu", True, fsdp=False)[0] == "bf16-true"
    assert resolve_training_precision("auto", "cpu", True, fsdp=True)[0] == "bf16-mixed"
    assert resolve_training_precision("auto", "cpu", False, fsdp=False)[0] == "bf16-mixed"
    assert resolve_decode_precision("auto", "cpu")[0] == "bf16"
    forced("0")
    assert resolve_training_precision("auto", "cpu", True, fsdp=False)[0] == "32"
    assert resolve_training_precision("auto", "cpu", True, fsdp=True)[0] == "32"
    assert resolve_decode_precision("auto", "cpu")[0] == "32"
    with pytest.raises(ValueError, match="decoding precision 'fp8'"):
        resolve_decode_precision("fp8", "cpu")


def test_the_default_trainer_precision_is_auto(tiny_model_overrides):
    assert load_config(None, tiny_model_overrides).trainer.precision == "auto"


def test_auto_builds_bf16_frozen_parts_only_on_the_bf16_branch(forced, tiny_model_overrides):
    forced("1")
    cfg = prepare_model_config(load_config(None, tiny_model_overrides))
    assert cfg.trainer.precision == "bf16-true"
    assert cfg.model.encoder.dtype == "bfloat16" and cfg.model.llm.dtype == "bfloat16"
    forced("0")
    cfg = prepare_model_config(load_config(None, tiny_model_overrides))
    assert cfg.trainer.precision == "32"
    assert cfg.model.encoder.get("dtype") is None and cfg.model.llm.get("dtype") is None


def test_auto_keeps_a_frozen_dtype_the_config_sets(forced, tiny_model_overrides):
    """A config that stores its LLM in float32 gets bf16 autocast (bf16-mixed), not a conflict."""
    forced("1")
    cfg = prepare_model_config(load_config(None, [*tiny_model_overrides, "model.llm.dtype=float32"]))
    assert cfg.trainer.precision == "bf16-mixed" and cfg.model.llm.dtype == "float32"


def test_an_encoder_with_unfrozen_layers_stays_float32_on_the_bf16_branch(forced, tiny_model_overrides):
    forced("1")
    unfrozen = [*tiny_model_overrides, "model.encoder.unfreeze_top_layers=1"]
    cfg = prepare_model_config(load_config(None, unfrozen))
    assert cfg.trainer.precision == "bf16-true" and cfg.model.llm.dtype == "bfloat16"
    assert cfg.model.encoder.get("dtype") is None  # the default, float32: trained layers stay float32
    ENCODERS.build(dict(cfg.model.encoder))  # builds (a bfloat16 encoder with trained layers would not)


def test_the_encoder_cache_key_differs_between_the_branches(forced, tiny_model_overrides):
    keys = {}
    for branch in ("1", "0"):
        forced(branch)
        cfg = prepare_model_config(load_config(None, tiny_model_overrides))
        keys[branch] = ENCODERS.build(dict(cfg.model.encoder)).cache_key()
    assert "dtype=bfloat16" in keys["1"] and "dtype=float32" in keys["0"]


def test_the_choice_and_its_reason_are_written_into_the_run_directory(forced, tiny_model_overrides, tmp_path):
    forced("0")
    cfg = load_config(None, [*tiny_model_overrides, f"output_dir={tmp_path}", "trainer.accelerator=cpu"])
    assert resolve_precision(cfg) == ("32", f"forced by {ENV_VAR}=0")
    write_precision_choice(cfg)
    written = json.loads((tmp_path / "precision.json").read_text())
    assert written["requested"] == "auto" and written["resolved"] == "32"
    assert written["reason"] == f"forced by {ENV_VAR}=0" and written["device"] == "cpu"
    assert "cpu" in written and isinstance(written["cpu_bf16_flags"], list)


def test_fp32_decoding_casts_bf16_frozen_parts_up_and_bf16_decoding_autocasts(forced):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)).to(torch.bfloat16)
    weights = model[0].weight.detach().clone()
    forced("0")
    cast, context, record = decode_precision(model, torch.device("cpu"), "auto")
    assert all(p.dtype == torch.float32 for p in cast.parameters())
    assert torch.equal(cast[0].weight, weights.float())  # bf16 → fp32 is exact
    assert record == {"precision": "32", "reason": f"forced by {ENV_VAR}=0"}
    with context:
        assert cast(torch.randn(3, 4)).dtype == torch.float32
    forced("1")
    model = torch.nn.Linear(4, 2)
    same, context, record = decode_precision(model, torch.device("cpu"), "auto")
    assert same is model
    assert record["precision"] == "bf16"
    with context:
        assert same(torch.randn(3, 4)).dtype == torch.bfloat16


@pytest.mark.parametrize("command", ["evaluate", "transcribe"])
def test_decoding_commands_take_a_precision_and_default_to_auto(command):
    from speechllm.cli import build_parser

    parser = build_parser()
    needed = {
        "evaluate": ["evaluate", "--model", "m", "--manifest", "x.jsonl.gz"],
        "transcribe": ["transcribe", "--model", "m", "a.wav"],
    }[command]
    assert parser.parse_args(needed).precision == "auto"
    assert parser.parse_args([*needed, "--precision", "32"]).precision == "32"
    assert parser.parse_args([*needed, "--bf16"]).precision == "bf16"  # the earlier flag still works
    with pytest.raises(SystemExit):
        parser.parse_args([*needed, "--precision", "fp8"])


def test_processes_started_after_the_decision_inherit_it(monkeypatch):
    """DDP ranks and workers must build the same model: they take the parent's decision, probe or not."""
    import subprocess
    import sys

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: [])
    monkeypatch.setattr(precision, "matmul_probe", lambda: (1.0, 0.5))  # the parent's probe: bf16
    assert bf16_support("cpu").bf16
    code = "from speechllm.precision import bf16_support; s = bf16_support('cpu'); print(s.bf16, s.reason)"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert child.stdout.strip() == f"True {bf16_support('cpu').reason}"
