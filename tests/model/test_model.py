"""The vertical slice: encoder → adapter → LLM; loss masking, freezing, generation, artefacts."""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from speechllm.config import load_config
from speechllm.data.batch import Batch
from speechllm.data.datamodule import SpeechDataModule
from speechllm.masking import splice
from speechllm.model import SpeechLLM


def build(overrides: list[str], *extra: str) -> SpeechLLM:
    cfg = load_config(None, [*overrides, *extra])
    torch.manual_seed(0)
    return SpeechLLM.from_config(cfg.model)


def first_batch(model: SpeechLLM, tones_dir: Path, max_duration: float = 12.0) -> Batch:
    cfg = load_config(
        None,
        [
            f"data.train=[{{path: {tones_dir / 'tones_cuts_train.jsonl.gz'}}}]",
            "data.num_workers=0",
            f"data.max_duration={max_duration}",
            "data.shuffle=false",
            "data.num_buckets=1",
        ],
    )
    return next(iter(SpeechDataModule(cfg.data, model.llm.prompts).train_dataloader()))


@pytest.mark.parametrize("lora", [False, True])
def test_training_step_updates_exactly_the_trained_parameters(tiny_model_overrides, tones_dir, lora):
    extra = (
        ["model.llm.lora={r: 4, alpha: 8, dropout: 0.0, target_modules: [q_proj, v_proj]}"] if lora else []
    )
    model = build(tiny_model_overrides, *extra)
    batch = first_batch(model, tones_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith("adapter.") or "lora_" in n for n in trained)
    assert any("lora_" in n for n in trained) == lora

    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(batch).loss.backward()
    for name, p in model.named_parameters():
        if name not in trained:
            assert p.grad is None, f"frozen {name} received a gradient"
    optimizer.step()

    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed <= trained, f"frozen weights changed: {sorted(changed - trained)[:3]}"
    assert any(n.startswith("adapter.") for n in changed)
    if lora:
        assert any("lora_B" in n for n in changed)


def test_loss_covers_target_tokens_only(tiny_model_overrides, tones_dir):
    model = build(tiny_model_overrides).eval()
    batch = first_batch(model, tones_dir)
    ours = model(batch)

    # Reference: the HF model's own loss with labels -100 everywhere except the target tokens.
    adapted = model.encode(batch.audio, batch.audio_lens)
    embeds, mask, positions = splice(
        [
            (model.llm.embed(batch.prefix_ids), batch.prefix_lens),
            (adapted.embeds, adapted.lens),
            (model.llm.embed(batch.suffix_ids), batch.suffix_lens),
            (model.llm.embed(batch.target_ids), batch.target_lens),
        ]
    )
    labels = torch.full(mask.shape, -100)
    for i, n in enumerate(batch.target_lens.tolist()):
        labels[i, -n:] = batch.target_ids[i, :n]
    hf = model.llm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, labels=labels)
    assert torch.allclose(ours.lm_loss, hf.loss, atol=1e-5)
    assert ours.num_target_tokens == int(batch.target_lens.sum())
    # A plain dict of the same tensors (what the benchmarks build) is read the same way.
    plain = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}
    assert torch.equal(model(plain).loss, ours.loss)

    # Changing the prompt's last token (which predicts nothing we score) changes the context but
    # the loss still only averages target positions: it stays finite and counts the same tokens.
    perturbed = copy.deepcopy(batch)
    perturbed.target_ids[0, 0] = (perturbed.target_ids[0, 0] + 1) % model.llm.vocab_size
    assert not torch.allclose(model(perturbed).lm_loss, ours.lm_loss)


def test_generation_of_a_batch_equals_each_clip_alone(tiny_model_overrides, tones_dir):
    model = build(tiny_model_overrides).eval()
    batch = first_batch(model, tones_dir, max_duration=30.0)
    assert len(batch.cut_ids) >= 3 and len(set(batch.audio_lens.tolist())) >= 2
    together = model.generate(batch.audio, batch.audio_lens, max_new_tokens=12)
    alone = [
        model.generate(batch.audio[i : i + 1, : int(n)], batch.audio_lens[i : i + 1], max_new_tokens=12)[0]
        for i, n in enumerate(batch.audio_lens)
    ]
    assert together == alone
    assert model.generate(batch.audio[:0], batch.audio_lens[:0]) == []


def test_save_then_load_gives_identical_generations(tiny_model_overrides, tones_dir, tmp_path):
    model = build(tiny_model_overrides)
    with torch.no_grad():  # move the adapter away from its seeded init so loading really matters
        for p in model.adapter.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    batch = first_batch(model, tones_dir)
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.yaml", "trainable.safetensors"]
    torch.manual_seed(123)  # a different init for the fresh adapter
    loaded = SpeechLLM.from_pretrained(tmp_path / "m").eval()
    for name, tensor in model.trainable_state_dict().items():
        assert torch.equal(loaded.trainable_state_dict()[name], tensor)
    args = (batch.audio, batch.audio_lens)
    assert loaded.generate(*args, max_new_tokens=10) == model.generate(*args, max_new_tokens=10)


def test_from_pretrained_refuses_a_mismatched_directory(tiny_model_overrides, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a speechllm model directory"):
        SpeechLLM.from_pretrained(tmp_path)


def test_bf16_autocast_forward_and_generate(tiny_model_overrides, tones_dir):
    model = build(tiny_model_overrides)
    batch = first_batch(model, tones_dir)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(batch).loss
        texts = model.eval().generate(batch.audio, batch.audio_lens, max_new_tokens=4)
    assert torch.isfinite(loss) and len(texts) == len(batch.cut_ids)


def test_mistral_llm_with_its_chat_template(tiny_dirs, tiny_model_overrides, tones_dir):
    overrides = [o for o in tiny_model_overrides if not o.startswith("model.llm.path")]
    model = build(overrides, f"model.llm.path={tiny_dirs['tiny-random-mistral']}")
    prefix, suffix = model.llm.prompts.prompt_ids("st", "en", "de")
    text = model.llm.tokenizer.decode(prefix + suffix)
    assert "[INST]" in text and "[/INST]" in text and "German" in text
    batch = first_batch(model, tones_dir)
    assert torch.isfinite(model(batch).loss)


def test_generate_from_cached_encoder_outputs_equals_generate_from_audio(tiny_model_overrides, tones_dir):
    model = build(tiny_model_overrides).eval()
    batch = first_batch(model, tones_dir)
    hidden, lens = model.encoder(batch.audio, batch.audio_lens)
    from_audio = model.generate(batch.audio, batch.audio_lens, max_new_tokens=8)
    assert model.generate(encoder_hidden=hidden, encoder_lens=lens, max_new_tokens=8) == from_audio
    with pytest.raises(ValueError, match="needs audio and audio_lens, or encoder_hidden"):
        model.generate(max_new_tokens=8)


def test_from_pretrained_imports_the_user_modules_the_model_was_built_with(
    tiny_model_overrides, tmp_path, monkeypatch
):
    (tmp_path / "my_pool_adapter.py").write_text(
        textwrap.dedent("""
        from speechllm import register_adapter
        from speechllm.adapters.base_adapter import BaseAdapter

        @register_adapter("my_saved_pool")
        class MyPool(BaseAdapter):
            pass
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        overrides = [*tiny_model_overrides, "imports=[my_pool_adapter]", "model.adapter.name=my_saved_pool"]
        cfg = load_config(None, overrides)
        SpeechLLM.from_config(cfg.model, imports=cfg.imports).save_pretrained(tmp_path / "m")
    finally:
        sys.modules.pop("my_pool_adapter", None)
    # A fresh interpreter has registered nothing: trusted, from_pretrained imports what it needs.
    load = f"SpeechLLM.from_pretrained({str(tmp_path / 'm')!r}, trust_imports=True)"
    code = f"from speechllm.model import SpeechLLM; print(type({load}.adapter).__name__)"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().endswith("MyPool")
