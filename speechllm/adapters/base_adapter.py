"""The paper's Base adapter: no length adapter, only the modality adapter (1:1)."""

from __future__ import annotations

from torch import Tensor

from speechllm.adapters.interface import Adapter, AdapterTargets
from speechllm.registry import register_adapter


@register_adapter("base")
class BaseAdapter(Adapter):
    """Encoder frames → modality adapter → LLM width, one embedding per encoder frame.

    Shapes: hidden (B, T, C) → embeds (B, T, D); lens unchanged.
    """

    def compress(
        self, hidden: Tensor, lens: Tensor, targets: AdapterTargets | None = None
    ) -> tuple[Tensor, Tensor]:
        """The identity: (B, T, C), (B,) → the same."""
        return hidden, lens
