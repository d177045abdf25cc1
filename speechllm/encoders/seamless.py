"""SeamlessM4T v2's speech encoder, with its built-in length adaptor, as a frozen SpeechEncoder (6.25 Hz)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.seamless_m4t_v2.modeling_seamless_m4t_v2 import (
    SeamlessM4Tv2ConformerAdapterLayer,
    SeamlessM4Tv2SpeechEncoder,
)

from speechllm.audio import SAMPLE_RATE
from speechllm.encoders.base import SpeechEncoder
from speechllm.encoders.features import SeamlessFbank
from speechllm.masking import lengths_to_mask
from speechllm.registry import register_encoder


class _SpeechEncoderWeights(SeamlessM4Tv2SpeechEncoder):
    """``SeamlessM4Tv2SpeechEncoder`` that loads from a full SeamlessM4T v2 checkpoint.

    ``from_pretrained`` strips the ``speech_encoder.`` prefix of the checkpoint's keys; only those
    tensors are materialised, so the text encoder/decoder, the T2U model and the vocoder (most of
    the 2.3 B parameters of ``facebook/seamless-m4t-v2-large``) never take memory. Their keys are
    expected leftovers; missing speech-encoder keys are an error in :func:`load_seamless_speech_encoder`.
    """

    _keys_to_ignore_on_load_unexpected = [r"^(?!speech_encoder\.)"]


def load_seamless_speech_encoder(path: str, dtype: torch.dtype) -> SeamlessM4Tv2SpeechEncoder:
    """The speech encoder of a SeamlessM4T v2 checkpoint (hub name or local directory)."""
    encoder, info = _SpeechEncoderWeights.from_pretrained(
        path, key_mapping={r"^speech_encoder\.": ""}, dtype=dtype, output_loading_info=True
    )
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise ValueError(
            f"{path}: not a SeamlessM4T v2 checkpoint with speech-encoder weights; missing {missing[:5]} ..."
        )
    return encoder


@register_encoder("seamless")
class SeamlessSpeechEncoder(SpeechEncoder):
    """Frozen SeamlessM4T v2 speech encoder (conformer + length adaptor) with torch fbank features.

    Rates: fbank at 100 Hz, two frames stacked → 50 Hz into the conformer, then the adaptor's
    stride-8 convolutions → 6.25 Hz. Lengths: ``N = 1 + (S − 400) // 160`` fbank frames,
    ``L = N // 2`` stacked frames, and per adaptor layer ``L ← (L + 2·pad − k) // stride + 1``
    (k = stride = 8, pad = 4 in v2-large: ``L // 8 + 1``).

    The HF forward runs the adaptor's strided convolutions over the batch's padding, which holds
    the conformer's outputs for padded frames; a clip's last frame then depends on its batch. Here
    the adaptor's conv inputs are zeroed past each clip's end, so a clip gives the same frames alone
    or in a batch (and the same as HF gives for it alone).

    Args:
        path: hub name or local directory of a SeamlessM4T v2 checkpoint.
        dtype: weight dtype, ``"float32"`` or ``"bfloat16"``; features stay float32.
        lora: LoRA on the conformer layers' attention (``linear_q``, ``linear_k``, ``linear_v``,
            ``linear_out``): ``{r, alpha, dropout, target_modules}`` (:mod:`speechllm.encoders.trainable`).
        unfreeze_top_layers: train the last N conformer layers and everything after them (the
            final norm, the intermediate FFN, the length adaptor).
    """

    name = "seamless"
    lora_targets = ("linear_q", "linear_k", "linear_v", "linear_out")

    def __init__(
        self,
        path: str = "facebook/seamless-m4t-v2-large",
        dtype: str = "float32",
        lora: dict[str, Any] | None = None,
        unfreeze_top_layers: int = 0,
    ) -> None:
        super().__init__(path=path, dtype=dtype, lora=lora, unfreeze_top_layers=unfreeze_top_layers)
        self.model = load_seamless_speech_encoder(path, self.weight_dtype)
        config = self.model.config
        self.features = SeamlessFbank(num_mel_bins=config.feature_projection_input_dim // 2, stride=2)
        self.dim = int(config.hidden_size)
        stacked_rate = SAMPLE_RATE / self.features.hop_length / self.features.stride  # 50 Hz
        adaptor_stride = config.adaptor_stride**config.num_adapter_layers if config.add_adapter else 1
        self.frame_rate_hz = stacked_rate / adaptor_stride
        self.freeze()

    def layer_stack(self) -> nn.ModuleList:
        return self.model.encoder.layers

    def modules_above_layers(self) -> list[nn.Module]:
        model = self.model
        above = [model.encoder.layer_norm, model.intermediate_ffn, model.inner_layer_norm]
        return above + ([model.adapter] if model.adapter is not None else [])

    def _adapter_layers(self) -> list[SeamlessM4Tv2ConformerAdapterLayer]:
        return list(self.model.adapter.layers) if self.model.adapter is not None else []

    def output_lengths(self, audio_lens: Tensor) -> Tensor:
        lens = self.features.frame_lengths(audio_lens)
        for layer in self._adapter_layers():
            conv = layer.self_attn_conv
            span = lens + 2 * conv.padding[0] - conv.kernel_size[0]
            lens = torch.div(span, conv.stride[0], rounding_mode="floor") + 1
        return lens

    def encode(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        model = self.model
        features, lens = self.features(audio, audio_lens)  # (B, L, 160), (B,)
        valid = lengths_to_mask(lens, features.shape[1])
        hidden = model.feature_projection(features.to(self.weight_dtype))
        hidden = model.encoder(hidden, attention_mask=valid.long())  # masks padding itself
        hidden = hidden + 0.5 * model.intermediate_ffn(hidden)
        for layer in self._adapter_layers():
            hidden, lens = self._adapter_layer(layer, hidden, lens)
        hidden = model.inner_layer_norm(hidden)
        return hidden.masked_fill(~lengths_to_mask(lens, hidden.shape[1])[:, :, None], 0.0), lens

    def _adapter_layer(
        self, layer: SeamlessM4Tv2ConformerAdapterLayer, hidden: Tensor, lens: Tensor
    ) -> tuple[Tensor, Tensor]:
        """One adaptor layer as HF's, but with each strided conv seeing zeros past the clip's end.

        Args:
            hidden: (B, L, C) frames, lens (B,) valid frames.

        Returns:
            (B, L', C) frames and (B,) lengths after the stride.
        """
        valid = lengths_to_mask(lens, hidden.shape[1])[:, :, None]

        def strided_glu(normed: Tensor, conv: nn.Conv1d) -> Tensor:
            normed = normed.masked_fill(~valid, 0.0).transpose(1, 2)  # (B, C, L)
            return layer.activation(conv(normed)).transpose(1, 2)  # GLU over channels → (B, L', C)

        residual = strided_glu(layer.residual_layer_norm(hidden), layer.residual_conv)
        hidden = strided_glu(layer.self_attn_layer_norm(hidden), layer.self_attn_conv)
        conv = layer.self_attn_conv
        lens = (
            torch.div(lens + 2 * conv.padding[0] - conv.kernel_size[0], conv.stride[0], rounding_mode="floor")
            + 1
        )
        attention_mask = create_bidirectional_mask(
            config=layer.config,
            inputs_embeds=hidden,
            attention_mask=lengths_to_mask(lens, hidden.shape[1]),
        )
        attended, _ = layer.self_attn(hidden, attention_mask=attention_mask)
        hidden = layer.self_attn_dropout(attended) + residual
        return layer.ffn(layer.ffn_layer_norm(hidden)) + hidden, lens
