"""The adapter interface: encoder hidden states in, LLM input embeddings out."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from speechllm.adapters.modality import ModalityAdapter
from speechllm.masking import lengths_to_mask

__all__ = ["Adapter", "AdapterOutput", "AdapterTargets", "lengths_to_mask"]


@dataclass
class AdapterTargets:
    """The LLM-tokenized transcript, which CTC and CIF adapters need in training.

    Attributes:
        ids: (B, N) token ids, right-padded.
        lens: (B,) number of valid ids per row.
    """

    ids: Tensor
    lens: Tensor


@dataclass
class AdapterOutput:
    """What every adapter returns.

    Attributes:
        embeds: (B, T', D) embeddings in the LLM's input space; rows are zero past ``lens``.
        lens: (B,) number of valid output frames.
        aux_loss: already-weighted auxiliary loss (CTC, CIF quantity loss), or None.
        stats: at least ``in_lens`` and ``out_lens`` (B,), so monitors need no adapter-specific code.
    """

    embeds: Tensor
    lens: Tensor
    aux_loss: Tensor | None = None
    stats: dict[str, Tensor] = field(default_factory=dict)


class Adapter(nn.Module):
    """Base class of all adapters: a length adapter (subclass-specific) then the modality adapter.

    Subclasses implement :meth:`forward` as ``length stage → self.modality(x, lens)`` and keep the
    contract of :class:`AdapterOutput`. The modality adapter (transformer, 4 layers, 768 wide,
    12 heads by default, as in the paper; or an MLP) maps ``modality_in_dim`` to ``out_dim``.

    Args:
        in_dim: encoder hidden size C.
        out_dim: LLM embedding size D.
        modality: ``"transformer"`` or ``"mlp"``.
        modality_dim / modality_layers / modality_heads / dropout: modality adapter sizes.
        modality_in_dim: width the length stage hands to the modality adapter (default ``in_dim``).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        modality: str = "transformer",
        modality_dim: int = 768,
        modality_layers: int = 4,
        modality_heads: int = 12,
        dropout: float = 0.1,
        modality_in_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.modality = ModalityAdapter(
            modality_in_dim or in_dim,
            out_dim,
            kind=modality,
            width=modality_dim,
            layers=modality_layers,
            heads=modality_heads,
            dropout=dropout,
        )

    def forward(self, hidden: Tensor, lens: Tensor, targets: AdapterTargets | None = None) -> AdapterOutput:
        """Args: hidden (B, T, C), lens (B,), targets (optional). Returns :class:`AdapterOutput`."""
        raise NotImplementedError
