"""Torch features equal the Hugging Face feature extractors, clip by clip, whatever the batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import SeamlessM4TFeatureExtractor, WhisperFeatureExtractor

from speechllm.encoders.features import SeamlessFbank, WhisperLogMel

# Lengths in samples: whole seconds, a non-multiple of the hop, an odd fbank frame count, the
# shortest clip Seamless accepts, and one over two seconds.
LENGTHS = [16000, 16100, 7777, 560, 33333]


def make_clips(lengths: list[int], seed: int = 0) -> list[np.ndarray]:
    """Alternate random noise and noisy sines (different pitches), float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    clips = []
    for index, length in enumerate(lengths):
        if index % 2:
            clips.append((0.1 * rng.standard_normal(length)).astype(np.float32))
        else:
            time = np.arange(length) / 16000
            sine = 0.5 * np.sin(2 * np.pi * (180 + 150 * index) * time) + 0.01 * rng.standard_normal(length)
            clips.append(sine.astype(np.float32))
    return clips


def batch(clips: list[np.ndarray], width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad clips into (B, S) audio with (B,) lengths."""
    lens = torch.tensor([len(clip) for clip in clips])
    audio = torch.zeros(len(clips), width or int(lens.max()))
    for row, clip in enumerate(clips):
        audio[row, : len(clip)] = torch.from_numpy(clip)
    return audio, lens


@pytest.mark.parametrize("num_mel_bins", [80, 128])
def test_whisper_log_mel_equals_extractor_on_each_clip_alone(num_mel_bins: int) -> None:
    clips = make_clips(LENGTHS)
    audio, lens = batch(clips)
    features, frame_lens = WhisperLogMel(num_mel_bins)(audio, lens)
    extractor = WhisperFeatureExtractor(feature_size=num_mel_bins)
    for row, clip in enumerate(clips):
        expected = extractor(
            clip, sampling_rate=16000, padding="longest", return_tensors="np"
        ).input_features[0]
        assert int(frame_lens[row]) == expected.shape[-1]
        ours = features[row, :, : expected.shape[-1]].numpy()
        np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)
        assert not features[row, :, expected.shape[-1] :].any(), "frames past the clip must be zero"


def test_whisper_log_mel_equals_extractor_on_30s_padded_batch() -> None:
    clips = make_clips([16000, 7777, 48000], seed=1)
    audio, _ = batch(clips, width=480_000)
    features, frame_lens = WhisperLogMel(80)(audio, torch.full((3,), 480_000))
    expected = WhisperFeatureExtractor(feature_size=80)(clips, sampling_rate=16000, return_tensors="np")
    assert features.shape == expected.input_features.shape == (3, 80, 3000)
    assert frame_lens.tolist() == [3000] * 3
    np.testing.assert_allclose(features.numpy(), expected.input_features, atol=1e-4, rtol=0)


def test_seamless_fbank_equals_extractor_batch_and_mask() -> None:
    clips = make_clips(LENGTHS)
    audio, lens = batch(clips)
    features, frame_lens = SeamlessFbank()(audio, lens)
    expected = SeamlessM4TFeatureExtractor()(clips, sampling_rate=16000, return_tensors="np")
    valid_counts = expected.attention_mask.sum(axis=1)
    assert frame_lens.tolist() == valid_counts.tolist()
    assert features.shape[-1] == expected.input_features.shape[-1] == 160
    for row, count in enumerate(valid_counts):
        np.testing.assert_allclose(
            features[row, :count].numpy(), expected.input_features[row, :count], atol=1e-3, rtol=0
        )
        assert not features[row, count:].any(), "stacked frames past the clip must be zero"


def test_seamless_fbank_of_a_clip_does_not_depend_on_its_batch() -> None:
    clips = make_clips(LENGTHS, seed=2)
    fbank = SeamlessFbank()
    features, lens = fbank(*batch(clips))
    for row, clip in enumerate(clips):
        alone, alone_lens = fbank(*batch([clip]))
        assert int(alone_lens[0]) == int(lens[row])
        torch.testing.assert_close(features[row, : lens[row]], alone[0], atol=1e-5, rtol=0)


def test_samples_past_the_length_do_not_change_whisper_features() -> None:
    clip = make_clips([12345])[0]
    audio, lens = batch([clip], width=20000)
    noisy = audio.clone()
    noisy[0, 12345:] = 1.0  # garbage in the padding must not leak into the clip's frames
    mel = WhisperLogMel(80)
    clean_features, _ = mel(audio, lens)
    noisy_features, _ = mel(noisy, lens)
    torch.testing.assert_close(clean_features, noisy_features)


def test_seamless_fbank_rejects_too_short_clip_naming_its_length() -> None:
    audio, lens = batch(make_clips([16000, 559]))
    with pytest.raises(ValueError, match="559"):
        SeamlessFbank()(audio, lens)


def test_features_ignore_a_surrounding_bf16_autocast() -> None:
    audio, lens = batch(make_clips([16000, 7777]))
    for module in (WhisperLogMel(80), SeamlessFbank()):
        reference, _ = module(audio, lens)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            features, _ = module(audio, lens)
        assert features.dtype == torch.float32
        torch.testing.assert_close(features, reference, atol=0, rtol=0)
