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


@dataclass
class Generation:
    """What :meth:`SpeechLLM.generate_detailed` decoded: per clip its text, the new tokens it took
    and whether it stopped at its token limit instead of a stop token (``capped``: a runaway,
    or a limit set too low). ``token_limits``: each clip's limit (None: the decoder has none)."""

    texts: list[str]
    num_tokens: list[int]
    token_limits: list[int | None]
    capped: list[bool]

    @classmethod
    def unlimited(cls, texts: list[str]) -> Generation:
        """Texts decoded without a token limit (the pre-alignment head's CTC readout)."""
        return cls(texts, [0] * len(texts), [None] * len(texts), [False] * len(texts))

    @classmethod
    def joined(cls, parts: list[Generation], owners: list[int], num_clips: int) -> Generation:
        """Chunks' generations, in order (``owners[i]``: the clip of chunk i), as one per clip:
        texts joined with a space, tokens and limits summed, capped if any chunk was."""
        texts: list[list[str]] = [[] for _ in range(num_clips)]
        tokens, capped = [0] * num_clips, [False] * num_clips
        limits: list[int | None] = [0] * num_clips
        pieces = zip(
            owners,
            [text for part in parts for text in part.texts],
            [n for part in parts for n in part.num_tokens],
            [limit for part in parts for limit in part.token_limits],
            [cut for part in parts for cut in part.capped],
        )
        for owner, text, n, limit, cut in pieces:
            texts[owner] += [text] if text else []
            tokens[owner] += n
            so_far = limits[owner]
            limits[owner] = None if limit is None or so_far is None else so_far + limit
            capped[owner] |= cut
        return cls([" ".join(parts) for parts in texts], tokens, limits, capped)


def valid_targets(ids: Tensor, lens: Tensor) -> Tensor:
    """Flatten the valid target ids of each row, in row order: (sum(lens),)."""
    return ids[torch.arange(ids.shape[1], device=ids.device)[None, :] < lens[:, None]]


def as_inputs(batch: ModelInputs | Mapping[str, Any]) -> ModelInputs:
    """A :class:`ModelInputs` as it is; a plain dict (benchmarks, older callers) read by its keys."""
    if not isinstance(batch, Mapping):
        return batch
    inputs: Any = SimpleNamespace(**{name: batch.get(name) for name in ModelInputs.__annotations__})
    return inputs
