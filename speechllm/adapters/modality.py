"""The modality adapter every length adapter ends with: transformer or MLP, then a projection."""

from __future__ import annotations

from torch import Tensor, nn

from speechllm.masking import lengths_to_mask

MODALITY_KINDS = ("transformer", "mlp")


class ModalityAdapter(nn.Module):
    """``Linear(in_dim→width) → blocks → Linear(width→out_dim)``; padded frames come out zero.

    Args:
        in_dim: input width.
        out_dim: LLM embedding width.
        kind: ``"transformer"`` (pre-norm encoder layers, GELU, masked self-attention) or ``"mlp"``.
        width / layers / heads / dropout: sizes (paper: 768 / 4 / 12).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        kind: str = "transformer",
        width: int = 768,
        layers: int = 4,
        heads: int = 12,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if kind not in MODALITY_KINDS:
            raise ValueError(f"unknown modality adapter {kind!r}; valid: {', '.join(MODALITY_KINDS)}")
        self.kind = kind
        self.in_proj = nn.Linear(in_dim, width)
        if kind == "transformer":
            layer = nn.TransformerEncoderLayer(
                width, heads, 4 * width, dropout, activation="gelu", batch_first=True, norm_first=True
            )
            self.blocks: nn.Module = nn.TransformerEncoder(
                layer, layers, norm=nn.LayerNorm(width), enable_nested_tensor=False
            )
        else:
            mlp: list[nn.Module] = []
            for _ in range(layers):
                mlp += [nn.GELU(), nn.Dropout(dropout), nn.Linear(width, width)]
            self.blocks = nn.Sequential(*mlp, nn.LayerNorm(width))
        self.out_proj = nn.Linear(width, out_dim)

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        """Args: x (B, T, in_dim), lens (B,). Returns (B, T, out_dim), zero past ``lens``."""
        valid = lengths_to_mask(lens, x.shape[1])
        h = self.in_proj(x)
        if self.kind == "transformer":
            h = self.blocks(h, src_key_padding_mask=~valid)
        else:
            h = self.blocks(h)
        return self.out_proj(h) * valid.unsqueeze(-1).to(h.dtype)
