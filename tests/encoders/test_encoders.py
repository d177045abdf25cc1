"""Frozen speech encoders on tiny random Whisper / SeamlessM4T v2 checkpoints saved to disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.tiny_models import tiny_seamless_dir, tiny_seamless_model, tiny_whisper_dir, tiny_whisper_model
from safetensors.torch import load_file, save_file
from transformers import SeamlessM4TFeatureExtractor, WhisperFeatureExtractor
from transformers.audio_utils import conv1d_output_length

from speechllm.encoders import SeamlessSpeechEncoder, SpeechEncoder, WhisperSpeechEncoder
from speechllm.registry import ENCODERS

SR = 16000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def whisper_padded(model_dir: Path) -> WhisperSpeechEncoder:
    return WhisperSpeechEncoder(path=str(tiny_whisper_dir(model_dir)))


@pytest.fixture(scope="module")
def whisper_true_length(model_dir: Path) -> WhisperSpeechEncoder:
    return WhisperSpeechEncoder(path=str(tiny_whisper_dir(model_dir)), pad_to_30s=False)


@pytest.fixture(scope="module")
def seamless(model_dir: Path) -> SeamlessSpeechEncoder:
    return SeamlessSpeechEncoder(path=str(tiny_seamless_dir(model_dir)))


def random_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S) noise, zero past each length, and (B,) lengths."""
    generator = torch.Generator().manual_seed(seed)
    lens = torch.tensor(lengths)
    audio = 0.1 * torch.randn(len(lengths), max(lengths), generator=generator)
    return audio.masked_fill(torch.arange(audio.shape[1]) >= lens[:, None], 0.0), lens


def assert_same_alone_as_in_batch(encoder: SpeechEncoder, lengths: list[int], atol: float) -> None:
    audio, lens = random_batch(lengths)
    hidden, out_lens = encoder(audio, lens)
    assert hidden.shape[1] == int(out_lens.max())
    for row, length in enumerate(lengths):
        alone, alone_lens = encoder(audio[row : row + 1, :length], lens[row : row + 1])
        assert alone_lens.tolist() == [int(out_lens[row])]
        assert alone.shape[1] == int(out_lens[row])
        torch.testing.assert_close(hidden[row, : out_lens[row]], alone[0], atol=atol, rtol=0)
        assert not hidden[row, out_lens[row] :].any(), "frames past a clip's length must be zero"


# ---------------------------------------------------------------- loading and the interface


def test_registered_names_build_from_config(model_dir: Path) -> None:
    encoder = ENCODERS.build(
        {"name": "whisper", "path": str(tiny_whisper_dir(model_dir)), "pad_to_30s": False}
    )
    assert isinstance(encoder, WhisperSpeechEncoder) and encoder.pad_to_30s is False
    assert isinstance(
        ENCODERS.build({"name": "seamless", "path": str(tiny_seamless_dir(model_dir))}), SeamlessSpeechEncoder
    )


def test_whisper_loads_encoder_weights_from_saved_full_model(
    whisper_padded: WhisperSpeechEncoder, model_dir: Path
) -> None:
    reference = tiny_whisper_model().model.encoder.state_dict()  # same seed as the saved directory
    loaded = whisper_padded.model.state_dict()
    assert loaded.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(loaded[key], value), key
    assert whisper_padded.dim == 64 and whisper_padded.frame_rate_hz == 50.0
    assert not any("decoder" in name for name, _ in whisper_padded.named_parameters())


def test_seamless_loads_speech_encoder_weights_only(seamless: SeamlessSpeechEncoder) -> None:
    reference = tiny_seamless_model().speech_encoder.state_dict()
    loaded = seamless.model.state_dict()
    assert loaded.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(loaded[key], value), key
    assert seamless.dim == 64 and seamless.frame_rate_hz == 6.25


def test_checkpoint_without_encoder_weights_is_an_error_naming_the_path(
    model_dir: Path, tmp_path: Path
) -> None:
    source = tiny_whisper_dir(model_dir)
    broken = tmp_path / "no-encoder"
    broken.mkdir()
    (broken / "config.json").write_text((source / "config.json").read_text())
    weights = load_file(source / "model.safetensors")
    save_file({k: v for k, v in weights.items() if ".encoder." not in k}, broken / "model.safetensors")
    with pytest.raises(ValueError, match="no-encoder.*missing"):
        WhisperSpeechEncoder(path=str(broken))


@pytest.mark.parametrize("fixture", ["whisper_padded", "seamless"])
def test_frozen_and_always_in_eval_mode(fixture: str, request: pytest.FixtureRequest) -> None:
    encoder: SpeechEncoder = request.getfixturevalue(fixture)
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training and not any(module.training for module in encoder.modules())


def test_outputs_feed_a_trained_layer_without_grads_to_the_encoder(
    whisper_true_length: WhisperSpeechEncoder,
) -> None:
    audio, lens = random_batch([8000, 5000])
    hidden, _ = whisper_true_length(audio, lens)
    assert not hidden.requires_grad and not hidden.is_inference()
    head = torch.nn.Linear(whisper_true_length.dim, 3)
    head(hidden).sum().backward()  # an inference tensor would refuse to be saved for backward
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in whisper_true_length.parameters())


def test_cache_key_names_the_options_that_change_outputs(model_dir: Path) -> None:
    path = tiny_whisper_dir(model_dir)
    padded = WhisperSpeechEncoder(path=str(path)).cache_key()
    assert padded.startswith("whisper|")
    assert "pad_to_30s=True" in padded
    assert padded != WhisperSpeechEncoder(path=str(path), pad_to_30s=False).cache_key()
    assert padded != WhisperSpeechEncoder(path=str(path), dtype="bfloat16").cache_key()


def test_unknown_dtype_is_an_error_listing_the_valid_ones(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="float16.*float32, bfloat16"):
        WhisperSpeechEncoder(path=str(tiny_whisper_dir(model_dir)), dtype="float16")


# ---------------------------------------------------------------- Whisper


def test_whisper_padded_equals_hf_encoder_on_hf_features(whisper_padded: WhisperSpeechEncoder) -> None:
    reference = tiny_whisper_model().model.encoder
    extractor = WhisperFeatureExtractor(feature_size=80)
    audio, lens = random_batch([16000, 7777], seed=3)
    hidden, out_lens = whisper_padded(audio, lens)
    for row, length in enumerate(lens.tolist()):
        features = extractor(
            audio[row, :length].numpy(), sampling_rate=SR, return_tensors="pt"
        ).input_features
        expected = reference(features).last_hidden_state[0]  # (1500, C)
        torch.testing.assert_close(hidden[row, : out_lens[row]], expected[: out_lens[row]], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("samples", "frames"),
    [(16000, 50), (16100, 50), (16160, 51), (8000, 25), (159, 0), (480_000, 1500)],
)
def test_whisper_output_lengths(
    whisper_true_length: WhisperSpeechEncoder, whisper_padded: WhisperSpeechEncoder, samples: int, frames: int
) -> None:
    # The expected count, independently: the extractor's mel frames through conv2's own length formula.
    mel_frames = (
        samples // 160
        if samples < 400
        else WhisperFeatureExtractor(feature_size=80)(
            torch.zeros(samples).numpy(), sampling_rate=SR, padding="longest", return_tensors="np"
        ).input_features.shape[-1]
    )
    assert conv1d_output_length(whisper_true_length.model.conv2, mel_frames) == frames
    lens = torch.tensor([samples])
    assert whisper_true_length.output_lengths(lens).tolist() == [frames]
    assert whisper_padded.output_lengths(lens).tolist() == [frames]
    hidden, out_lens = whisper_true_length(0.1 * torch.randn(1, samples), lens)  # it really gives that many
    assert hidden.shape[1] == frames and out_lens.tolist() == [frames]


def test_whisper_true_length_clip_alone_equals_clip_in_batch(
    whisper_true_length: WhisperSpeechEncoder,
) -> None:
    # 16160 and 3370 samples give odd mel counts (101, 21): conv2 then reads one frame past the clip.
    assert_same_alone_as_in_batch(whisper_true_length, [16000, 16160, 7777, 3370], atol=1e-5)


def test_whisper_padded_clip_alone_equals_clip_in_batch(whisper_padded: WhisperSpeechEncoder) -> None:
    assert_same_alone_as_in_batch(whisper_padded, [16000, 7777], atol=1e-5)


def test_whisper_over_30s_is_an_error_naming_the_length(whisper_true_length: WhisperSpeechEncoder) -> None:
    audio, lens = random_batch([16000, 35 * SR])
    with pytest.raises(ValueError, match=r"35\.00 s.*chunk_long_audio"):
        whisper_true_length(audio, lens)


@pytest.mark.parametrize("pad_to_30s", [False, True])
def test_whisper_chunks_long_audio_into_30s_windows(model_dir: Path, pad_to_30s: bool) -> None:
    encoder = WhisperSpeechEncoder(
        path=str(tiny_whisper_dir(model_dir)), pad_to_30s=pad_to_30s, chunk_long_audio=True
    )
    long = 30 * SR + 5 * SR + 100
    audio, lens = random_batch([long, 16000], seed=4)
    hidden, out_lens = encoder(audio, lens)
    assert out_lens.tolist() == [1500 + 250, 50] == encoder.output_lengths(lens).tolist()
    first, _ = encoder(audio[:1, : 30 * SR], torch.tensor([30 * SR]))
    rest, rest_lens = encoder(audio[:1, 30 * SR : long], torch.tensor([long - 30 * SR]))
    torch.testing.assert_close(hidden[0, :1500], first[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(hidden[0, 1500:1750], rest[0, : rest_lens[0]], atol=1e-5, rtol=0)
    short, _ = encoder(audio[1:, :16000], lens[1:])
    torch.testing.assert_close(hidden[1, :50], short[0], atol=1e-5, rtol=0)


def test_whisper_bfloat16_weights_run_close_to_float32(
    model_dir: Path, whisper_true_length: WhisperSpeechEncoder
) -> None:
    encoder = WhisperSpeechEncoder(path=str(tiny_whisper_dir(model_dir)), pad_to_30s=False, dtype="bfloat16")
    assert all(p.dtype == torch.bfloat16 for p in encoder.parameters())
    audio, lens = random_batch([16000, 9000])
    hidden, out_lens = encoder(audio, lens)
    reference, reference_lens = whisper_true_length(audio, lens)
    assert hidden.dtype == torch.float32 and torch.equal(out_lens, reference_lens)
    similarity = torch.nn.functional.cosine_similarity(hidden[0, :50], reference[0, :50], dim=-1)
    assert similarity.min() > 0.99


# ---------------------------------------------------------------- Seamless


def test_seamless_equals_hf_speech_encoder_on_hf_features(seamless: SeamlessSpeechEncoder) -> None:
    reference = tiny_seamless_model().speech_encoder
    extractor = SeamlessM4TFeatureExtractor()
    # Even fbank frame counts: with an odd count HF pads a half-empty stacked frame that its
    # adaptor's strided convs read; ours zero it (see SeamlessSpeechEncoder), so compare where HF has none.
    audio, lens = random_batch([16000, 20480, 24000], seed=5)
    hidden, out_lens = seamless(audio, lens)
    for row, length in enumerate(lens.tolist()):
        inputs = extractor(audio[row, :length].numpy(), sampling_rate=SR, return_tensors="pt")
        assert (1 + (length - 400) // 160) % 2 == 0
        expected = reference(inputs.input_features, attention_mask=inputs.attention_mask).last_hidden_state[0]
        torch.testing.assert_close(hidden[row, : out_lens[row]], expected[: out_lens[row]], atol=1e-4, rtol=0)


@pytest.mark.parametrize("samples", [20480, 16000, 16100, 7777, 33333, 560])
def test_seamless_output_lengths_match_hf_mask(seamless: SeamlessSpeechEncoder, samples: int) -> None:
    inputs = SeamlessM4TFeatureExtractor()(
        torch.zeros(samples).numpy(), sampling_rate=SR, return_tensors="pt"
    )
    expected = int(seamless.model._compute_sub_sample_lengths_from_attention_mask(inputs.attention_mask)[0])
    lens = torch.tensor([samples])
    hidden, out_lens = seamless(0.1 * torch.randn(1, samples), lens)
    assert out_lens.tolist() == [expected] == seamless.output_lengths(lens).tolist()
    assert hidden.shape[1] == expected
    if samples == 20480:  # 1.28 s: 126 fbank frames → 63 stacked at 50 Hz → 8 at 6.25 Hz
        assert expected == 8


def test_seamless_clip_alone_equals_clip_in_batch(seamless: SeamlessSpeechEncoder) -> None:
    assert_same_alone_as_in_batch(seamless, [20480, 16100, 7777, 33333], atol=1e-5)


def test_seamless_bfloat16_weights_run(model_dir: Path, seamless: SeamlessSpeechEncoder) -> None:
    encoder = SeamlessSpeechEncoder(path=str(tiny_seamless_dir(model_dir)), dtype="bfloat16")
    assert all(p.dtype == torch.bfloat16 for p in encoder.parameters())
    audio, lens = random_batch([20480, 16000])
    hidden, out_lens = encoder(audio, lens)
    reference, reference_lens = seamless(audio, lens)
    assert hidden.dtype == torch.float32 and torch.equal(out_lens, reference_lens)
    similarity = torch.nn.functional.cosine_similarity(hidden[0, :8], reference[0, :8], dim=-1)
    assert similarity.min() > 0.99


def test_surrounding_autocast_does_not_change_the_encoder_precision(
    whisper_true_length: WhisperSpeechEncoder,
) -> None:
    audio, lens = random_batch([8000, 5000])
    reference, _ = whisper_true_length(audio, lens)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hidden, _ = whisper_true_length(audio, lens)
    torch.testing.assert_close(hidden, reference, atol=0, rtol=0)
