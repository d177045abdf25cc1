"""Speech features computed in torch on the batch's device: Whisper log-mel and SeamlessM4T fbank.

Both modules take a padded batch of 16 kHz audio with its lengths in samples and give, for every
clip, exactly the features the Hugging Face feature extractor gives for that clip alone
(``WhisperFeatureExtractor`` within 1e-4, ``SeamlessM4TFeatureExtractor`` within 1e-3), whatever
else is in the batch. No numpy, no torchaudio: the filter banks are built once at init (with
``transformers.audio_utils.mel_filter_bank``) and kept in float64 outside the module's buffers, so
checkpoints do not carry them and casting the model (``.to(torch.bfloat16)``) cannot degrade them;
they are copied to the batch's device and dtype on first use.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from transformers.audio_utils import mel_filter_bank

from speechllm.audio import SAMPLE_RATE
from speechllm.masking import lengths_to_mask


def reflect_pad_per_clip(audio: Tensor, audio_lens: Tensor, pad: int) -> Tensor:
    """Reflect-pad every clip by ``pad`` samples on both sides at its *own* end, not the batch's.

    ``torch.stft(center=True)`` reflects at the end of the padded batch, so the last frames of a
    short clip would see the zeros of the batch padding instead of the clip's own reflection, as
    it does when the clip is featurized alone. Gathering with per-clip reflected indices gives
    each clip the padding it gets alone.

    Args:
        audio: (B, S) samples.
        audio_lens: (B,) valid samples per clip.
        pad: samples to add on each side.

    Returns:
        (B, S + 2 * pad) samples; positions past a clip's reflected tail are don't-care values.
    """
    batch, num_samples = audio.shape
    positions = torch.arange(-pad, num_samples + pad, device=audio.device)[None, :].expand(batch, -1)
    last = (audio_lens.to(audio.device) - 1).clamp(min=0)[:, None]
    index = positions.abs()  # reflect at the start: -i -> i
    index = torch.where(index > last, 2 * last - index, index)  # reflect at the clip's end
    # Clips shorter than the pad cannot be reflected fully (HF errors there); clamping keeps the
    # gather in range, and such clips have no valid frame anyway.
    index = torch.minimum(index.clamp(min=0), last)
    return audio.gather(1, index)


class _FeatureModule(nn.Module):
    """Holds float64 constants (window, filters) and hands them out per device and dtype.

    Subclasses compute with autocast off: a bf16 mel matmul would move log-mel values by ~1e-2.
    """

    def __call__(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        with torch.autocast(device_type=audio.device.type, enabled=False):
            return super().__call__(audio, audio_lens)

    def __init__(self) -> None:
        super().__init__()
        self._constants: dict[str, Tensor] = {}
        self._copies: dict[tuple[str, torch.device, torch.dtype], Tensor] = {}

    def _set_constant(self, name: str, value: np.ndarray | Tensor) -> None:
        self._constants[name] = torch.as_tensor(np.asarray(value), dtype=torch.float64)

    def _constant(self, name: str, device: torch.device, dtype: torch.dtype) -> Tensor:
        key = (name, device, dtype)
        if key not in self._copies:
            self._copies[key] = self._constants[name].to(device=device, dtype=dtype)
        return self._copies[key]


class WhisperLogMel(_FeatureModule):
    """Whisper's log-mel spectrogram: 25 ms Hann window, 10 ms hop, slaney mel, log10, max − 8 floor.

    Equal to ``WhisperFeatureExtractor`` on each clip: the features of a clip in a batch are those
    the extractor gives for that clip alone (with ``padding="longest"``). To get the 30 s-padded
    features Whisper was trained on, pass audio zero-padded to 480 000 samples with lengths 480 000.

    Args:
        num_mel_bins: mel channels (80 for Whisper up to large-v2, 128 for large-v3).
        n_fft: FFT size and window length in samples.
        hop_length: hop in samples (160 = 10 ms, i.e. 100 frames per second).
    """

    def __init__(self, num_mel_bins: int = 80, n_fft: int = 400, hop_length: int = 160) -> None:
        super().__init__()
        self.num_mel_bins = num_mel_bins
        self.n_fft = n_fft
        self.hop_length = hop_length
        filters = mel_filter_bank(
            num_frequency_bins=1 + n_fft // 2,
            num_mel_filters=num_mel_bins,
            min_frequency=0.0,
            max_frequency=SAMPLE_RATE / 2,
            sampling_rate=SAMPLE_RATE,
            norm="slaney",
            mel_scale="slaney",
        )
        self._set_constant("mel_filters", filters.T)  # (n_mels, n_freq): filters @ power → (B, n_mels, M)
        self._set_constant("window", torch.hann_window(n_fft, dtype=torch.float64))

    def frame_lengths(self, audio_lens: Tensor) -> Tensor:
        """(B,) samples → (B,) mel frames: the extractor drops the last STFT frame, so S // hop."""
        return torch.div(audio_lens, self.hop_length, rounding_mode="floor")

    def forward(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Log-mel features of a padded batch.

        Args:
            audio: (B, S) float 16 kHz samples.
            audio_lens: (B,) valid samples per clip.

        Returns:
            features (B, num_mel_bins, M) float32 with M = S // hop, zero on frames past a clip's end;
            frame_lens (B,) = audio_lens // hop.
        """
        audio = audio.float()
        frame_lens = self.frame_lengths(audio_lens).to(audio.device)
        padded = reflect_pad_per_clip(audio, audio_lens, self.n_fft // 2)
        window = self._constant("window", audio.device, torch.float32)
        stft = torch.stft(
            padded, self.n_fft, self.hop_length, window=window, center=False, return_complex=True
        )
        power = stft[..., :-1].abs().pow(2)  # (B, n_freq, M): the last frame is dropped, as in HF
        mel_filters = self._constant("mel_filters", audio.device, torch.float32)
        log_mel = (mel_filters @ power).clamp(min=1e-10).log10()  # (B, n_mels, M)
        valid = lengths_to_mask(frame_lens, log_mel.shape[-1])[:, None, :]  # (B, 1, M)
        # Dynamic range: floor each clip at its own maximum − 8 (over its valid frames only).
        clip_max = log_mel.masked_fill(~valid, float("-inf")).amax(dim=(1, 2), keepdim=True)
        log_mel = (torch.maximum(log_mel, clip_max - 8.0) + 4.0) / 4.0
        return log_mel.masked_fill(~valid, 0.0), frame_lens


class SeamlessFbank(_FeatureModule):
    """SeamlessM4T's Kaldi-style fbank: 80 log-mel bins, per-utterance normalisation, 2 frames stacked.

    Per clip, as ``SeamlessM4TFeatureExtractor``: samples scaled to 16-bit range; 25 ms frames every
    10 ms without centre padding; per frame DC removal, pre-emphasis 0.97, Povey window, 512-point
    FFT power, Kaldi mel filters (20 Hz – 8 kHz), natural log floored at float32 eps; then each mel bin
    normalised to zero mean and unit variance (unbiased) over the clip's frames; then pairs of frames
    stacked into 160-dim vectors at 50 Hz, a trailing odd frame dropped from the valid length.

    Args:
        num_mel_bins: mel channels (80).
        stride: frames stacked into one vector (2).
    """

    frame_length = 400
    hop_length = 160
    fft_length = 512
    preemphasis = 0.97
    mel_floor = 1.192092955078125e-07  # float32 machine epsilon, Kaldi's log floor

    def __init__(self, num_mel_bins: int = 80, stride: int = 2) -> None:
        super().__init__()
        self.num_mel_bins = num_mel_bins
        self.stride = stride
        filters = mel_filter_bank(
            num_frequency_bins=self.fft_length // 2 + 1,
            num_mel_filters=num_mel_bins,
            min_frequency=20,
            max_frequency=SAMPLE_RATE // 2,
            sampling_rate=SAMPLE_RATE,
            norm=None,
            mel_scale="kaldi",
            triangularize_in_mel_space=True,
        )
        self._set_constant("mel_filters", filters)  # (n_freq, n_mels)
        self._set_constant("window", np.hanning(self.frame_length) ** 0.85)  # Povey: symmetric Hann ** 0.85

    def frame_lengths(self, audio_lens: Tensor) -> Tensor:
        """(B,) samples → (B,) stacked frames: N = 1 + (S − 400) // 160 fbank frames, then N // stride."""
        frames = torch.div(audio_lens - self.frame_length, self.hop_length, rounding_mode="floor") + 1
        return torch.div(frames.clamp(min=0), self.stride, rounding_mode="floor")

    def forward(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Stacked, normalised fbank features of a padded batch.

        Args:
            audio: (B, S) float 16 kHz samples in [-1, 1].
            audio_lens: (B,) valid samples per clip; each at least 560 (two frames, for the variance).

        Returns:
            features (B, T, num_mel_bins * stride) float32 (computed in float64), zero past each clip's end;
            lens (B,) valid stacked frames.
        """
        audio_lens = audio_lens.to(audio.device)
        min_samples = self.frame_length + self.hop_length  # two frames for the unbiased variance
        if bool((audio_lens < min_samples).any()):
            short = audio_lens[audio_lens < min_samples].tolist()
            raise ValueError(
                f"SeamlessFbank needs clips of at least {min_samples} samples (35 ms at 16 kHz); "
                f"got lengths {short}"
            )
        # float64 like the reference: with a loud tone, quiet mel bins hold ~1e-10 of the frame's
        # power, below float32's FFT rounding, and their logs came out up to 1.5e-3 off in float32.
        # The fbank is a small cost beside the conformer, also on GPU.
        audio = audio.double() * 32768.0  # Kaldi works on 16-bit integer amplitudes
        frames = audio.unfold(1, self.frame_length, self.hop_length)  # (B, N, 400)
        frames = frames - frames.mean(dim=-1, keepdim=True)  # DC offset removal per frame
        first = frames[..., :1] * (1.0 - self.preemphasis)
        frames = torch.cat([first, frames[..., 1:] - self.preemphasis * frames[..., :-1]], dim=-1)
        window = self._constant("window", audio.device, torch.float64)
        spectrum = torch.fft.rfft(frames * window, n=self.fft_length)  # (B, N, 257)
        mel_filters = self._constant("mel_filters", audio.device, torch.float64)
        log_mel = (spectrum.abs().pow(2) @ mel_filters).clamp(min=self.mel_floor).log()  # (B, N, 80)

        num_frames = torch.div(audio_lens - self.frame_length, self.hop_length, rounding_mode="floor") + 1
        valid = lengths_to_mask(num_frames, log_mel.shape[1])[:, :, None]  # (B, N, 1)
        count = num_frames[:, None, None].to(log_mel.dtype)
        mean = log_mel.masked_fill(~valid, 0.0).sum(dim=1, keepdim=True) / count
        centred = (log_mel - mean).masked_fill(~valid, 0.0)
        variance = centred.pow(2).sum(dim=1, keepdim=True) / (count - 1)
        normed = centred / torch.sqrt(variance + 1e-7)

        batch, total, bins = normed.shape
        usable = total - total % self.stride
        stacked = normed[:, :usable].reshape(batch, usable // self.stride, bins * self.stride)
        lens = torch.div(num_frames, self.stride, rounding_mode="floor")
        # A clip with an odd frame count keeps that frame's values in its last stacked vector
        # (as HF does), but the vector is padding: zero it so every padded position is 0.
        stacked = stacked.masked_fill(~lengths_to_mask(lens, stacked.shape[1])[:, :, None], 0.0)
        return stacked.float(), lens
