"""The LightningModule: training logic only (steps, optimizer, schedule, logging).

The model itself is the plain :class:`~speechllm.model.SpeechLLM`; everything else is a callback
or the data module.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch.nn.modules.module import _IncompatibleKeys
from torch.optim.lr_scheduler import LambdaLR

from speechllm.config import OptimConfig
from speechllm.model import SpeechLLM


class SpeechLLMModule(L.LightningModule):
    """Trains the adapter (and LoRA, when on) of a :class:`SpeechLLM`.

    Args:
        model: the SpeechLLM; only its parameters with ``requires_grad`` are optimized.
        optim: :class:`~speechllm.config.OptimConfig` (AdamW lr 1e-4, cosine, 3% warm-up).
    """

    def __init__(self, model: SpeechLLM, optim: OptimConfig | dict[str, Any] | None = None) -> None:
        super().__init__()
        self.model = model
        self.optim = OptimConfig(**optim) if isinstance(optim, dict) else (optim or OptimConfig())

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        out = self.model(batch)
        size = len(batch["cut_ids"])
        self.log("train/loss", out.loss, prog_bar=True, batch_size=size)
        self.log("train/lm_loss", out.lm_loss, batch_size=size)
        if out.aux_loss is not None:
            self.log("train/aux_loss", out.aux_loss, batch_size=size)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=size)
        return out.loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        out = self.model(batch)
        self.log("val/loss", out.loss, prog_bar=True, sync_dist=True, batch_size=len(batch["cut_ids"]))
        return out.loss

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters (adapter frozen and LoRA off?)")
        optimizer = torch.optim.AdamW(
            params, lr=self.optim.lr, betas=tuple(self.optim.betas), weight_decay=self.optim.weight_decay
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = lr_lambda(total, self.optim.warmup_ratio, self.optim.scheduler, self.optim.min_lr_ratio)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": LambdaLR(optimizer, schedule), "interval": "step"},
        }

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # Lightning checkpoints keep only what training changes: frozen weights are rebuilt from
        # their own paths, so an 8B LLM is never copied into every checkpoint.
        full = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", "")
        keep = {prefix + "model." + name for name in self.model.trainable_state_dict()}
        return type(full)((k, v) for k, v in full.items() if k in keep)

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True, assign: bool = False) -> Any:
        self.model.load_trainable({k.removeprefix("model."): v for k, v in state_dict.items()}, "checkpoint")
        return _IncompatibleKeys([], [])


def lr_lambda(total_steps: int, warmup_ratio: float, scheduler: str, min_ratio: float = 0.0):
    """Multiplier of the base lr at each step: linear warm-up, then cosine decay (or constant)."""
    if scheduler not in ("cosine", "constant"):
        raise ValueError(f"optim.scheduler: unknown {scheduler!r}; valid: cosine, constant")
    warmup = int(round(warmup_ratio * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if scheduler == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
