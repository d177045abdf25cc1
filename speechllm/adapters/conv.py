"""The paper's Conv adapter: two strided 1-D convolutions (4:1), then the modality adapter."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from speechllm.adapters.interface import Adapter, AdapterTargets
from speechllm.masking import lengths_to_mask
from speechllm.registry import register_adapter


def conv_out_lens(lens: Tensor, kernel_size: int = 3, stride: int = 2, padding: int = 1) -> Tensor:
    """Exact Conv1d output length ``floor((L + 2 p - k) / s) + 1`` for each clip, (B,) → (B,)."""
    return (lens + 2 * padding - kernel_size).div(stride, rounding_mode="floor") + 1


@register_adapter("conv")
class ConvAdapter(Adapter):
    """``Conv1d(k3, s2, p1) → GELU → Conv1d(k3, s2, p1)`` → modality adapter (4:1 in time).

    Padded frames are zeroed before the first convolution and after each one (the bias would
    otherwise leak into them; :meth:`Adapter.forward` zeroes the stage's input and output), so the
    last valid output of a clip sees exactly the zeros that Conv1d's own padding would give it:
    appending padding to a clip does not change its outputs.
    GELU sits between the two convolutions only; the modality adapter's input projection follows.

    Args:
        in_dim: encoder hidden size C.
        out_dim: LLM embedding size D.
        conv_dim: channels of both convolutions (default ``in_dim``).
        **modality_options: ``modality``, ``modality_dim``, ``modality_layers``, ``modality_heads``,
            ``dropout`` of the shared modality adapter.

    Shapes: hidden (B, T, C) → embeds (B, T'', D) with T' = floor((T - 1) / 2) + 1 applied twice.
    """

    kernel_size = 3
    stride = 2
    padding = 1

    def __init__(
        self, in_dim: int, out_dim: int, *, conv_dim: int | None = None, **modality_options: Any
    ) -> None:
        conv_dim = conv_dim or in_dim
        super().__init__(in_dim, out_dim, modality_in_dim=conv_dim, **modality_options)
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, conv_dim, self.kernel_size, self.stride, self.padding)
            for channels in (in_dim, conv_dim)
        )
        self.activation = nn.GELU()

    def compress(
        self, hidden: Tensor, lens: Tensor, targets: AdapterTargets | None = None
    ) -> tuple[Tensor, Tensor]:
        """Args: hidden (B, T, C) zero past lens, lens (B,), targets (unused).
        Returns: (B, T'', conv_dim) frames, out_lens (B,)."""
        x = hidden.transpose(1, 2)  # (B, C, T): Conv1d layout
        out_lens = lens
        for index, conv in enumerate(self.convs):
            if index > 0:  # the bias filled the padded frames: zero them before the next layer reads them
                x = self.activation(x * lengths_to_mask(out_lens, x.shape[-1]).unsqueeze(1).to(x.dtype))
            x = conv(x)
            out_lens = conv_out_lens(out_lens, self.kernel_size, self.stride, self.padding)
        # A clip of any length ≥ 1 keeps ≥ 1 frame; trim the batch to its longest clip.
        return x.transpose(1, 2)[:, : int(out_lens.max())], out_lens
