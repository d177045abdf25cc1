"""Trainable encoder options: LoRA on the attention or the top N layers unfrozen make exactly those
parameters trainable, a training step changes them (and nothing frozen), they are saved and loaded
with the trained parameters, and no encoder cache serves such an encoder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from speechllm.cli import main
from speechllm.config import ConfigError, load_config
from speechllm.data.datamodule import SpeechDataModule
from speechllm.encoders.seamless import SeamlessSpeechEncoder
from speechllm.encoders.whisper import WhisperSpeechEncoder
from speechllm.model import SpeechLLM

WHISPER_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")
SEAMLESS_PROJECTIONS = ("linear_q", "linear_k", "linear_v", "linear_out")


def trainable(module: torch.nn.Module) -> set[str]:
    return {name for name, param in module.named_parameters() if param.requires_grad}


def lora_names(prefix: str, layers: int, projections: tuple[str, ...]) -> set[str]:
    return {
        f"{prefix}.{i}.self_attn.{proj}.lora_{ab}.default.weight"
        for i in range(layers)
        for proj in projections
        for ab in "AB"
    }


def test_the_frozen_default_trains_nothing(tiny_dirs):
    encoder = WhisperSpeechEncoder(str(tiny_dirs["tiny-random-whisper"]), pad_to_30s=False)
    assert trainable(encoder) == set() and encoder.trainable_keys == []


def test_whisper_lora_trains_exactly_the_attention_projections_lora_matrices(tiny_dirs):
    encoder = WhisperSpeechEncoder(str(tiny_dirs["tiny-random-whisper"]), lora={"r": 2}, pad_to_30s=False)
    layers = len(encoder.model.layers)
    assert trainable(encoder) == lora_names("model.layers", layers, WHISPER_PROJECTIONS)
    assert encoder.model.layers[0].self_attn.q_proj.lora_A["default"].weight.shape[0] == 2


def test_whisper_top_layers_unfrozen_train_that_layer_and_the_final_norm_only(tiny_dirs):
    encoder = WhisperSpeechEncoder(str(tiny_dirs["tiny-random-whisper"]), unfreeze_top_layers=1)
    top = len(encoder.model.layers) - 1
    expected = {f"model.layers.{top}.{n}" for n, _ in encoder.model.layers[top].named_parameters()}
    expected |= {"model.layer_norm.weight", "model.layer_norm.bias"}
    assert trainable(encoder) == expected


def test_seamless_options_train_the_conformer_attention_or_everything_above_the_top_layers(tiny_dirs):
    path = str(tiny_dirs["tiny-random-seamless"])
    with_lora = SeamlessSpeechEncoder(path, lora={"r": 2})
    assert trainable(with_lora) == lora_names(
        "model.encoder.layers", len(with_lora.model.encoder.layers), SEAMLESS_PROJECTIONS
    )
    unfrozen = SeamlessSpeechEncoder(path, unfreeze_top_layers=1)
    names = trainable(unfrozen)
    top = len(unfrozen.model.encoder.layers) - 1
    assert {n for n in names if n.startswith("model.encoder.layers.")} == {
        f"model.encoder.layers.{top}.{n}" for n, _ in unfrozen.model.encoder.layers[top].named_parameters()
    }
    assert any(n.startswith("model.adapter.") for n in names)
    assert not any(n.startswith(("model.feature_projection", "model.encoder.layers.0.")) for n in names)


def test_bad_trainable_options_name_the_key(tiny_dirs):
    path = str(tiny_dirs["tiny-random-whisper"])
    with pytest.raises(ValueError, match=r"model.encoder.unfreeze_top_layers=99: .* only \d+ layers"):
        WhisperSpeechEncoder(path, unfreeze_top_layers=99)
    with pytest.raises(ValueError, match=r"model.encoder.lora.target_modules: \['linear_q'\]"):
        WhisperSpeechEncoder(path, lora={"target_modules": ["linear_q"]})
    with pytest.raises(ValueError, match=r"model.encoder.lora: unknown option\(s\) \['rank'\]"):
        WhisperSpeechEncoder(path, lora={"rank": 4})
    with pytest.raises(ValueError, match="unfreeze_top_layers needs model.encoder.dtype: float32"):
        WhisperSpeechEncoder(path, unfreeze_top_layers=1, dtype="bfloat16")


@pytest.mark.parametrize("option", ["model.encoder.lora={r: 2}", "model.encoder.unfreeze_top_layers=1"])
def test_a_training_step_changes_the_trainable_encoder_and_they_are_saved(
    tiny_model_overrides, tones_dir, tmp_path, option
):
    torch.manual_seed(0)
    model = SpeechLLM.from_config(load_config(None, [*tiny_model_overrides, option]).model)
    encoder_trained = {f"encoder.{n}" for n in trainable(model.encoder)}
    assert encoder_trained and encoder_trained <= set(model.trainable_state_dict())
    data = load_config(
        None,
        [
            f"data.train=[{{path: {tones_dir / 'tones_cuts_train.jsonl.gz'}}}]",
            "data.num_workers=0",
            "data.max_cuts=2",
            "data.num_buckets=1",
        ],
    ).data
    batch = next(iter(SpeechDataModule(data, model.llm.prompts).train_dataloader()))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(batch).loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if n in encoder_trained)
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    # LoRA's A gets a zero gradient while B is still zero (its initial value): B moves first.
    assert {n for n in changed if n.startswith("encoder.")} == {
        n for n in encoder_trained if "lora_A" not in n
    }
    assert changed <= set(model.trainable_state_dict())

    reloaded = SpeechLLM.from_pretrained(model.save_pretrained(tmp_path / "model"))
    reloaded_params = dict(reloaded.named_parameters())
    for name in encoder_trained:
        assert torch.equal(reloaded_params[name], dict(model.named_parameters())[name])


def test_no_encoder_cache_serves_a_trainable_encoder(
    tiny_model_overrides, tiny_dirs, tones_dir, tmp_path, capsys
):
    with pytest.raises(ConfigError, match=r"data.encoder_cache=.*model.encoder.lora"):
        load_config(
            None, [*tiny_model_overrides, "model.encoder.lora={r: 2}", f"data.encoder_cache={tmp_path}"]
        )
    encoder = WhisperSpeechEncoder(str(tiny_dirs["tiny-random-whisper"]), unfreeze_top_layers=1)
    with pytest.raises(
        ConfigError, match="model.encoder.unfreeze_top_layers make the speech encoder trainable"
    ):
        encoder.cache_key()
    config = tmp_path / "c.yaml"
    config.write_text(f"data:\n  test: [{{path: {tones_dir / 'tones_cuts_test.jsonl.gz'}}}]\n")
    argv = ["cache", str(config), *tiny_model_overrides, "model.encoder.lora={r: 2}", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "model.encoder.lora" in capsys.readouterr().err


def test_training_reads_no_attached_outputs_with_a_trainable_encoder(tiny_model_overrides, tones_dir):
    model = SpeechLLM.from_config(
        load_config(None, [*tiny_model_overrides, "model.encoder.unfreeze_top_layers=1"]).model
    )
    data = load_config(None, [f"data.train=[{{path: {Path(tones_dir) / 'tones_cuts_train.jsonl.gz'}}}]"]).data
    data.encoder_cache = str(tones_dir)  # set after validation, as a caller building configs may
    with pytest.raises(ConfigError, match="model.encoder.unfreeze_top_layers"):
        SpeechDataModule(data, model.llm.prompts, encoder=model.encoder).train_dataloader()
