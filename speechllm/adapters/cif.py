"""The paper's CIF adapter: continuous integrate-and-fire towards the LLM token rate."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from speechllm.adapters.interface import Adapter, AdapterTargets, Compressed
from speechllm.masking import lengths_to_mask
from speechllm.registry import register_adapter


def cif_out_lens(alpha_sums: Tensor, threshold: float = 1.0, tail_threshold: float = 0.5) -> Tensor:
    """Number of fired frames per clip: full fires, plus a tail if the leftover ≥ ``tail_threshold``.

    Args:
        alpha_sums: (B,) Σα of each clip.
    Returns:
        (B,) long, at least 1: a clip whose Σα is below the tail threshold still emits its partial
        integration as one frame.
    """
    fires = torch.floor(alpha_sums / threshold)
    leftover = alpha_sums - fires * threshold
    out_lens = fires + (leftover >= tail_threshold).to(fires.dtype)
    return out_lens.long().clamp(min=1)


def cif_weights(
    alphas: Tensor, threshold: float = 1.0, tail_threshold: float = 0.5
) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """The non-zero weights ``w_{k,t}`` of integrate-and-fire (see :func:`cif_integrate`).

    Args:
        alphas: (B, T) non-negative weights, zero on padding.
        threshold / tail_threshold: as :func:`cif_integrate`.
    Returns:
        row (N,) output index ``b·K + k``, col (N,) frame index ``b·T + t``, weight (N,) fp32 — the
        entries of a sparse (B·K, B·T) matrix with at most ``span`` per frame —, out_lens (B,) long
        and K = ``max(out_lens)``.
    """
    batch, frames = alphas.shape
    alphas = alphas.float() / threshold  # integrate in units of β, in fp32 (bf16 cumsums drift)
    ends = torch.cumsum(alphas, dim=1)  # c_t
    starts = ends - alphas  # c_{t-1}
    out_lens = cif_out_lens(ends[:, -1], 1.0, tail_threshold / threshold)
    max_out = int(out_lens.max())
    first = torch.floor(starts).long()  # first output each frame feeds
    span = int((torch.floor(ends).long() - first).max()) + 1
    frame_index = torch.arange(batch * frames, device=alphas.device).view(batch, frames)
    clip_offset = torch.arange(batch, device=alphas.device).unsqueeze(1) * max_out
    rows, cols, values = [], [], []
    for step in range(span):
        index = first + step
        overlap_end = torch.minimum(ends, (index + 1).float())
        overlap_start = torch.maximum(starts, index.float())
        weights = (overlap_end - overlap_start).clamp(min=0)  # w_{k,t} for k = index
        keep = (weights > 0) & (index < out_lens.unsqueeze(1))  # mass past out_lens is a dropped tail
        rows.append((index + clip_offset)[keep])
        cols.append(frame_index[keep])
        values.append(weights[keep])
    return torch.cat(rows), torch.cat(cols), torch.cat(values), out_lens, max_out


def cif_integrate(
    hidden: Tensor, alphas: Tensor, threshold: float = 1.0, tail_threshold: float = 0.5
) -> tuple[Tensor, Tensor]:
    """Integrate-and-fire, vectorized over batch and time.

    With ``c_t = α_1 + … + α_t`` (so frame t covers the interval [c_{t-1}, c_t)), output k
    integrates the α mass that falls in [kβ, (k+1)β), β = ``threshold``::

        e_k = Σ_t  w_{k,t} h_t,   w_{k,t} = max(0, min(c_t, (k+1)β) − max(c_{t-1}, kβ))

    which is exactly the sequential rule "accumulate α; on reaching β fire, and carry the
    remainder of the frame that crossed it into the next integration" (several fires per frame
    when α > β). Each frame touches outputs floor(c_{t-1}/β) … floor(c_t/β); the only Python loop
    runs over that span (2 for α ≤ β), each step computing the weights of all (B·T) frames at
    once (:func:`cif_weights`). Each weight then adds w·h_t to its output: one gather, one scale,
    one ``index_add``. (A sparse matmul computes the same forward, but its backward forms the dense
    (B·K, B·T) gradient of the weight matrix: O(B²·K·T·C) work and memory; ``benchmarks/cif.py``.)

    Args:
        hidden: (B, T, C) frames.
        alphas: (B, T) non-negative weights, zero on padding (where ``hidden`` must be finite).
        threshold: firing threshold β.
        tail_threshold: leftover mass from which the unfinished last integration is emitted.
    Returns:
        fired (B, K, C) in fp32, zero past ``out_lens``; out_lens (B,) long (see :func:`cif_out_lens`).
    """
    batch, frames, channels = hidden.shape
    row, col, weight, out_lens, max_out = cif_weights(alphas, threshold, tail_threshold)
    flat = hidden.float().reshape(batch * frames, channels)
    with torch.autocast(hidden.device.type, enabled=False):
        fired = flat.new_zeros(batch * max_out, channels).index_add(0, row, flat[col] * weight.unsqueeze(1))
    return fired.view(batch, max_out, channels), out_lens


class WeightPredictor(nn.Module):
    """α per frame: ``Conv1d(k3) → LayerNorm → ReLU → Linear(→1) → sigmoid``; zero on padding.

    Shapes: hidden (B, T, C), lens (B,) → alphas (B, T) in fp32.
    """

    def __init__(self, in_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_dim, hidden_dim, kernel_size=3, padding=1)
        self.norm = nn.LayerNorm(hidden_dim)
        self.proj = nn.Linear(hidden_dim, 1)

    def forward(self, hidden: Tensor, lens: Tensor) -> Tensor:
        valid = lengths_to_mask(lens, hidden.shape[1])
        # Zero padding first so the kernel sees the same zeros at a clip's end however it is padded.
        x = self.conv((hidden * valid.unsqueeze(-1).to(hidden.dtype)).transpose(1, 2)).transpose(1, 2)
        x = self.proj(torch.relu(self.norm(x))).squeeze(-1)
        return torch.sigmoid(x.float()) * valid


@register_adapter("cif")
class CIFAdapter(Adapter):
    """Continuous integrate-and-fire (Dong & Xu, 2020) → modality adapter.

    A weight predictor gives α_t ∈ (0, 1) per encoder frame; frames are integrated until the
    accumulated α reaches ``threshold`` (1.0) and one output frame is fired, the crossing frame's
    remainder starting the next one (see :func:`cif_integrate`). What is left at the end is fired
    as a tail when it is ≥ ``tail_threshold`` (0.5) and dropped otherwise; a clip always yields at
    least one frame (if Σα < 0.5, its whole partial integration).

    With ``targets`` in training mode, α is rescaled so that Σα = N (the LLM-token count of the
    transcript): the output then has exactly N frames (for N ≥ 1), the last fired either as a
    full fire or as a tail with leftover ≈ 1 depending on float rounding of Σα, kept either way.
    Whenever ``targets`` are given, the quantity loss ``mean_b |Σα_b − β N_b|`` on the unscaled α,
    times ``quantity_weight``, is the aux loss. Without targets, or in eval mode (validation),
    α is used as predicted, so the output length is the model's own estimate, as in generation.

    Args:
        in_dim: encoder hidden size C.
        out_dim: LLM embedding size D.
        threshold / tail_threshold: firing threshold β and tail rule (paper: 1.0 / 0.5).
        quantity_weight: weight of the quantity loss.
        predictor_dim: channels of the weight predictor's convolution (default ``in_dim``).
        **modality_options: options of the shared modality adapter.

    Shapes: hidden (B, T, C) → embeds (B, K, D); stats also hold ``alpha_sum`` (B,).
    """

    prealign_objective = "ce"  # one output per transcript token in training
    learned_length = True

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        threshold: float = 1.0,
        tail_threshold: float = 0.5,
        quantity_weight: float = 1.0,
        predictor_dim: int | None = None,
        **modality_options: Any,
    ) -> None:
        super().__init__(in_dim, out_dim, modality_in_dim=in_dim, **modality_options)
        if threshold <= 0:
            raise ValueError(f"cif adapter: `threshold` must be > 0, got {threshold}")
        self.threshold = threshold
        self.tail_threshold = tail_threshold
        self.quantity_weight = quantity_weight
        self.weight_predictor = WeightPredictor(in_dim, predictor_dim or in_dim)

    def compress(self, hidden: Tensor, lens: Tensor, targets: AdapterTargets | None = None) -> Compressed:
        """Args: hidden (B, T, C) zero past lens, lens (B,), targets (training).
        Returns: fired (B, K, C), out_lens (B,), the quantity loss (with targets), ``alpha_sum`` (B,)."""
        alphas = self.weight_predictor(hidden, lens)
        alpha_sums = alphas.sum(dim=1)
        aux_loss = None
        if targets is not None:
            token_counts = targets.lens.to(alphas) * self.threshold
            aux_loss = self.quantity_weight * (alpha_sums - token_counts).abs().mean()
            if self.training:
                scale = token_counts / alpha_sums.clamp(min=1e-6)
                alphas = alphas * scale.unsqueeze(1)
        fired, out_lens = cif_integrate(hidden, alphas, self.threshold, self.tail_threshold)
        return Compressed(fired.to(hidden.dtype), out_lens, aux_loss, {"alpha_sum": alpha_sums.detach()})

    def planned_compress(self, hidden: Tensor, lens: Tensor, out_len: int) -> Compressed:
        """:meth:`compress` for a plan: the weight predictor's products, and K frames that depend
        on α and the frames as the fired ones do (integration is a sparse product, no dense matrix
        product), with the quantity loss on α."""
        alphas = self.weight_predictor(hidden, lens)
        alpha_sums = alphas.sum(dim=1)
        fired = (hidden.float().mean(dim=1, keepdim=True) * alpha_sums.view(-1, 1, 1)).expand(-1, out_len, -1)
        out_lens = torch.full((hidden.shape[0],), out_len, dtype=torch.long, device=hidden.device)
        return Compressed(fired.to(hidden.dtype), out_lens, self.quantity_weight * alpha_sums.mean())
