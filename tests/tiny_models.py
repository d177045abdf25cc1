"""Tiny random Hugging Face speech models built from configs and saved to a directory (no hub).

They are the same classes the real checkpoints are (``WhisperForConditionalGeneration`` for
openai/whisper-*, ``SeamlessM4Tv2Model`` for facebook/seamless-m4t-v2-large), so loading them
exercises the same key layout; only the sizes are tiny. Reuse them from any test::

    from tiny_models import tiny_whisper_dir
    encoder = WhisperSpeechEncoder(path=str(tiny_whisper_dir(tmp_path)))
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    SeamlessM4Tv2Config,
    SeamlessM4Tv2Model,
    WhisperConfig,
    WhisperForConditionalGeneration,
)


def tiny_whisper_config(num_mel_bins: int = 80) -> WhisperConfig:
    """Whisper with d_model 64, 2 encoder layers, 4 heads; the real 1500 source positions (30 s)."""
    return WhisperConfig(
        d_model=64,
        encoder_layers=2,
        encoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_layers=1,
        decoder_attention_heads=4,
        decoder_ffn_dim=128,
        num_mel_bins=num_mel_bins,
        max_source_positions=1500,
        max_target_positions=32,
        vocab_size=100,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
        suppress_tokens=[],
        begin_suppress_tokens=[],
    )


def tiny_seamless_config() -> SeamlessM4Tv2Config:
    """SeamlessM4T v2 with hidden 64, a 2-layer speech encoder, the real adaptor (kernel = stride = 8),
    and every other part (text, T2U, vocoder) shrunk to a few thousand parameters."""
    return SeamlessM4Tv2Config(
        hidden_size=64,
        speech_encoder_layers=2,
        speech_encoder_attention_heads=4,
        speech_encoder_intermediate_size=128,
        conv_depthwise_kernel_size=5,
        left_max_position_embeddings=16,
        right_max_position_embeddings=4,
        adaptor_kernel_size=8,
        adaptor_stride=8,
        num_adapter_layers=1,
        vocab_size=64,
        t2u_vocab_size=32,
        char_vocab_size=32,
        max_position_embeddings=64,
        encoder_layers=1,
        encoder_ffn_dim=64,
        encoder_attention_heads=2,
        decoder_layers=1,
        decoder_ffn_dim=64,
        decoder_attention_heads=2,
        t2u_encoder_layers=1,
        t2u_encoder_ffn_dim=32,
        t2u_encoder_attention_heads=2,
        t2u_decoder_layers=1,
        t2u_decoder_ffn_dim=32,
        t2u_decoder_attention_heads=2,
        t2u_max_position_embeddings=64,
        t2u_variance_predictor_embed_dim=64,
        t2u_variance_predictor_hidden_dim=16,
        upsample_initial_channel=16,
        upsample_rates=[2, 2],
        upsample_kernel_sizes=[4, 4],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        unit_hifi_gan_vocab_size=32,
        unit_embed_dim=16,
        lang_embed_dim=8,
        spkr_embed_dim=8,
        vocoder_num_langs=2,
        vocoder_num_spkrs=2,
    )


def tiny_whisper_model(num_mel_bins: int = 80, seed: int = 0) -> WhisperForConditionalGeneration:
    torch.manual_seed(seed)
    return WhisperForConditionalGeneration(tiny_whisper_config(num_mel_bins)).eval()


def tiny_seamless_model(seed: int = 0) -> SeamlessM4Tv2Model:
    torch.manual_seed(seed)
    return SeamlessM4Tv2Model(tiny_seamless_config()).eval()


def tiny_whisper_dir(tmp_path: Path, num_mel_bins: int = 80, seed: int = 0) -> Path:
    """Save a tiny random Whisper (full model, as on the hub) under ``tmp_path`` and return its directory."""
    directory = Path(tmp_path) / f"tiny-whisper-{num_mel_bins}-{seed}"
    if not (directory / "config.json").exists():
        tiny_whisper_model(num_mel_bins, seed).save_pretrained(directory)
    return directory


def tiny_seamless_dir(tmp_path: Path, seed: int = 0) -> Path:
    """Save a tiny random SeamlessM4T v2 (full model, as on the hub) under ``tmp_path``; return its dir."""
    directory = Path(tmp_path) / f"tiny-seamless-{seed}"
    if not (directory / "config.json").exists():
        tiny_seamless_model(seed).save_pretrained(directory)
    return directory
