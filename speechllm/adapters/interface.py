"""The adapter interface: encoder hidden states in, LLM input embeddings out.

An adapter is a **length stage** (what turns T encoder frames into T' frames; one per adapter)
followed by the shared **modality adapter** (:class:`~speechllm.adapters.modality.ModalityAdapter`,
which maps to the LLM width). :meth:`Adapter.forward` does everything around the length stage:
zeroing padded frames before and after it, the modality adapter and the common ``stats``. A
subclass writes only :meth:`Adapter.compress`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from speechllm.adapters.modality import ModalityAdapter
from speechllm.masking import lengths_to_mask

__all__ = ["Adapter", "AdapterOutput", "AdapterTargets", "Compressed", "lengths_to_mask", "zero_padding"]


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
class Compressed:
    """What a length stage (:meth:`Adapter.compress`) hands to the modality adapter.

    Attributes:
        hidden: (B, T', C') frames, C' = the adapter's ``modality_in_dim``; what lies past ``lens``
            is ignored (zeroed by :meth:`Adapter.forward`).
        lens: (B,) long, valid frames per clip (≥ 1 for every clip with ≥ 1 input frame).
        aux_loss: the stage's already-weighted auxiliary loss (CTC, CIF quantity loss), or None.
        stats: extra per-clip statistics (B,), merged into :attr:`AdapterOutput.stats`.
    """

    hidden: Tensor
    lens: Tensor
    aux_loss: Tensor | None = None
    stats: dict[str, Tensor] = field(default_factory=dict)


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


def zero_padding(x: Tensor, lens: Tensor) -> Tensor:
    """(B, T, C) frames with every frame past ``lens`` (B,) set to zero, in ``x``'s dtype."""
    return x * lengths_to_mask(lens, x.shape[1]).unsqueeze(-1).to(x.dtype)


class Adapter(nn.Module):
    """Base class of all adapters: a length stage (:meth:`compress`) then the modality adapter.

    A subclass implements :meth:`compress`; :meth:`forward` zeroes padded input frames (so a
    length stage never sees what lies past a clip's end), calls it, zeroes its padded output
    frames, runs the modality adapter (transformer, 4 layers, 768 wide, 12 heads by default, as in
    the paper; or an MLP) from ``modality_in_dim`` to ``out_dim``, and fills ``stats`` with
    ``in_lens`` and ``out_lens`` plus the stage's own. (A subclass may still override
    :meth:`forward` whole, keeping the :class:`AdapterOutput` contract.)

    Args:
        in_dim: encoder hidden size C.
        out_dim: LLM embedding size D.
        modality: ``"transformer"`` or ``"mlp"``.
        modality_dim / modality_layers / modality_heads / dropout: modality adapter sizes.
        modality_in_dim: width C' the length stage hands to the modality adapter (default ``in_dim``).

    Class attributes (a subclass inherits them):
        prealign_objective: what ``prealign.objective: auto`` trains this adapter with (see
            :mod:`speechllm.prealign.head`): ``ctc`` (outputs may outnumber the transcript's
            tokens) or ``ce`` (one output per transcript token in training, as CIF).

        learned_length: True when the number of outputs reads the stage's trained outputs (CTC's
            labels, CIF's α), not only the input lengths; such a stage also implements
            :meth:`planned_compress`.
    """

    prealign_objective: str = "ctc"
    learned_length: bool = False

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

    def compress(
        self, hidden: Tensor, lens: Tensor, targets: AdapterTargets | None = None
    ) -> Compressed | tuple[Tensor, Tensor]:
        """The length stage: T encoder frames → T' frames for the modality adapter.

        Args:
            hidden: (B, T, C) encoder frames, zero past ``lens``.
            lens: (B,) valid frames per clip.
            targets: the LLM-tokenized transcript (training), or None.
        Returns:
            a :class:`Compressed`, or just ``(hidden (B, T', C'), lens (B,))`` when there is no
            auxiliary loss and no extra stat.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement compress()")

    def planned_compress(self, hidden: Tensor, lens: Tensor, out_len: int) -> Compressed:
        """The length stage as a plan counts it (:mod:`speechllm.planning.step`, on ``meta``): the
        same matrix products as :meth:`compress` in training, forward and backward, with ``out_len``
        outputs per clip in place of the number the trained outputs would decide. Only a stage
        with :attr:`learned_length` needs it.

        Args: hidden (B, T, C) zero past lens, lens (B,), out_len K.
        Returns: a :class:`Compressed` of (B, K, C') frames whose gradients reach the same weights.
        """
        raise NotImplementedError(f"{type(self).__name__} has no planned_compress()")

    def forward(self, hidden: Tensor, lens: Tensor, targets: AdapterTargets | None = None) -> AdapterOutput:
        """Args: hidden (B, T, C), lens (B,), targets (optional). Returns :class:`AdapterOutput`."""
        stage = self.compress(zero_padding(hidden, lens), lens, targets)
        if not isinstance(stage, Compressed):
            stage = Compressed(*stage)
        embeds = self.modality(zero_padding(stage.hidden, stage.lens), stage.lens)
        stats = {"in_lens": lens, "out_lens": stage.lens, **stage.stats}
        return AdapterOutput(embeds=embeds, lens=stage.lens, aux_loss=stage.aux_loss, stats=stats)
