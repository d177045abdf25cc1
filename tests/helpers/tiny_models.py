"""Tiny random Hugging Face speech models (configs in :mod:`speechllm.presets.tiny`) for the encoder tests.

They are the same classes the real checkpoints are (``WhisperForConditionalGeneration`` for
openai/whisper-*, ``SeamlessM4Tv2Model`` for facebook/seamless-m4t-v2-large), so loading them
exercises the same key layout; only the sizes are tiny. Reuse them from any test::

    from helpers.tiny_models import tiny_whisper_dir
    encoder = WhisperSpeechEncoder(path=str(tiny_whisper_dir(tmp_path)))
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import SeamlessM4Tv2Model, WhisperForConditionalGeneration

from speechllm.presets.tiny import tiny_seamless_config, tiny_whisper_config


def tiny_whisper_model(num_mel_bins: int = 80, seed: int = 0) -> WhisperForConditionalGeneration:
    torch.manual_seed(seed)
    return WhisperForConditionalGeneration(tiny_whisper_config(num_mel_bins)).eval()


def tiny_seamless_model(seed: int = 0) -> SeamlessM4Tv2Model:
    torch.manual_seed(seed)
    return SeamlessM4Tv2Model(tiny_seamless_config()).eval()


def tiny_whisper_dir(tmp_path: Path, num_mel_bins: int = 80, seed: int = 0) -> Path:
    """Save a tiny random Whisper (full model, as on the hub) under ``tmp_path`` and return its directory."""
    directory = Path(tmp_path) / f"tiny-random-whisper-{num_mel_bins}-{seed}"
    if not (directory / "config.json").exists():
        tiny_whisper_model(num_mel_bins, seed).save_pretrained(directory)
    return directory


def tiny_seamless_dir(tmp_path: Path, seed: int = 0) -> Path:
    """Save a tiny random SeamlessM4T v2 (full model, as on the hub) under ``tmp_path``; return its dir."""
    directory = Path(tmp_path) / f"tiny-random-seamless-{seed}"
    if not (directory / "config.json").exists():
        tiny_seamless_model(seed).save_pretrained(directory)
    return directory


WHISPER_TEST_LANGUAGES = ("en", "de", "es", "fr", "it", "nl", "cs")


def tiny_whisper_with_tokenizer_dir(tmp_path: Path, multilingual: bool = True, seed: int = 0) -> Path:
    """A tiny random Whisper that Whisper's own decoder can run (``speechllm whisper-baseline``): a
    byte-level tokenizer (256 byte tokens, no merges) with Whisper's special tokens, and a generation
    config that is multilingual (language tokens of :data:`WHISPER_TEST_LANGUAGES`, ``transcribe`` and
    ``translate``) or English-only like whisper-tiny.en."""
    from tokenizers import pre_tokenizers
    from transformers import GenerationConfig, WhisperTokenizer

    directory = Path(tmp_path) / f"tiny-random-whisper-{'multilingual' if multilingual else 'en'}-{seed}"
    if (directory / "config.json").exists():
        return directory
    vocab = {char: index for index, char in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    languages = [f"<|{code}|>" for code in WHISPER_TEST_LANGUAGES]
    specials = ["<|startoftranscript|>", *languages, "<|translate|>", "<|transcribe|>", "<|notimestamps|>"]
    tokenizer = WhisperTokenizer(vocab, [])  # <|endoftext|>: unknown, start, end and padding
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    tokenizer.save_pretrained(directory)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in ["<|endoftext|>", *specials]}
    config = tiny_whisper_config()
    config.vocab_size = len(tokenizer)
    config.pad_token_id = config.bos_token_id = config.eos_token_id = ids["<|endoftext|>"]
    config.decoder_start_token_id = ids["<|startoftranscript|>"]
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        no_timestamps_token_id=ids["<|notimestamps|>"],
        is_multilingual=multilingual,
        **(
            {
                "lang_to_id": {token: ids[token] for token in languages},
                "task_to_id": {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
            }
            if multilingual
            else {}
        ),
    )
    model.save_pretrained(directory)
    return directory
