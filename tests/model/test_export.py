"""`speechllm export`: the LLM with LoRA merged loads in plain transformers with the same logits, the
export reloads with SpeechLLM.from_pretrained (also after being moved) and decodes the same text,
and the model card carries the run's evaluation results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from speechllm.cli import main
from speechllm.config import load_config
from speechllm.errors import UsageError
from speechllm.export import export_model
from speechllm.model import SpeechLLM
from speechllm.rundir import RunInfo, update_run_dir

LORA = "model.llm.lora={r: 4, alpha: 8, dropout: 0.0, target_modules: [q_proj, v_proj]}"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_overrides: list[str]) -> Path:
    """A training run's folder: ``model/`` with LoRA that changes the LLM, and an evaluation of it."""
    torch.manual_seed(0)
    model = SpeechLLM.from_config(load_config(None, [*tiny_model_overrides, LORA]).model)
    with torch.no_grad():  # LoRA starts as a no-op (B = 0): make the merge matter
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    run = tmp_path_factory.mktemp("run")
    model.save_pretrained(run / "model")
    evaluated = {"asr_manifests": ["tones_test.jsonl.gz"], "asr_cuts": 6}  # as `speechllm evaluate` writes
    info = RunInfo("whisper", "llama", "base", ["asr"], evaluated)
    update_run_dir(run / "model" / "eval", info, [], {"asr_wer_en": 12.5})
    return run


def _audio(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    audio = 0.1 * torch.randn(3, 16000, generator=generator)
    return audio, torch.tensor([16000, 12000, 8000])


def test_export_decodes_the_same_text_and_plain_transformers_gives_the_merged_logits(run_dir, tmp_path):
    before = SpeechLLM.from_pretrained(run_dir / "model").eval()
    audio, lens = _audio()
    expected = before.generate(audio, lens, max_new_tokens=8)
    assert any(expected), "the tiny model decodes nothing: the comparison would be empty"

    out = export_model(run_dir, tmp_path / "export")
    moved = tmp_path / "elsewhere" / "export"  # the export travels: ./llm is read inside it
    shutil.move(str(out), str(moved))
    config = yaml.safe_load((moved / "config.yaml").read_text())["model"]
    assert config["llm"]["path"] == "./llm" and "lora" not in config["llm"]

    after = SpeechLLM.from_pretrained(moved).eval()
    assert after.llm.lora_config is None
    assert after.generate(audio, lens, max_new_tokens=8) == expected

    ids = torch.tensor([[1, 5, 9, 42, 7, 3]])
    plain = AutoModelForCausalLM.from_pretrained(moved / "llm").eval()
    with torch.no_grad():
        with_lora = before.llm.model(input_ids=ids).logits
        merged = plain(input_ids=ids).logits
        base = before.llm.base_model  # the LoRA layers switched off: what an unmerged export would give
        with before.llm.model.disable_adapter():
            without_lora = base(input_ids=ids).logits
    torch.testing.assert_close(merged, with_lora, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(without_lora, with_lora, atol=1e-3)


def test_export_writes_encoder_reference_prompt_format_and_model_card(run_dir, tmp_path):
    out = export_model(run_dir, tmp_path / "export")
    encoder = json.loads((out / "encoder.json").read_text())
    assert encoder["config"]["name"] == "whisper" and encoder["dim"] > 0 and encoder["weights_digest"]
    prompt = json.loads((out / "prompt.json").read_text())
    assert "Transcribe the audio in English." in prompt["rendered"]["asr_en"]["prefix"]
    assert prompt["stop_ids"]
    card = (out / "README.md").read_text()
    assert "| asr_wer_en | 12.50 |" in card and "asr test set (6 cuts): `tones_test.jsonl.gz`" in card
    assert "AutoModelForCausalLM.from_pretrained" in card and "LoRA (r=4) merged" in card


def test_export_refuses_a_directory_that_holds_files(run_dir, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="taken is not empty"):
        export_model(run_dir, tmp_path / "taken")


def test_export_command(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), str(tmp_path / "cli")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (tmp_path / "cli" / "llm" / "config.json").is_file()
    assert main(["export", str(run_dir / "nowhere"), str(tmp_path / "x")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_an_export_keeps_the_trained_encoder_layers(tiny_model_overrides, tmp_path):
    torch.manual_seed(0)
    cfg = load_config(None, [*tiny_model_overrides, "model.encoder.lora={r: 2}"])
    model = SpeechLLM.from_config(cfg.model)
    with torch.no_grad():
        for name, param in model.encoder.named_parameters():
            if "lora_B" in name:
                param.normal_()
    model.save_pretrained(tmp_path / "run" / "model")
    trained = {k: v for k, v in model.trainable_state_dict().items() if k.startswith("encoder.")}
    assert trained

    reloaded = SpeechLLM.from_pretrained(export_model(tmp_path / "run", tmp_path / "export"))
    params = dict(reloaded.named_parameters())
    for name, value in trained.items():
        assert params[name].requires_grad and torch.equal(params[name], value)
