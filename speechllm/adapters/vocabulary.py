"""A kept subset of the LLM vocabulary as class indices: what a CTC head over tokens scores.

Scoring every frame against all V tokens of an LLM (49 152 for SmolLM2, 128 256 for Llama 3.1)
costs a (T, C) × (C, V) product per clip, most of it for tokens no transcript contains. A head
that keeps K ids (the training transcripts' own, :func:`~speechllm.prealign.module.transcript_vocabulary`)
scores K + 1 classes: index 0 is the blank, 1..K the kept ids in ascending order.

Used by the pre-alignment head (:mod:`speechllm.prealign.head`) and the CTC adapter
(:mod:`speechllm.adapters.ctc`).

Shapes: V vocabulary, K kept ids, B batch, N target tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor

from speechllm.adapters.interface import AdapterTargets
from speechllm.masking import lengths_to_mask


def kept_ids(ids: Tensor, vocab_size: int, drop: int | None = None) -> Tensor:
    """Sorted unique ids (K,) within ``[0, vocab_size)``, without ``drop`` (the blank's own id).

    Raises:
        ValueError: no id is left, or one lies outside the vocabulary.
    """
    ids = torch.unique(ids.long())
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(f"vocabulary: token ids must lie within [0, {vocab_size})")
    if drop is not None:
        ids = ids[ids != drop]
    if ids.numel() == 0:
        raise ValueError("vocabulary: no token id kept (are the training transcripts empty?)")
    return ids


def class_index(ids: Tensor, vocab_size: int) -> Tensor:
    """(V,) map from token id to class: 1..K for the kept ``ids`` (K,), 0 for the others."""
    index = torch.zeros(vocab_size, dtype=torch.long, device=ids.device)
    index[ids] = torch.arange(ids.numel(), device=ids.device) + 1
    return index


def to_classes(targets: AdapterTargets, index: Tensor) -> AdapterTargets:
    """Token ids (B, N) → class indices (B, N'), right-packed; ids the ``index`` does not keep
    (class 0) are dropped, so a row's length may shrink."""
    if targets.ids.shape[1] == 0:
        return AdapterTargets(
            targets.ids.new_zeros(targets.ids.shape[0], 1), targets.lens.new_zeros(targets.lens.shape)
        )
    valid = lengths_to_mask(targets.lens, targets.ids.shape[1])
    classes = index[torch.where(valid, targets.ids, 0).clamp(0, index.numel() - 1)]
    keep = valid & (classes > 0)
    lens = keep.sum(dim=1)
    width = max(int(lens.max()) if lens.numel() else 0, 1)
    # Stable sort by "not kept" moves each row's kept classes to its front, in order.
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices
    packed = torch.gather(torch.where(keep, classes, 0), 1, order)[:, :width]
    return AdapterTargets(torch.where(lengths_to_mask(lens, width), packed, 0), lens)
