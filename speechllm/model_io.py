"""What :class:`~speechllm.model.SpeechLLM` reads from a batch and what its forward pass returns.

Shapes: B clips, S audio samples (16 kHz), T encoder frames, C encoder width, L_* token ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Protocol

import torch
from torch import Tensor


class ModelInputs(Protocol):
    """What :meth:`SpeechLLM.forward` reads from a batch: :class:`speechllm.data.batch.Batch` has it
    (documented there); a plain dict with these keys is read too, absent keys as None.

    ``audio`` (B, S) and ``audio_lens`` (B,), or ``encoder_hidden`` (B, T, C) and ``encoder_lens``
    (B,) (cached encoder outputs, which skip the encoder); ``*_ids`` (B, L_*) long right-padded
    with their ``*_lens`` (B,).
    """

    audio: Tensor | None
    audio_lens: Tensor
    encoder_hidden: Tensor | None
    encoder_lens: Tensor | None
    prefix_ids: Tensor
    prefix_lens: Tensor
    suffix_ids: Tensor
    suffix_lens: Tensor
    target_ids: Tensor
    target_lens: Tensor
    transcript_ids: Tensor
    transcript_lens: Tensor


@dataclass
class SpeechLLMOutput:
    """``loss`` = LM loss on target tokens + the adapter's (already weighted) ``aux_loss``."""

    loss: Tensor
    lm_loss: Tensor
    aux_loss: Tensor | None
    stats: dict[str, Tensor] = field(default_factory=dict)
    num_target_tokens: int = 0


def valid_targets(ids: Tensor, lens: Tensor) -> Tensor:
    """Flatten the valid target ids of each row, in row order: (sum(lens),)."""
    return ids[torch.arange(ids.shape[1], device=ids.device)[None, :] < lens[:, None]]


def as_inputs(batch: ModelInputs | Mapping[str, Any]) -> ModelInputs:
    """A :class:`ModelInputs` as it is; a plain dict (benchmarks, older callers) read by its keys."""
    if not isinstance(batch, Mapping):
        return batch
    inputs: Any = SimpleNamespace(**{name: batch.get(name) for name in ModelInputs.__annotations__})
    return inputs
