"""Padding and length ↔ mask helpers shared by data, encoders, adapters and the model."""

from __future__ import annotations

import torch
from torch import Tensor


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
