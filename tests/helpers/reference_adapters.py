"""Plain per-frame loop implementations of CIF and CTC compression: the references that the
vectorized adapters are tested against (tests/adapters/test_adapters.py) and timed against (benchmarks/).

They follow the textbook descriptions one frame at a time, with no cleverness, so that a reader
can check them by eye.
"""

from __future__ import annotations

import torch
from torch import Tensor


def cif_integrate_loop(
    hidden: Tensor, alphas: Tensor, lens: Tensor, threshold: float = 1.0, tail_threshold: float = 0.5
) -> tuple[Tensor, Tensor]:
    """Sequential integrate-and-fire. hidden (B, T, C), alphas (B, T), lens (B,) →
    fired (B, K, C) fp32 zero-padded, out_lens (B,)."""
    clips = []
    for b in range(hidden.shape[0]):
        outputs = []
        accumulated = 0.0
        state = torch.zeros(hidden.shape[-1], dtype=torch.float32)
        clip_alphas = alphas[b].tolist()  # Python floats: the loop should not pay for tensor indexing
        for t in range(int(lens[b])):
            alpha = clip_alphas[t]
            frame = hidden[b, t].float()
            if accumulated + alpha < threshold:
                accumulated += alpha
                state = state + alpha * frame
                continue
            # Fire: the part of α that completes the threshold closes this output ...
            used = threshold - accumulated
            outputs.append(state + used * frame)
            remainder = alpha - used
            # ... a very large α can fire whole outputs on its own ...
            while remainder >= threshold:
                outputs.append(threshold * frame)
                remainder -= threshold
            # ... and the rest starts the next integration.
            accumulated = remainder
            state = remainder * frame
        if accumulated >= tail_threshold or not outputs:
            outputs.append(state)
        clips.append(torch.stack(outputs))
    return _pad_clips(clips)


def ctc_compress_loop(
    hidden: Tensor, labels: Tensor, lens: Tensor, max_len: int | None = None
) -> tuple[Tensor, Tensor]:
    """Average runs of equal consecutive labels, frame by frame. hidden (B, T, C), labels (B, T),
    lens (B,) → pooled (B, K, C) fp32 zero-padded, out_lens (B,)."""
    clips = []
    for b in range(hidden.shape[0]):
        outputs = []
        clip_labels = labels[b].tolist()
        run_sum = hidden[b, 0].float()
        run_count = 1
        for t in range(1, int(lens[b])):
            if clip_labels[t] == clip_labels[t - 1]:
                run_sum = run_sum + hidden[b, t].float()
                run_count += 1
            else:
                outputs.append(run_sum / run_count)
                run_sum = hidden[b, t].float()
                run_count = 1
        outputs.append(run_sum / run_count)
        if max_len is not None:
            outputs = outputs[:max_len]
        clips.append(torch.stack(outputs))
    return _pad_clips(clips)


def _pad_clips(clips: list[Tensor]) -> tuple[Tensor, Tensor]:
    out_lens = torch.tensor([len(clip) for clip in clips])
    padded = torch.zeros(len(clips), int(out_lens.max()), clips[0].shape[-1])
    for b, clip in enumerate(clips):
        padded[b, : len(clip)] = clip
    return padded, out_lens
