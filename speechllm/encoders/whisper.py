"""Whisper's encoder as a frozen SpeechEncoder (50 Hz frames, ``d_model`` wide)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from speechllm.audio import SAMPLE_RATE
from speechllm.encoders.base import SpeechEncoder
from speechllm.encoders.features import WhisperLogMel
from speechllm.masking import lengths_to_mask
from speechllm.registry import register_encoder

WINDOW_SECONDS = 30
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE  # Whisper's fixed 30 s input: 3000 mel frames, 1500 outputs


class _WhisperEncoderWeights(WhisperEncoder):
    """``WhisperEncoder`` that loads from a full Whisper checkpoint and drops the decoder quietly.

    ``from_pretrained`` is called with a key mapping that strips ``model.encoder.`` (a
    ``WhisperForConditionalGeneration`` checkpoint such as ``openai/whisper-large-v3``) or
    ``encoder.`` (a saved ``WhisperModel``). Only the encoder's tensors are materialised, so the
    decoder never takes memory; its keys are expected leftovers, not worth a load-report warning.
    Missing encoder keys are still reported, and :class:`WhisperSpeechEncoder` makes them an error.
    """

    _keys_to_ignore_on_load_unexpected = [r"^(?!(model\.)?encoder\.)"]


def load_whisper_encoder(path: str, dtype: torch.dtype) -> WhisperEncoder:
    """The encoder half of a Whisper checkpoint (hub name or local directory), without the decoder."""
    encoder, info = _WhisperEncoderWeights.from_pretrained(
        path, key_mapping={r"^(model\.)?encoder\.": ""}, dtype=dtype, output_loading_info=True
    )
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise ValueError(f"{path}: not a Whisper checkpoint with encoder weights; missing {missing[:5]} ...")
    return encoder


@register_encoder("whisper")
class WhisperSpeechEncoder(SpeechEncoder):
    """Frozen Whisper encoder with torch log-mel features.

    Two ways to run it, recorded in :meth:`cache_key` because they give different representations:

    - ``pad_to_30s=True`` (the paper's setting, default): every clip is zero-padded to 30 s and the
      HF ``WhisperEncoder`` runs as is (it accepts exactly 3000 mel frames). Whisper attends over
      the padding without a mask, as it was trained to. The output is cut to the clip's frames.
    - ``pad_to_30s=False`` (fast path): the encoder's own modules run on the true length (convs,
      positional embeddings sliced to the length, layers with a padding mask, final norm). A clip
      gives the same frames alone or in a batch, but not the same frames as the padded path.

    Output frames: the 100 Hz mel has ``S // 160`` frames (the extractor drops the last STFT
    frame) and the stride-2 conv halves it rounding up, so ``T = (S // 160 + 1) // 2`` at 50 Hz.

    Args:
        path: hub name or local directory of a Whisper checkpoint (full model or ``WhisperModel``).
        pad_to_30s: run on 30 s padded input (paper) or on the true length.
        chunk_long_audio: encode clips longer than 30 s as consecutive 30 s windows whose frames are
            concatenated; otherwise such a clip is an error.
        dtype: weight dtype, ``"float32"`` or ``"bfloat16"``; features stay float32.
        lora: LoRA on the layers' attention (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``):
            ``{r, alpha, dropout, target_modules}``; None: none (:mod:`speechllm.encoders.trainable`).
        unfreeze_top_layers: train the last N transformer layers and the final layer norm.
    """

    name = "whisper"
    frame_rate_hz = 50.0
    lora_targets = ("q_proj", "k_proj", "v_proj", "out_proj")

    def __init__(
        self,
        path: str = "openai/whisper-large-v3",
        pad_to_30s: bool = True,
        chunk_long_audio: bool = False,
        dtype: str = "float32",
        lora: dict[str, Any] | None = None,
        unfreeze_top_layers: int = 0,
    ) -> None:
        super().__init__(path=path, dtype=dtype, lora=lora, unfreeze_top_layers=unfreeze_top_layers)
        self.pad_to_30s = pad_to_30s
        self.chunk_long_audio = chunk_long_audio
        self.model = load_whisper_encoder(path, self.weight_dtype)
        config = self.model.config
        expected_frames = (
            config.max_source_positions * self.model.conv1.stride[0] * self.model.conv2.stride[0]
        )
        if expected_frames * 160 != WINDOW_SAMPLES:
            raise ValueError(
                f"{path}: max_source_positions={config.max_source_positions} does not cover a 30 s window "
                f"({WINDOW_SAMPLES // 320} positions expected)"
            )
        self.features = WhisperLogMel(num_mel_bins=config.num_mel_bins)
        self.dim = int(config.d_model)
        self.freeze()

    def layer_stack(self) -> nn.ModuleList:
        return self.model.layers

    def modules_above_layers(self) -> list[nn.Module]:
        return [self.model.layer_norm]

    def options(self) -> dict[str, object]:
        return {**super().options(), "pad_to_30s": self.pad_to_30s, "chunk_long_audio": self.chunk_long_audio}

    def output_lengths(self, audio_lens: Tensor) -> Tensor:
        mel_frames = torch.div(audio_lens, self.features.hop_length, rounding_mode="floor")
        return torch.div(mel_frames + 1, 2, rounding_mode="floor")

    def encode(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        longest = int(audio_lens.max()) if audio_lens.numel() else 0
        if longest <= WINDOW_SAMPLES:
            return self._encode_window(audio[:, : min(audio.shape[1], WINDOW_SAMPLES)], audio_lens)
        if not self.chunk_long_audio:
            too_long = [f"{int(n) / SAMPLE_RATE:.2f} s" for n in audio_lens if int(n) > WINDOW_SAMPLES]
            raise ValueError(
                f"Whisper encodes at most {WINDOW_SECONDS} s per clip; got clips of {', '.join(too_long)}. "
                "Set chunk_long_audio: true to encode them in 30 s windows, or cut the audio."
            )
        return self._encode_chunked(audio, audio_lens)

    def _encode_chunked(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Split each clip into 30 s windows, encode all windows as one batch, concatenate per clip."""
        window_audio, window_lens, owner = [], [], []
        for clip, length in enumerate(audio_lens.tolist()):
            for start in range(0, max(length, 1), WINDOW_SAMPLES):
                stop = min(start + WINDOW_SAMPLES, length)
                chunk = audio.new_zeros(WINDOW_SAMPLES)
                chunk[: stop - start] = audio[clip, start:stop]
                window_audio.append(chunk)
                window_lens.append(stop - start)
                owner.append(clip)
        hidden, lens = self._encode_window(
            torch.stack(window_audio), torch.tensor(window_lens, device=audio.device)
        )
        pieces: list[list[Tensor]] = [[] for _ in range(audio.shape[0])]
        for window, clip in enumerate(owner):
            pieces[clip].append(hidden[window, : int(lens[window])])
        per_clip = [torch.cat(parts) for parts in pieces]
        out_lens = torch.tensor([len(frames) for frames in per_clip], device=audio.device)
        return nn.utils.rnn.pad_sequence(per_clip, batch_first=True), out_lens

    def _encode_window(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Encode clips of at most 30 s: audio (B, S ≤ 480000) → hidden (B, T, C), lens (B,)."""
        out_lens = self.output_lengths(audio_lens)
        if self.pad_to_30s:
            padded = audio.new_zeros(audio.shape[0], WINDOW_SAMPLES)
            padded[:, : audio.shape[1]] = audio
            # The whole window is the "clip": its zeros get features (and set no maximum), as HF does.
            full = torch.full_like(audio_lens, WINDOW_SAMPLES)
            features, _ = self.features(padded, full)
            hidden = self.model(features.to(self.weight_dtype)).last_hidden_state
        else:
            if audio.shape[1] < 640:  # under 4 mel frames the convs cannot run; zeros change no valid frame
                audio = nn.functional.pad(audio, (0, 640 - audio.shape[1]))
            hidden = self._true_length_forward(audio, audio_lens)
        hidden = hidden[:, : int(out_lens.max()) if out_lens.numel() else 0]
        return hidden.masked_fill(~lengths_to_mask(out_lens, hidden.shape[1])[:, :, None], 0.0), out_lens

    def _true_length_forward(self, audio: Tensor, audio_lens: Tensor) -> Tensor:
        """The encoder's modules on unpadded lengths (HF's forward refuses anything but 3000 frames).

        Padding is made invisible: mel frames and conv1 outputs past a clip's end are zeroed (as the
        convs' own zero padding would be for the clip alone) and attention masks padded keys.
        """
        model = self.model
        features, mel_lens = self.features(audio, audio_lens)  # (B, n_mels, M), zero past mel_lens
        mel_valid = lengths_to_mask(mel_lens, features.shape[-1])[:, None, :]
        hidden = nn.functional.gelu(model.conv1(features.to(self.weight_dtype)))
        hidden = nn.functional.gelu(model.conv2(hidden.masked_fill(~mel_valid, 0.0)))  # (B, C, T)
        hidden = hidden.transpose(1, 2)
        hidden = hidden + model.embed_positions.weight[: hidden.shape[1]]
        out_lens = self.output_lengths(audio_lens)
        # A clip with no frame still needs one key to attend to (its output is zeroed afterwards).
        key_valid = lengths_to_mask(out_lens.clamp(min=1), hidden.shape[1])
        attention_mask = create_bidirectional_mask(
            config=model.config, inputs_embeds=hidden, attention_mask=key_valid
        )
        for layer in model.layers:
            hidden = layer(hidden, attention_mask)
        return model.layer_norm(hidden)
