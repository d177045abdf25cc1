"""The built-in adapters at a tiny size, and probes of what an adapter does with padding and
targets (shared by tests/adapters/test_adapters.py and tests/adapters/test_adapter_contract.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from speechllm.adapters import AdapterTargets
from speechllm.registry import ADAPTERS

NAMES = ["base", "conv", "cif", "ctc", "wlq_former"]
IN_DIM, OUT_DIM, VOCAB = 8, 12, 13
TINY = {"modality_dim": 16, "modality_layers": 1, "modality_heads": 2, "dropout": 0.0}
TINY_EXTRA = {
    "cif": {"predictor_dim": 8},
    "ctc": {},
    "wlq_former": {"qformer_dim": 16, "qformer_heads": 2, "qformer_layers": 2},
}
# The context the model passes (speechllm/adapters/build_context.py): only the keys an adapter takes.
CONTEXT = {"ctc": {"vocab_size": VOCAB, "blank_id": 0}, "wlq_former": {"encoder_frame_rate_hz": 50.0}}


def build(name: str, seed: int = 0, **options):
    torch.manual_seed(seed)
    cfg = {"name": name, **TINY, **TINY_EXTRA.get(name, {}), **options}
    context = {k: v for k, v in CONTEXT.get(name, {}).items() if k not in cfg}
    return ADAPTERS.build(cfg, in_dim=IN_DIM, out_dim=OUT_DIM, **context)


def random_targets(batch: int, generator: torch.Generator, max_tokens: int = 9) -> AdapterTargets:
    lens = torch.randint(1, max_tokens + 1, (batch,), generator=generator)
    ids = torch.randint(1, VOCAB, (batch, int(lens.max())), generator=generator)
    ids[torch.arange(ids.shape[1])[None, :] >= lens[:, None]] = -100  # a padding value ctc must ignore
    return AdapterTargets(ids=ids, lens=lens)


def garbage_padded(hidden: torch.Tensor, lens: torch.Tensor, extra: int = 0) -> torch.Tensor:
    """Append ``extra`` frames and fill every padded frame with large noise: masking must hide it."""
    hidden = F.pad(hidden, (0, 0, 0, extra))
    pad = torch.arange(hidden.shape[1])[None, :] >= lens[:, None]
    return torch.where(pad.unsqueeze(-1), 50 * torch.randn_like(hidden), hidden)


def modality_input(adapter, hidden, lens, targets=None):
    """Run the adapter and capture what its length stage hands to the modality adapter."""
    seen = {}
    handle = adapter.modality.register_forward_pre_hook(
        lambda module, args: seen.update(x=args[0], lens=args[1])
    )
    try:
        output = adapter(hidden, lens, targets)
    finally:
        handle.remove()
    return seen["x"], seen["lens"], output
