"""A model config built on the ``meta`` device: the modules of a SpeechLLM, with shapes and no memory.

The planner cannot build :class:`~speechllm.model.SpeechLLM` itself: its wrappers load weights and
a tokenizer. It builds the same modules from configs instead: the Hugging Face encoder that the
encoder wrapper holds, the registered adapter (by :func:`~speechllm.builders.build_adapter`, from
the same config), and the causal LM (with peft LoRA when ``model.llm``'s ``lora`` is set), all under
``torch.device("meta")``. A paper configuration (Whisper large-v3 + Llama 3.1 8B) builds in a
couple of seconds on a CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from speechllm.builders import build_adapter
from speechllm.dtypes import resolve_dtype
from speechllm.presets.architectures import architecture_config, meta_causal_lm, meta_speech_encoder

# Rates of the encoders' outputs (speechllm.encoders): Whisper 50 Hz; Seamless 50 Hz / stride^layers.
WHISPER_RATE_HZ = 50.0


@dataclass
class MetaSpeechLLM:
    """The three components of a configuration, on ``meta``.

    Attributes:
        encoder_name: ``whisper`` or ``seamless`` (the registered encoder's name).
        encoder: the HF encoder module (``WhisperEncoder`` or ``SeamlessM4Tv2SpeechEncoder``), frozen.
        encoder_config: its transformers config.
        pad_to_30s: Whisper runs on 30 s windows (the paper's setting) or on the true length.
        frame_rate_hz: encoder output frames per second (50 or 6.25).
        adapter: the registered adapter, trained (float32, as the paper's adapter).
        causal_lm: the causal LM (peft-wrapped with LoRA), frozen but for LoRA.
        lora: whether LoRA matrices are trained.
    """

    encoder_name: str
    encoder: nn.Module
    encoder_config: Any
    pad_to_30s: bool
    frame_rate_hz: float
    adapter: nn.Module
    causal_lm: nn.Module
    lora: bool

    @property
    def llm_config(self) -> Any:
        return self.causal_lm.config

    @property
    def decoder_layers(self) -> nn.ModuleList:
        """The LLM's decoder layers (the activation-checkpointing and FSDP units)."""
        base = self.causal_lm.get_base_model() if self.lora else self.causal_lm
        return base.get_decoder().layers


def _encoder_rate(name: str, config: Any) -> float:
    if name == "whisper":
        return WHISPER_RATE_HZ
    stride = config.adaptor_stride**config.num_adapter_layers if config.add_adapter else 1
    return WHISPER_RATE_HZ / stride


def build_meta_model(model_cfg: Mapping[str, Any]) -> MetaSpeechLLM:
    """``model:`` of a config → :class:`MetaSpeechLLM` on ``meta``.

    Args:
        model_cfg: the plain ``model`` section (``encoder``, ``adapter``, ``llm``); paths name one of
            :data:`~speechllm.presets.architectures.ARCHITECTURES`, a preset or a local directory.

    Raises:
        ValueError: an encoder other than ``whisper`` / ``seamless`` or an LLM other than
            ``hf_causal_lm`` (the planner knows only the built-in wrappers' modules).
    """
    enc_cfg, llm_cfg = dict(model_cfg["encoder"]), dict(model_cfg["llm"])
    name = enc_cfg.get("name")
    if name not in ("whisper", "seamless"):
        raise ValueError(f"model.encoder.name: the planner builds whisper or seamless, not {name!r}")
    if llm_cfg.get("name", "hf_causal_lm") != "hf_causal_lm":
        raise ValueError(f"model.llm: the planner builds name hf_causal_lm, not {llm_cfg.get('name')!r}")
    default_path = {"whisper": "openai/whisper-large-v3", "seamless": "facebook/seamless-m4t-v2-large"}[name]
    enc_config = architecture_config(enc_cfg.get("path") or default_path)
    encoder = meta_speech_encoder(enc_config).to(
        resolve_dtype(enc_cfg.get("dtype", "float32"), "encoder dtype")
    )
    encoder.requires_grad_(False).eval()  # frozen as the wrappers keep it: no dropout, no layer drop
    llm_config = architecture_config(llm_cfg["path"])
    causal_lm = meta_causal_lm(llm_config, resolve_dtype(llm_cfg.get("dtype", "float32"), "llm dtype"))
    causal_lm.requires_grad_(False)
    if not llm_cfg.get("lora"):
        causal_lm.eval()  # CausalLM.train keeps a frozen LLM in eval mode
    lora = llm_cfg.get("lora")
    if lora:
        from speechllm.llms.causal_lm import add_lora

        with torch.device("meta"):
            causal_lm = add_lora(causal_lm, dict(lora))
    rate = _encoder_rate(name, enc_config)
    pad_id = llm_config.pad_token_id if llm_config.pad_token_id is not None else llm_config.eos_token_id
    facts_enc = SimpleNamespace(dim=_width(enc_config), frame_rate_hz=rate)
    facts_llm = SimpleNamespace(
        dim=llm_config.hidden_size,
        vocab_size=llm_config.vocab_size,
        pad_id=pad_id[0] if isinstance(pad_id, list) else pad_id,
    )
    with torch.device("meta"):
        adapter = build_adapter(dict(model_cfg["adapter"]), facts_enc, facts_llm)
    return MetaSpeechLLM(
        name, encoder, enc_config, bool(enc_cfg.get("pad_to_30s", True)), rate, adapter, causal_lm, bool(lora)
    )


def _width(config: Any) -> int:
    return int(config.d_model if config.model_type == "whisper" else config.hidden_size)


def parameter_counts(model: MetaSpeechLLM) -> dict[str, dict[str, int]]:
    """Frozen and trained parameters per component: ``{encoder|adapter|llm|lora: {frozen, trained, bytes}}``.

    ``bytes`` is the memory of the component's parameters in their dtypes (frozen LLM in bf16, the
    trained adapter and LoRA matrices in float32, as peft and the paper keep them)."""
    counts: dict[str, dict[str, int]] = {}
    llm_params = list(model.causal_lm.named_parameters())
    parts = {
        "encoder": list(model.encoder.named_parameters()),
        "adapter": list(model.adapter.named_parameters()),
        "llm": [(n, p) for n, p in llm_params if "lora_" not in n],
        "lora": [(n, p) for n, p in llm_params if "lora_" in n],
    }
    for part, named in parts.items():
        trained = part in ("adapter", "lora")
        counts[part] = {
            "frozen": 0 if trained else sum(p.numel() for _, p in named),
            "trained": sum(p.numel() for _, p in named) if trained else 0,
            "bytes": sum(p.numel() * p.element_size() for _, p in named),
        }
    return counts
