"""SpeechEncoder: the interface every frozen speech foundation model keeps."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from speechllm.dtypes import resolve_dtype
from speechllm.encoders.trainable import add_encoder_lora, trainable_option_keys, unfreeze_top
from speechllm.errors import ConfigError
from speechllm.masking import lengths_to_mask


def parse_dtype(dtype: str) -> torch.dtype:
    """``"float32"`` / ``"bfloat16"`` → torch dtype (the encoders' features need no float16)."""
    return resolve_dtype(dtype, "encoder dtype", allowed=("float32", "bfloat16"))


def path_identity(path: str) -> str:
    """A hub name as is, a local directory as its absolute path (two relative spellings, one cache key)."""
    return os.path.abspath(path) if os.path.isdir(path) else path


class SpeechEncoder(nn.Module):
    """A frozen speech encoder: 16 kHz audio → hidden frames at ``frame_rate_hz``.

    Subclasses load their weights, set ``dim`` and ``frame_rate_hz``, call :meth:`freeze` at the end
    of ``__init__`` and implement :meth:`encode` and :meth:`output_lengths`. The encoder computes its
    own features in torch on the batch's device. A subclass that offers the trainable options
    (``lora``, ``unfreeze_top_layers``: :mod:`speechllm.encoders.trainable`) passes them to this
    constructor and implements :meth:`layer_stack` (and :meth:`modules_above_layers`); with either
    set, those parameters train and the forward pass keeps their gradients.

    Frozen means: no parameter requires grad, the module stays in eval mode whatever ``.train()``
    is called with (a Lightning module's ``.train()`` reaches it), and the forward pass runs under
    ``torch.no_grad()``. Not ``inference_mode``: its outputs feed a trained adapter, and inference
    tensors cannot be saved for that adapter's backward pass. Autocast is switched off inside: the
    weight dtype (``dtype`` option) alone sets the encoder's precision.
    """

    name: str = "encoder"  # the registry name, first field of the cache key
    dim: int
    frame_rate_hz: float
    lora_targets: tuple[str, ...] = ()  # the attention projections encoder LoRA goes on by default

    def __init__(
        self,
        path: str,
        dtype: str = "float32",
        lora: Mapping[str, Any] | None = None,
        unfreeze_top_layers: int = 0,
    ) -> None:
        super().__init__()
        self.path = path
        self.dtype_name = dtype
        self.weight_dtype = parse_dtype(dtype)
        self.lora_options = dict(lora) if lora else None
        self.unfreeze_top_layers = int(unfreeze_top_layers)
        if self.unfreeze_top_layers < 0:
            raise ValueError(f"model.encoder.unfreeze_top_layers={unfreeze_top_layers}: must be >= 0")
        if self.unfreeze_top_layers and self.weight_dtype != torch.float32:
            # Trained parameters are kept in float32 (the LightningModule casts them); a layer
            # half bf16, half float32 cannot run.
            raise ValueError(
                "model.encoder.unfreeze_top_layers needs model.encoder.dtype: float32 (trained layers "
                "stay float32); use model.encoder.lora with a bfloat16 encoder"
            )

    @property
    def trainable_keys(self) -> list[str]:
        """The config keys that make this encoder trainable (``model.encoder.lora`` …); empty: frozen."""
        return trainable_option_keys(self.lora_options, self.unfreeze_top_layers)

    def layer_stack(self) -> nn.ModuleList:
        """The encoder's transformer layers, bottom to top (what ``unfreeze_top_layers`` counts)."""
        raise NotImplementedError(f"{type(self).__name__} does not offer trainable layers")

    def modules_above_layers(self) -> list[nn.Module]:
        """Modules between the top layer and the output (a final norm): trained with the top layers."""
        return []

    def freeze(self) -> None:
        """Stop gradients to every parameter and switch to eval mode (for good), then make the
        parts that the ``lora`` and ``unfreeze_top_layers`` options name trainable."""
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        super().train(False)
        if self.lora_options:
            add_encoder_lora(self.layer_stack(), self.lora_options, self.lora_targets)
        if self.unfreeze_top_layers:
            unfreeze_top(self.layer_stack(), self.modules_above_layers(), self.unfreeze_top_layers)

    def train(self, mode: bool = True) -> SpeechEncoder:
        """Stay in eval mode: dropout and layer drop of a frozen encoder must stay off in training."""
        return super().train(False)

    def options(self) -> dict[str, Any]:
        """The options that change this encoder's outputs (for :meth:`cache_key`)."""
        return {"dtype": self.dtype_name}

    def cache_key(self) -> str:
        """Identity of the outputs: encoder kind, weights and every output-changing option.

        Two encoders with the same key give the same outputs for the same audio, so an
        encoder-output cache can be keyed on it, e.g. ``whisper|openai/whisper-large-v3|
        weights=3f2a…|chunk_long_audio=False|dtype=float32|pad_to_30s=True``. The weights are
        named by their content (:meth:`weights_digest`), not only by their path: other weights
        saved at the same path give another key, so a stale cache is never served.

        Raises:
            ConfigError: the encoder is trained (``lora``, ``unfreeze_top_layers``): its outputs
                change with every step, so no cache may serve them (naming the keys).
        """
        if self.trainable_keys:
            keys = " and ".join(self.trainable_keys)
            raise ConfigError(
                f"{keys} make the speech encoder trainable, so its outputs cannot be cached or read "
                "from an encoder cache (they change with every training step); remove "
                f"data.encoder_cache (and Shar outputs attached by `speechllm cache`), or {keys}"
            )
        options = "|".join(f"{key}={value}" for key, value in sorted(self.options().items()))
        return f"{self.name}|{path_identity(self.path)}|weights={self.weights_digest()}|{options}"

    def weights_digest(self) -> str:
        """BLAKE2b (16 hex digits) of every parameter and buffer: names, dtypes, shapes, bytes.

        Computed once per encoder (the weights are frozen); about a second per GB of weights.
        """
        digest = self.__dict__.get("_weights_digest")
        if digest is None:
            hasher = hashlib.blake2b(digest_size=8)
            for name, tensor in sorted(self.state_dict().items()):
                hasher.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
                hasher.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
            digest = self.__dict__["_weights_digest"] = hasher.hexdigest()
        return digest

    def output_lengths(self, audio_lens: Tensor) -> Tensor:
        """(B,) samples → (B,) output frames, exactly as :meth:`forward` reports them."""
        raise NotImplementedError

    def encode(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Encode a checked batch; called by :meth:`forward` under ``no_grad``. Same shapes as forward."""
        raise NotImplementedError

    def forward(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Encode a padded batch of audio.

        Args:
            audio: (B, S) float 16 kHz samples; samples past a clip's length are ignored.
            audio_lens: (B,) valid samples per clip.

        Returns:
            hidden (B, T, C) float32 (whatever the weight dtype, so the trained adapter sees one
            dtype), zero on frames past each clip's length; lens (B,) valid frames per clip.
        """
        if audio.dim() != 2:
            raise ValueError(f"{type(self).__name__} expects audio of shape (B, S), got {tuple(audio.shape)}")
        name = type(self).__name__
        if audio_lens.shape != (audio.shape[0],):
            raise ValueError(
                f"{name}: audio_lens must have shape ({audio.shape[0]},), got {tuple(audio_lens.shape)}"
            )
        audio_lens = audio_lens.to(device=audio.device, dtype=torch.long)
        if bool((audio_lens > audio.shape[1]).any()) or bool((audio_lens < 0).any()):
            raise ValueError(
                f"{name}: audio_lens {audio_lens.tolist()} out of range for {audio.shape[1]} samples"
            )
        # Samples past a clip's length may be anything in the caller's batch; make them silence so
        # no feature sees them.
        audio = audio.float().masked_fill(~lengths_to_mask(audio_lens, audio.shape[1]), 0.0)
        # Autocast off: the encoder runs in its own weight dtype (the `dtype` option, part of the
        # cache key), not in whatever precision a surrounding bf16-mixed training step picks, and
        # the features stay in full precision.
        # A trained encoder keeps its graph (when the caller's grad mode is on: training).
        keep_graph = contextlib.nullcontext() if self.trainable_keys else torch.no_grad()
        with keep_graph, torch.autocast(device_type=audio.device.type, enabled=False):
            hidden, lens = self.encode(audio, audio_lens)
        return hidden.float(), lens
