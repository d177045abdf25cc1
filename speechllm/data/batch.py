"""The typed batch that :class:`~speechllm.data.dataset.SpeechDataset` yields and the model reads.

Shapes: B clips, S audio samples (16 kHz), T encoder frames, C encoder width, L_* token ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor


@dataclass
class Batch:
    """A padded multitask batch: audio (or cached encoder frames), prompt and target ids, metadata.

    Exactly one of ``audio`` and ``encoder_hidden`` is set by the dataset (``encoder_hidden``
    when it reads the encoder-output cache; the model then skips the encoder). Id tensors are
    right-padded with 0; each ``*_ids`` has its ``*_lens``.

    Attributes:
        audio: (B, S) float32 16 kHz audio, zero past ``audio_lens``; None with the encoder cache.
        audio_lens: (B,) long, samples per clip (from the cuts' durations with the cache).
        encoder_hidden: (B, T, C) float32 cached encoder outputs, zero past ``encoder_lens``, or None.
        encoder_lens: (B,) long, valid encoder frames per clip, or None.
        prefix_ids / prefix_lens: (B, L_p) long / (B,): prompt ids before the audio slot.
        suffix_ids / suffix_lens: (B, L_s) long / (B,): prompt ids after the audio slot.
        target_ids / target_lens: (B, L_t) long / (B,): the answer ids + stop id (the loss's tokens).
        transcript_ids / transcript_lens: (B, L_x) long / (B,): the source transcript's plain ids
            (what CTC and CIF adapters and pre-alignment align to).
        cut_ids: B cut ids.
        task: B tasks (``"asr"`` / ``"st"``).
        src_lang / tgt_lang: B language codes (``tgt_lang`` None for ASR).
        reference: B target texts (transcript for ASR, translation for ST).
        source_text: B source transcripts.
        skipped: ``(cut_id, reason)`` of the cuts of this sampler batch that were skipped.

    Read by attribute (``batch.audio``); ``to(device)`` returns a copy with every tensor moved
    (what Lightning's ``move_data_to_device`` calls).
    """

    audio_lens: Tensor
    prefix_ids: Tensor
    prefix_lens: Tensor
    suffix_ids: Tensor
    suffix_lens: Tensor
    target_ids: Tensor
    target_lens: Tensor
    transcript_ids: Tensor
    transcript_lens: Tensor
    cut_ids: list[str]
    task: list[str]
    src_lang: list[str]
    tgt_lang: list[str | None]
    reference: list[str]
    source_text: list[str]
    audio: Tensor | None = None
    encoder_hidden: Tensor | None = None
    encoder_lens: Tensor | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor on ``device``; lists are shared."""
        moved = {
            f.name: value.to(device, non_blocking=non_blocking)
            for f in fields(self)
            if isinstance(value := getattr(self, f.name), Tensor)
        }
        return replace(self, **moved)
