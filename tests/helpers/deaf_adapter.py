"""A model that cannot hear, built honestly: a real adapter subclass whose output ignores the audio."""

from __future__ import annotations

import torch

from speechllm.adapters.base_adapter import BaseAdapter
from speechllm.adapters.interface import AdapterOutput


class DeafAdapter(BaseAdapter):
    """The Base adapter, but the LLM gets one zero vector per clip whatever was said: what a
    training that collapsed onto the prompt ends up as. Register it (``register_adapter("deaf")``)
    and select it with ``model.adapter.name=deaf``."""

    def forward(self, hidden, lens, targets=None) -> AdapterOutput:
        out = super().forward(hidden, lens, targets)
        one = torch.ones_like(out.lens)
        return AdapterOutput(
            torch.zeros_like(out.embeds[:, :1]), one, out.aux_loss, {**out.stats, "out_lens": one}
        )
