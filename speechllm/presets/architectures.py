"""The paper's four models as published configs, without weights, buildable on the ``meta`` device.

Whisper large-v3, SeamlessM4T v2 large, Llama 3.1 8B Instruct and Mistral 7B Instruct v0.3 are
gigabytes of weights behind licences and the hub; their architectures are a few numbers. These
are the values of each model's published ``config.json`` (the keys that shape the network; the
rest keep transformers' defaults), so the planner (:mod:`speechllm.planning`) builds every paper
configuration offline, in seconds, with no memory: under ``torch.device("meta")`` a module's
parameters have shapes and no storage.

:func:`architecture_config` answers for these hub names and, for anything else, reads the
``config.json`` of a local directory or preset (``tiny-random-llama``), so the same planner code
runs on the tiny models that tests can also run for real.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

WHISPER_LARGE_V3 = "openai/whisper-large-v3"
SEAMLESS_M4T_V2_LARGE = "facebook/seamless-m4t-v2-large"
LLAMA_31_8B_INSTRUCT = "meta-llama/Llama-3.1-8B-Instruct"
MISTRAL_7B_INSTRUCT_V03 = "mistralai/Mistral-7B-Instruct-v0.3"

_DECODER_SHARED = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-05,
    "tie_word_embeddings": False,
    "attention_bias": False,
}


@dataclass(frozen=True)
class Architecture:
    """One published model: its config values and the parameter count its authors give.

    Attributes:
        model_type: the transformers ``model_type`` (``whisper``, ``seamless_m4t_v2``, ``llama``, ...).
        values: the published ``config.json`` values that shape the network.
        published_params: the authors' total for the whole checkpoint (Whisper and SeamlessM4T
            include the parts this library does not use: decoder, text model, vocoder).
        published_source: where that total is stated.
    """

    model_type: str
    values: dict[str, Any]
    published_params: float
    published_source: str


ARCHITECTURES: dict[str, Architecture] = {
    WHISPER_LARGE_V3: Architecture(
        "whisper",
        {
            "d_model": 1280,
            "encoder_layers": 32,
            "encoder_attention_heads": 20,
            "encoder_ffn_dim": 5120,
            "decoder_layers": 32,
            "decoder_attention_heads": 20,
            "decoder_ffn_dim": 5120,
            "num_mel_bins": 128,
            "vocab_size": 51866,
            "max_source_positions": 1500,
            "max_target_positions": 448,
            "activation_function": "gelu",
            "pad_token_id": 50256,
            "bos_token_id": 50257,
            "eos_token_id": 50257,
            "decoder_start_token_id": 50258,
        },
        1.55e9,
        "model card of openai/whisper-large-v3 (large: 1550 M)",
    ),
    SEAMLESS_M4T_V2_LARGE: Architecture(
        "seamless_m4t_v2",
        {  # transformers' SeamlessM4Tv2Config defaults are this checkpoint's; the speech encoder's, pinned
            "hidden_size": 1024,
            "speech_encoder_layers": 24,
            "speech_encoder_attention_heads": 16,
            "speech_encoder_intermediate_size": 4096,
            "speech_encoder_hidden_act": "swish",
            "feature_projection_input_dim": 160,
            "add_adapter": True,
            "adaptor_kernel_size": 8,
            "adaptor_stride": 8,
            "num_adapter_layers": 1,
            "position_embeddings_type": "relative_key",
            "conv_depthwise_kernel_size": 31,
            "left_max_position_embeddings": 64,
            "right_max_position_embeddings": 8,
            "vocab_size": 256102,
        },
        2.3e9,
        "model card of facebook/seamless-m4t-v2-large (SeamlessM4T-Large v2: 2.3 B)",
    ),
    LLAMA_31_8B_INSTRUCT: Architecture(
        "llama",
        {
            **_DECODER_SHARED,
            "vocab_size": 128256,
            "max_position_embeddings": 131072,
            "rope_theta": 500000.0,
            "rope_scaling": {
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
                "rope_type": "llama3",
            },
            "bos_token_id": 128000,
            "eos_token_id": [128001, 128008, 128009],
            "mlp_bias": False,
        },
        8.03e9,
        "model card of meta-llama/Llama-3.1-8B-Instruct (8.03 B)",
    ),
    MISTRAL_7B_INSTRUCT_V03: Architecture(
        "mistral",
        {
            **_DECODER_SHARED,
            "vocab_size": 32768,
            "max_position_embeddings": 32768,
            "rope_theta": 1000000.0,
            "sliding_window": None,
            "head_dim": 128,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
        7.25e9,
        "model card of mistralai/Mistral-7B-Instruct-v0.3 (7.25 B)",
    ),
}


def architecture_config(path: str | os.PathLike[str]) -> Any:
    """The transformers config of a model, read without its weights.

    Args:
        path: one of :data:`ARCHITECTURES` (the published values, offline), or a preset name or
            local directory holding a ``config.json``.

    Returns:
        a ``PretrainedConfig`` of the model's class.
    """
    from transformers import AutoConfig

    name = os.fspath(path)
    if name in ARCHITECTURES:
        arch = ARCHITECTURES[name]
        return AutoConfig.for_model(arch.model_type, **arch.values)
    from speechllm.presets import resolve_model_path

    return AutoConfig.from_pretrained(str(resolve_model_path(name)))


def meta_speech_encoder(config: Any) -> nn.Module:
    """The encoder half of a Whisper or SeamlessM4T v2 config, on the ``meta`` device (no memory).

    Returns ``WhisperEncoder`` (input (B, n_mels, 3000) log-mel) or ``SeamlessM4Tv2SpeechEncoder``
    (input (B, L, 160) stacked fbank), the modules :mod:`speechllm.encoders` wrap.
    """
    if config.model_type == "whisper":
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        with torch.device("meta"):
            return WhisperEncoder(config)
    if config.model_type == "seamless_m4t_v2":
        from transformers.models.seamless_m4t_v2.modeling_seamless_m4t_v2 import SeamlessM4Tv2SpeechEncoder

        with torch.device("meta"):
            return SeamlessM4Tv2SpeechEncoder(config)
    raise ValueError(
        f"no speech encoder for model_type {config.model_type!r}; valid: whisper, seamless_m4t_v2"
    )


def meta_causal_lm(config: Any, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """``AutoModelForCausalLM.from_config`` on the ``meta`` device in ``dtype`` (no memory)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")


def meta_whole_model(path: str) -> nn.Module:
    """The whole published checkpoint's model on ``meta`` (for its parameter count, e.g. Whisper's
    1.55 B with the decoder), from :data:`ARCHITECTURES`."""
    from transformers import AutoModel

    with torch.device("meta"):
        return AutoModel.from_config(architecture_config(path))


def count_parameters(module: nn.Module) -> int:
    """Parameters of ``module`` (shared tensors once); works on ``meta`` modules."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())
