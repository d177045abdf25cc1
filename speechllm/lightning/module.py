"""The LightningModule: training logic only (steps, optimizer, schedule, logging).

The model itself is the plain :class:`~speechllm.model.SpeechLLM`; everything else is a callback
or the data module.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L
import torch
from torch.nn.modules.module import _IncompatibleKeys
from torch.optim.lr_scheduler import LambdaLR

from speechllm.config import OptimConfig
from speechllm.data.batch import Batch
from speechllm.deprecations import upgrade_state_dict
from speechllm.model import SpeechLLM

log = logging.getLogger(__name__)

# Name parts that distributed wrappers insert into parameter names (FSDP, activation checkpointing,
# torch.compile); removed before names are compared with the model's own.
WRAPPER_NAME_PARTS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


class NonFiniteTrainingError(RuntimeError):
    """More than ``trainer.max_bad_steps`` optimizer steps in a row had a NaN/inf loss or gradient."""


class SpeechLLMModule(L.LightningModule):
    """Trains the adapter (and LoRA, when on) of a :class:`SpeechLLM`.

    ``train/loss`` is logged once per optimizer step: the mean of the micro-batch losses of the
    step (gradient accumulation) over all ranks, i.e. the loss whose gradient the step applies.
    So a 2-process DDP run and a 1-process run accumulating the same two batches log the same
    numbers.

    An optimizer step whose loss (any micro-batch, any rank) or gradient is NaN/inf is skipped: the
    gradients are dropped before the optimizer sees them, so weights and AdamW moments stay as they
    were (the lr schedule still advances). Skipped steps are counted (``train/skipped_steps``) and
    warned about; more than ``max_bad_steps`` in a row raise :class:`NonFiniteTrainingError`. A batch
    whose every clip was unusable arrives as ``None``: it is skipped and counted
    (``train/skipped_batches``).

    Args:
        model: the SpeechLLM; only its parameters with ``requires_grad`` are optimized.
        optim: :class:`~speechllm.config.OptimConfig` (AdamW lr 1e-4, cosine, 3% warm-up).
        max_bad_steps: non-finite steps tolerated in a row (``trainer.max_bad_steps``; 0: none).
    """

    def __init__(
        self, model: SpeechLLM, optim: OptimConfig | dict[str, Any] | None = None, max_bad_steps: int = 10
    ) -> None:
        super().__init__()
        if max_bad_steps < 0:
            raise ValueError(f"trainer.max_bad_steps must be ≥ 0, got {max_bad_steps}")
        self.model = model
        self.optim = OptimConfig(**optim) if isinstance(optim, dict) else (optim or OptimConfig())
        self.max_bad_steps = max_bad_steps
        self.skipped_steps = 0  # non-finite optimizer steps skipped by this process
        self.skipped_batches = 0  # batches of only unusable clips, seen by this process
        self._bad_in_a_row = 0
        # Frozen weights are absent from checkpoints; on_load_checkpoint checks the trained ones.
        self.strict_loading = False
        self._step_losses: dict[str, list[torch.Tensor]] = {}

    def configure_model(self) -> None:
        # Trained parameters stay fp32 whatever the frozen parts' dtype (precision bf16-true casts
        # the frozen encoder/LLM to bf16; peft may create LoRA in the base layer's dtype). The
        # optimizer is built after this hook, so its states are fp32 too.
        for param in self.model.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()
        # trainer.strategy=fsdp2 shards here (Lightning's ModelParallelStrategy asks for it in this
        # hook), after the cast: FSDP2 shards the parameters as they are, and the optimizer built next
        # holds the trained shards.
        shard = getattr(self._trainer.strategy, "shard_model", None) if self._trainer is not None else None
        if shard is not None:
            shard(self.model)

    def training_step(self, batch: Batch | None, batch_idx: int) -> dict[str, Any] | None:
        if batch is None:  # Lightning skips None batches before this; see on_train_batch_end
            return None
        out = self.model(batch)
        for name, value in (("loss", out.loss), ("lm_loss", out.lm_loss), ("aux_loss", out.aux_loss)):
            if value is not None:
                self._step_losses.setdefault(name, []).append(value.detach().float())
        return {"loss": out.loss, **_step_outputs(out)}

    def on_train_batch_end(self, outputs: Any, batch: Batch | None, batch_idx: int) -> None:
        if batch is None:  # every cut of this batch was unusable (listed in data.skip_report)
            self.skipped_batches += 1
            log.warning("skipped a batch of only unusable clips (%d so far)", self.skipped_batches)
            self.log("train/skipped_batches", float(self.skipped_batches), batch_size=1)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        losses = self._step_losses.get("loss", [])
        for name, values in self._step_losses.items():
            self.log(
                f"train/{name}",
                torch.stack(values).mean(),
                prog_bar=name == "loss",
                sync_dist=True,
                batch_size=1,
            )
        self._step_losses = {}
        self.log("train/lr", optimizer.param_groups[0]["lr"], batch_size=1)
        self._skip_if_non_finite(optimizer, losses)
        self.log("train/skipped_steps", float(self.skipped_steps), batch_size=1)

    def _skip_if_non_finite(self, optimizer: torch.optim.Optimizer, losses: list[torch.Tensor]) -> None:
        """Drop this step's gradients if a loss or gradient is NaN/inf (on any rank); count it.

        Runs after backward (and fp16 unscaling), before clipping and ``optimizer.step``; a
        parameter whose ``grad`` is ``None`` is left untouched by AdamW, weight decay included.
        """
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        finite = all(bool(torch.isfinite(loss).all()) for loss in losses)
        if finite and params:
            # One norm per tensor: NaN/inf in any element makes its norm non-finite.
            norms = torch.stack([torch.linalg.vector_norm(p.grad.detach().float()) for p in params])
            finite = bool(torch.isfinite(norms).all())
        # Every rank must take the same decision (DDP gradients are already averaged; losses are not).
        bad = self.trainer.strategy.reduce_boolean_decision(not finite, all=False)
        if not bad:
            self._bad_in_a_row = 0
            return
        for p in params:
            p.grad = None
        self.skipped_steps += 1
        self._bad_in_a_row += 1
        log.warning(
            "step %d: non-finite loss or gradient, optimizer step skipped (%d skipped, %d in a row)",
            self.trainer.global_step,
            self.skipped_steps,
            self._bad_in_a_row,
        )
        if self._bad_in_a_row > self.max_bad_steps:
            raise NonFiniteTrainingError(
                f"{self._bad_in_a_row} optimizer steps in a row (up to step {self.trainer.global_step}) "
                f"had a NaN/inf loss or gradient, more than trainer.max_bad_steps={self.max_bad_steps}; "
                "training stopped. Lower optim.lr, use trainer.precision=32 or bf16-mixed instead of "
                "16-mixed, check the data (data.skip_report), then resume from the last checkpoint "
                "(--resume last), which holds the last finite weights."
            )

    def validation_step(self, batch: Batch | None, batch_idx: int) -> dict[str, Any] | None:
        return self._evaluation_step(batch, "val")

    def test_step(self, batch: Batch | None, batch_idx: int) -> dict[str, Any] | None:
        return self._evaluation_step(batch, "test")

    def _evaluation_step(self, batch: Batch | None, stage: str) -> dict[str, Any] | None:
        if batch is None:
            return None
        out = self.model(batch)
        self.log(f"{stage}/loss", out.loss, prog_bar=True, sync_dist=True, batch_size=len(batch.cut_ids))
        return {"loss": out.loss.detach(), **_step_outputs(out)}

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no trainable parameters (adapter frozen and LoRA off?)")
        optimizer = torch.optim.AdamW(
            self._param_groups(params),
            lr=self.optim.lr,
            betas=tuple(self.optim.betas),
            weight_decay=self.optim.weight_decay,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = lr_lambda(total, self.optim.warmup_ratio, self.optim.scheduler, self.optim.min_lr_ratio)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": LambdaLR(optimizer, schedule), "interval": "step"},
        }

    def _param_groups(self, params: list[torch.nn.Parameter]) -> list[dict[str, Any]]:
        """One group at ``optim.lr``, or two when ``optim.adapter_lr`` sets the adapter's (and the
        pre-alignment head's) own; AdamW's decoupled weight decay scales with the lr, so 0 freezes them."""
        if self.optim.adapter_lr is None:
            return [{"params": params}]
        heads = [self.model.adapter] + ([self.model.prealign] if self.model.prealign is not None else [])
        own = {id(p) for module in heads for p in module.parameters()}
        groups = [
            {"params": [p for p in params if id(p) not in own]},
            {"params": [p for p in params if id(p) in own], "lr": self.optim.adapter_lr},
        ]
        return [group for group in groups if group["params"]]

    # -- checkpoints: trained parameters only ------------------------------------------------------
    def trainable_keys(self) -> set[str]:
        """State-dict keys (relative to this module) of the trained parameters."""
        return {"model." + clean_name(name) for name in self.model.trainable_state_dict()}

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # Lightning checkpoints keep only what training changes: frozen weights are rebuilt from
        # their own paths, so an 8B LLM is never copied into every checkpoint.
        full = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", "")
        keep = {prefix + key for key in self.trainable_keys()}
        return type(full)((k, v) for k, v in full.items() if clean_name(k) in keep)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Under FSDP the wrapper collects the state dict itself (bypassing state_dict above): filter
        # here too, so every strategy's checkpoint holds the trained parameters only.
        keep = self.trainable_keys()
        state = checkpoint.get("state_dict", {})
        checkpoint["state_dict"] = type(state)(
            (clean_name(k), v) for k, v in state.items() if clean_name(k) in keep
        )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "state_dict" not in checkpoint:  # FSDP has loaded (and removed) it already
            return
        upgrade_state_dict(checkpoint["state_dict"], prefix="model.")  # written before 0.2
        found, expected = {clean_name(k) for k in checkpoint["state_dict"]}, self.trainable_keys()
        if found != expected:
            raise KeyError(
                "checkpoint: trained parameters do not match this model "
                f"(missing: {sorted(expected - found)[:5]}, unexpected: {sorted(found - expected)[:5]}); "
                "was it written with another adapter or LoRA setting?"
            )

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True, assign: bool = False) -> Any:
        tensors = {clean_name(k).removeprefix("model."): v for k, v in state_dict.items()}
        self.model.load_trainable(tensors, "checkpoint")
        return _IncompatibleKeys([], [])


def clean_name(name: str) -> str:
    """A parameter name without the parts that FSDP / checkpoint / compile wrappers insert."""
    for part in WRAPPER_NAME_PARTS:
        name = name.replace(part, "")
    return name


def _step_outputs(out: Any) -> dict[str, Any]:
    """What callbacks read from a step: the adapter's stats and the target token count (detached)."""
    stats = {k: v.detach() for k, v in out.stats.items() if isinstance(v, torch.Tensor)}
    return {"stats": stats, "num_target_tokens": out.num_target_tokens}


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


def warmup_cosine(fraction: float, warmup: float, min_ratio: float) -> float:
    """Multiplier of the peak lr at ``fraction`` (0..1) of a budget (steps or time): linear warm-up
    over ``warmup`` (from 1%), then cosine decay to ``min_ratio``."""
    if fraction < warmup:
        return max(fraction / warmup, 0.01)
    progress = min(1.0, (fraction - warmup) / max(1e-9, 1.0 - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
