"""The paper's WLQ-former adapter: a window-level Q-Former, learned queries per window of frames."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechllm.adapters.interface import Adapter, AdapterTargets
from speechllm.masking import lengths_to_mask
from speechllm.registry import register_adapter

WINDOW_SECONDS = 0.32  # the paper's window: 16 Whisper frames (50 Hz), 2 Seamless frames (6.25 Hz)
DEFAULT_WINDOW = 16


def default_window(window: int | None, encoder_frame_rate_hz: float | None) -> int:
    """``window`` if given, else 0.32 s of encoder frames (at least 1), else 16."""
    if window is not None:
        if window < 1:
            raise ValueError(f"wlq_former adapter: `window` must be ≥ 1, got {window}")
        return window
    if encoder_frame_rate_hz is None:
        return DEFAULT_WINDOW
    return max(1, round(WINDOW_SECONDS * encoder_frame_rate_hz))


@register_adapter("wlq_former")
class WLQFormerAdapter(Adapter):
    """Window-level Q-Former (Tang et al., 2024) → modality adapter.

    The encoder states are layer-normed and cut into non-overlapping windows of ``window`` frames.
    Each window has ``queries_per_window`` learned queries that go through ``qformer_layers``
    pre-norm decoder layers: self-attention among the window's queries, then cross-attention to
    that window's frames only, then a feed-forward block::

        frames  |f1 … f16|f17 … f32|f33 … f40 ░░░░|   (░ = key-masked padding of the last window)
                     ↑ cross-attn    ↑               ↑
        queries     q_1            q_2             q_3     → ceil(L / window) · queries frames

    All windows of the batch run as one call ((B, W, window, C) → (B·W, window, C)); windows
    wholly past a clip's end are left out of it, and the last partial window of a clip is kept,
    its padded frames masked.

    Args:
        in_dim: encoder hidden size C.
        out_dim: LLM embedding size D.
        window: frames per window; None → 0.32 s at ``encoder_frame_rate_hz`` (16 at 50 Hz,
            2 at 6.25 Hz), or 16 if the rate is unknown too.
        encoder_frame_rate_hz: encoder frame rate (filled in by the model).
        queries_per_window: learned queries (output frames) per window (paper: 1).
        qformer_layers / qformer_dim / qformer_heads: Q-Former sizes (paper: 4 / 768 / 12).
        dropout: dropout of the Q-Former and the modality adapter.
        **modality_options: other options of the shared modality adapter.

    Shapes: hidden (B, T, C) → embeds (B, ceil(T / window) · queries_per_window, D).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        window: int | None = None,
        encoder_frame_rate_hz: float | None = None,
        queries_per_window: int = 1,
        qformer_layers: int = 4,
        qformer_dim: int = 768,
        qformer_heads: int = 12,
        dropout: float = 0.1,
        **modality_options: Any,
    ) -> None:
        super().__init__(in_dim, out_dim, modality_in_dim=qformer_dim, dropout=dropout, **modality_options)
        if queries_per_window < 1:
            raise ValueError(
                f"wlq_former adapter: `queries_per_window` must be ≥ 1, got {queries_per_window}"
            )
        self.window = default_window(window, encoder_frame_rate_hz)
        self.queries_per_window = queries_per_window
        self.norm = nn.LayerNorm(in_dim)
        # The decoder layers attend in qformer_dim; this maps the encoder states to it.
        self.memory_proj = nn.Linear(in_dim, qformer_dim)
        self.queries = nn.Parameter(torch.randn(queries_per_window, qformer_dim) * 0.02)
        layer = nn.TransformerDecoderLayer(
            qformer_dim,
            qformer_heads,
            4 * qformer_dim,
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.qformer = nn.TransformerDecoder(layer, qformer_layers, norm=nn.LayerNorm(qformer_dim))

    def compress(
        self, hidden: Tensor, lens: Tensor, targets: AdapterTargets | None = None
    ) -> tuple[Tensor, Tensor]:
        """Args: hidden (B, T, C) zero past lens, lens (B,), targets (unused).
        Returns: (B, ceil(T / window) · queries_per_window, qformer_dim) query outputs, out_lens (B,)."""
        batch, frames, _ = hidden.shape
        window_lens = torch.div(lens + self.window - 1, self.window, rounding_mode="floor")  # ceil
        windows = max(int(window_lens.max()), 1)
        frames_used = windows * self.window
        valid = lengths_to_mask(lens, frames_used)
        memory = self.memory_proj(self.norm(hidden[:, :frames_used]))
        memory = F.pad(memory, (0, 0, 0, frames_used - memory.shape[1])) * valid.unsqueeze(-1).to(
            memory.dtype
        )
        memory = memory.reshape(batch * windows, self.window, -1)
        key_padding = ~valid.reshape(batch * windows, self.window)
        # Only windows that hold at least one valid frame go in (a fully masked one would give NaNs).
        live = lengths_to_mask(window_lens, windows).flatten()
        queries = self.queries.to(memory.dtype).expand(int(live.sum()), -1, -1)
        live_out = self.qformer(queries, memory[live], memory_key_padding_mask=key_padding[live])
        out = live_out.new_zeros(batch * windows, self.queries_per_window, live_out.shape[-1])
        out[live] = live_out
        out = out.reshape(batch, windows * self.queries_per_window, -1)
        return out, window_lens * self.queries_per_window
