"""Padding and length ↔ mask helpers shared by data, encoders, adapters and the model."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence


def lengths_to_mask(lens: Tensor, max_len: int | None = None) -> Tensor:
    """(B,) lengths → (B, T) bool mask, True on valid frames."""
    max_len = int(lens.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lens.device)[None, :] < lens[:, None]


def pad_ids(rows: list[list[int]], device: torch.device | str = "cpu", pad: int = 0) -> tuple[Tensor, Tensor]:
    """Right-pad lists of ids → ((B, L) ids, (B,) lengths)."""
    lens = torch.tensor([len(r) for r in rows], dtype=torch.long, device=device)
    ids = torch.full(
        (len(rows), max(1, int(lens.max()) if rows else 1)), pad, dtype=torch.long, device=device
    )
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long, device=device)
    return ids, lens


def pad_audio(clips: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Right-pad 1-D clips → ((B, S) float32, (B,) lengths in samples)."""
    lens = torch.tensor([c.shape[0] for c in clips], dtype=torch.long)
    audio = torch.zeros(len(clips), int(lens.max()) if clips else 0)
    for i, clip in enumerate(clips):
        audio[i, : clip.shape[0]] = clip
    return audio, lens


def splice(segments: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor, Tensor]:
    """Concatenate each row's valid parts of several right-padded segments, then left-pad.

    Args:
        segments: ``(embeds (B, L_k, D), lens (B,))`` pairs, in order.
    Returns:
        embeds (B, L, D), attention_mask (B, L) long, position_ids (B, L) long (0 at each row's
        first real position, so left padding does not shift positions).
    """
    dtype = segments[0][0].dtype
    rows = [
        torch.cat([emb[i, : int(lens[i])].to(dtype) for emb, lens in segments], dim=0)
        for i in range(segments[0][0].shape[0])
    ]
    embeds = pad_sequence(rows, batch_first=True, padding_side="left")
    row_lens = torch.tensor([r.shape[0] for r in rows], device=embeds.device)
    total = embeds.shape[1]
    attention_mask = (torch.arange(total, device=embeds.device)[None, :] >= total - row_lens[:, None]).long()
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return embeds, attention_mask, position_ids
