"""Tiny random models of the real classes, built from configs, for tests, CI and the tiny recipe.

Each builder writes a Hugging Face directory (config + safetensors [+ tokenizer]) that loads with
the same ``from_pretrained`` code as the real checkpoints. They are also presets:
``path: tiny-random-whisper`` in a config resolves to a cached build (see :mod:`speechllm.presets`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from transformers import SeamlessM4Tv2Config, WhisperConfig

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Mistral-instruct style: a system message is merged into the first user turn.
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] + '\n\n' %}"
    "{% set turns = messages[1:] %}{% else %}{% set sys = '' %}{% set turns = messages %}{% endif %}"
    "{% for m in turns %}{% if m['role'] == 'user' %}[INST] {% if loop.first %}{{ sys }}{% endif %}"
    "{{ m['content'] }} [/INST]{% else %}{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)
# A varied English sample so byte-level BPE learns common words (kept short: vocab 1k).
_TOKENIZER_TEXT = (
    """
the quick brown fox jumps over the lazy dog while the cat sleeps in the warm afternoon sun.
transcribe the audio in english. translate the german audio into english. write down what is said.
one two three four five six seven eight nine ten eleven twelve twenty thirty hundred thousand.
speech recognition and translation connect a speech encoder to a language model through an adapter.
please call me back tomorrow morning, the meeting has been moved to the second floor.
you are a helpful assistant. give the transcript of the recording. listen and translate.
"""
    * 4
)


def _seed(seed: int) -> None:
    torch.manual_seed(seed)


def build_bpe_tokenizer(out_dir: Path, vocab_size: int = 1000) -> Path:
    """A byte-level BPE tokenizer with ChatML special tokens (covers any text)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_TOKENIZER_TEXT.splitlines(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(out_dir)
    return out_dir


def _decoder_sizes(tok, hidden_size: int, layers: int) -> dict[str, int | float | None]:
    """Config sizes shared by the tiny Llama and Mistral (4 heads, 2 KV heads, 2× MLP)."""
    return {
        "vocab_size": len(tok),
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        # Random embeddings at HF's default 0.02 give near-uniform logits that no adapter can
        # steer through a frozen LLM; 0.2 makes the tiny LLM's output depend on its input.
        "initializer_range": 0.2,
    }


def build_tiny_llama(out_dir: str | Path, seed: int = 0, hidden_size: int = 64, layers: int = 2) -> Path:
    """A random ``LlamaForCausalLM`` (2 layers, 64 wide) with a 1k byte-level BPE tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    build_bpe_tokenizer(out_dir)
    tok = AutoTokenizer.from_pretrained(out_dir)
    _seed(seed)
    config = LlamaConfig(**_decoder_sizes(tok, hidden_size, layers), tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(out_dir)
    return out_dir


def build_tiny_mistral(out_dir: str | Path, seed: int = 0, hidden_size: int = 64, layers: int = 2) -> Path:
    """A random ``MistralForCausalLM`` with the real Mistral v3 SentencePiece tokenizer when
    ``mistral-common`` is installed (it ships the file), else the byte-level BPE one."""
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

    out_dir = Path(out_dir)
    sp_model = _mistral_sentencepiece()
    if sp_model is not None:
        import shutil

        from transformers import LlamaTokenizer

        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sp_model, out_dir / "tokenizer.model")  # converted to a fast tokenizer on load
        tok = LlamaTokenizer.from_pretrained(out_dir)
        tok.chat_template = MISTRAL_TEMPLATE
        tok.save_pretrained(out_dir)
    else:
        build_bpe_tokenizer(out_dir)
    tok = AutoTokenizer.from_pretrained(out_dir)
    _seed(seed)
    config = MistralConfig(**_decoder_sizes(tok, hidden_size, layers), sliding_window=None)
    MistralForCausalLM(config).save_pretrained(out_dir)
    return out_dir


def _mistral_sentencepiece() -> Path | None:
    try:
        import mistral_common
    except ImportError:
        return None
    candidate = Path(mistral_common.__file__).parent / "data" / "mistral_instruct_tokenizer_240323.model.v3"
    return candidate if candidate.is_file() else None


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


def build_tiny_whisper(out_dir: str | Path, seed: int = 0, num_mel_bins: int = 80) -> Path:
    """A random ``WhisperForConditionalGeneration`` (the hub's class; 64 wide, 2 encoder layers,
    1500 positions = 30 s at 50 Hz) plus its feature-extractor config."""
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    out_dir = Path(out_dir)
    _seed(seed)
    WhisperForConditionalGeneration(tiny_whisper_config(num_mel_bins)).save_pretrained(out_dir)
    WhisperFeatureExtractor(feature_size=num_mel_bins).save_pretrained(out_dir)
    return out_dir


def build_tiny_seamless(out_dir: str | Path, seed: int = 0) -> Path:
    """A random ``SeamlessM4Tv2Model`` (the hub's class) with a 64-wide speech encoder, 6.25 Hz."""
    from transformers import SeamlessM4TFeatureExtractor, SeamlessM4Tv2Model

    out_dir = Path(out_dir)
    _seed(seed)
    SeamlessM4Tv2Model(tiny_seamless_config()).save_pretrained(out_dir)
    SeamlessM4TFeatureExtractor().save_pretrained(out_dir)
    return out_dir


TINY_PRESETS: dict[str, Callable[[Path], Path]] = {
    "tiny-random-llama": build_tiny_llama,
    "tiny-random-mistral": build_tiny_mistral,
    "tiny-random-whisper": build_tiny_whisper,
    "tiny-random-seamless": build_tiny_seamless,
}


def tiny_preset_dir(name: str, cache_root: Path) -> Path:
    """Build the named tiny model once under ``cache_root`` (atomically) and return its directory."""
    import shutil
    import tempfile

    target = cache_root / name
    if (target / "config.json").is_file():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=cache_root))
    try:
        TINY_PRESETS[name](staging)
        staging.rename(target)
    except OSError:
        if not (target / "config.json").is_file():  # not a concurrent builder winning the race
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
