"""The planner's FLOPs are the FLOP counter's on a real step: the tiny models, built for real and
trained one step on equal-length clips, count exactly what the same config built on ``meta``
counts for the planned step."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from speechllm.config import load_config
from speechllm.config.loading import plain_config
from speechllm.model import SpeechLLM
from speechllm.planning.meta_model import build_meta_model
from speechllm.planning.step import StepShape, static_audio_tokens, training_step
from speechllm.planning.workload import uniform_batch


def _real_step_flops(model: SpeechLLM, batch: int, samples: int) -> tuple[int, StepShape]:
    """One training step (forward + backward) of ``batch`` clips of ``samples``, counted."""
    prefix, suffix = model.llm.prompts.prompt_ids("asr", "en", None)
    target = [5, 6, 7, model.llm.prompts.stop_ids[0]]
    inputs = uniform_batch(model.llm.prompts, batch, samples, target)
    model.train()
    # The math kernel: CPU's fused attention kernel is not one the FLOP counter knows, and on
    # ``meta`` attention runs as the math kernel's matrix products (what a GPU kernel is counted as).
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        out = model(inputs)
        out.loss.backward()
    audio_tokens = int(out.stats["out_lens"][0])
    shape = StepShape(batch, samples, audio_tokens, len(prefix) + len(suffix), len(target))
    return counter.get_total_flops(), shape


@pytest.mark.parametrize(
    ("adapter", "lora"),
    [("base", False), ("base", True), ("conv", False), ("cif", False), ("ctc", False), ("wlq_former", True)],
)
def test_planned_flops_equal_the_counted_flops_of_a_real_step(tiny_model_overrides, adapter, lora):
    """Every adapter: the clip-decided stages (Base, Conv, WLQ-former) run on ``meta`` with their
    length arithmetic followed; the learned ones (CIF, CTC) with the real step's output length."""
    lora_override = (
        "model.llm.lora={r: 4, target_modules: [q_proj, v_proj, gate_proj]}"
        if lora
        else "model.llm.lora=null"
    )
    cfg = load_config(None, [*tiny_model_overrides, f"model.adapter.name={adapter}", lora_override])
    torch.manual_seed(0)
    real, shape = _real_step_flops(SpeechLLM.from_config(cfg.model), batch=2, samples=16000)
    planned = training_step(build_meta_model(plain_config(cfg.model)), shape)
    assert real > 0
    assert planned.total_flops == real


@pytest.mark.parametrize(
    ("adapter", "frames", "expected"), [("base", 50, 50), ("conv", 50, 13), ("wlq_former", 50, 4)]
)
def test_a_clip_decided_length_is_planned_exactly(tiny_model_overrides, adapter, frames, expected):
    """Conv (two stride-2 convolutions: 50 → 25 → 13) and WLQ-former (one query per 0.32 s window,
    16 frames at 50 Hz: 4 windows) give their real length on ``meta``."""
    cfg = load_config(None, [*tiny_model_overrides, f"model.adapter.name={adapter}"])
    model = build_meta_model(plain_config(cfg.model))
    assert static_audio_tokens(model, frames) == expected


@pytest.mark.parametrize("adapter", ["cif", "ctc"])
def test_a_learned_length_has_no_static_plan(tiny_model_overrides, adapter):
    cfg = load_config(None, [*tiny_model_overrides, f"model.adapter.name={adapter}"])
    assert static_audio_tokens(build_meta_model(plain_config(cfg.model)), 50) is None


def test_activation_bytes_grow_with_the_batch(tiny_model_overrides):
    """The saved activations of twice the clips are twice as many bytes (what the largest batch
    that fits is computed from), but for a few scalars (the loss)."""
    cfg = load_config(None, [*tiny_model_overrides, "model.adapter.name=base"])
    model = build_meta_model(plain_config(cfg.model))
    one = training_step(model, StepShape(2, 16000, 50, 20, 5))
    two = training_step(model, StepShape(4, 16000, 50, 20, 5))
    assert two.saved_bytes["llm_layer"] == 2 * one.saved_bytes["llm_layer"]
    assert sum(two.saved_bytes.values()) == pytest.approx(2 * sum(one.saved_bytes.values()), abs=64)
    assert two.flops["forward"] == 2 * one.flops["forward"]
