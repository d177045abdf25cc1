"""The pre-alignment stage as a LightningModule: adapter + pre-alignment head, no LLM forward pass.

Same data module, trainer, strategies and atomic trainable-only checkpoints as the LLM stage
(:mod:`speechllm.training`), so it runs from audio or the encoder-output cache, under DDP, and
resumes from ``<output_dir>/prealign/checkpoints/last.ckpt``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from speechllm.adapters.interface import AdapterOutput, AdapterTargets
from speechllm.data.batch import Batch
from speechllm.data.datamodule import load_cuts
from speechllm.lightning.module import SpeechLLMModule, warmup_cosine
from speechllm.metrics.wer import sentence_errors
from speechllm.model import SpeechLLM

RMS_WINDOW = 20  # training steps whose output RMS sets the final output_scale


@contextmanager
def _lengths_from_targets(adapter: torch.nn.Module) -> Iterator[None]:
    """Give the transcript's token count as the output length in eval mode too (the CIF adapter
    scales its weights to it in training mode): the adapter module alone is switched to training
    mode, its submodules (dropout) stay in eval mode."""
    was_training = adapter.training
    adapter.training = True
    try:
        yield
    finally:
        adapter.training = was_training


class PreAlignModule(SpeechLLMModule):
    """Trains the adapter and the pre-alignment head of a :class:`SpeechLLM` against the LLM's embeddings.

    Only ``model.adapter`` and the head's ``blank`` / ``log_scale`` (and ``splits``, with
    ``model.prealign.upsample``) are trained; every other
    parameter (LoRA included) is frozen for the stage and given back its ``requires_grad`` at the
    end (:meth:`release`). Logs ``prealign/loss`` per step and, on the dev set, ``prealign/val_loss``
    and ``prealign/dev_wer``: the adapter decoded alone (CTC greedy, or argmax per vector for
    ``ce``) against the source transcript. At the end of training, with ``rescale``, the head's
    ``output_scale`` is set from the outputs' RMS over the last :data:`RMS_WINDOW` steps (summed
    over ranks, so every rank sets the same value).

    Args:
        model: a SpeechLLM built with ``model.prealign``.
        objective: ``ctc`` or ``ce``.
        lr / weight_decay / warmup_ratio: AdamW and its schedule (warm-up, then cosine to 5%).
        warmup_steps: the lr never exceeds a linear ramp over this many steps (0: off), however
            short the budget: Adam's first full-lr updates from random initialisation push a
            CTC-trained adapter onto the all-blank plateau, and a 5% warm-up of a few minutes is
            only a dozen steps.
        steps / minutes: the stage's length; with ``minutes`` the schedule runs over wall-clock time.
        rescale: set ``output_scale`` at the end.
    """

    def __init__(
        self,
        model: SpeechLLM,
        objective: str,
        *,
        lr: float = 2e-3,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.05,
        warmup_steps: int = 0,
        steps: int = 0,
        minutes: float | None = None,
        rescale: bool = True,
        max_bad_steps: int = 10,
    ) -> None:
        if model.prealign is None:
            raise ValueError("pre-alignment needs a model built with model.prealign")
        if model.prealign.upsample > 1 and objective != "ctc":
            # CE scores one adapter vector per token: the U split maps would stay untrained
            # rotations, and the readouts that read the split frames would read noise.
            raise ValueError(
                f"model.prealign.upsample: {model.prealign.upsample} needs prealign.objective ctc "
                f"(this run pre-aligns with {objective!r}); set model.prealign.upsample to 1"
            )
        super().__init__(model, {"lr": lr, "weight_decay": weight_decay}, max_bad_steps=max_bad_steps)
        self.objective = objective
        self.warmup_ratio = warmup_ratio
        if warmup_steps < 0:
            raise ValueError(f"prealign.warmup_steps must be >= 0, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        self.steps = steps
        self.seconds = minutes * 60.0 if minutes else None
        self.rescale = rescale
        self.dev_wer: float | None = None
        self._rms: deque[torch.Tensor] = deque(maxlen=RMS_WINDOW)
        self._dev: list[tuple[str, list[int]]] = []
        self._started = time.perf_counter()
        head = model.prealign
        # A trainable encoder (model.encoder.lora / unfreeze_top_layers) trains here too: fitting it
        # to the CTC target is the cheap part of adapting it, no LLM runs in this stage.
        encoder = [p for p in model.encoder.parameters() if p.requires_grad]
        splits = [] if head.splits is None else [head.splits]  # prealign.upsample (ctc only, above)
        trained = {
            id(p) for p in [*model.adapter.parameters(), *encoder, head.blank, head.log_scale, *splits]
        }
        self._restore = {name: p.requires_grad for name, p in model.named_parameters()}
        for param in model.parameters():
            param.requires_grad_(id(param) in trained)

    def release(self) -> None:
        """Give every parameter back the ``requires_grad`` it had before the stage."""
        for name, param in self.model.named_parameters():
            param.requires_grad_(self._restore.get(name, param.requires_grad))

    # -- steps --------------------------------------------------------------------------------------
    def _loss(self, batch: Batch) -> tuple[torch.Tensor, AdapterOutput]:
        targets = AdapterTargets(batch.transcript_ids, batch.transcript_lens)
        out = self.model.adapter_outputs(batch, targets)
        table = self.model.llm.input_embeddings()
        loss = self.model.prealign.loss(self.objective, out, targets, table)
        if out.aux_loss is not None:  # the adapter's own (CTC head, CIF quantity loss)
            loss = loss + out.aux_loss
        return loss, out

    def training_step(self, batch: Batch | None, batch_idx: int) -> dict[str, Any] | None:
        if batch is None:
            return None
        loss, out = self._loss(batch)
        self._step_losses.setdefault("loss", []).append(loss.detach().float())
        valid = torch.arange(out.embeds.shape[1], device=out.lens.device)[None] < out.lens[:, None]
        vectors = out.embeds.detach().float()[valid]
        self._rms.append(torch.stack([vectors.pow(2).sum(), vectors.new_tensor(float(vectors.numel()))]))
        return {"loss": loss, **_outputs(out, batch)}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        losses = self._step_losses.pop("loss", [])
        if losses:
            self.log("prealign/loss", torch.stack(losses).mean(), prog_bar=True, sync_dist=True, batch_size=1)
        self.log("prealign/lr", optimizer.param_groups[0]["lr"], batch_size=1)
        self.log("prealign/scale", self.model.prealign.log_scale.exp().detach(), batch_size=1)
        self._skip_if_non_finite(optimizer, losses)

    def validation_step(self, batch: Batch | None, batch_idx: int) -> dict[str, Any] | None:
        if batch is None:
            return None
        if self.objective == "ce":
            # The loss is teacher-forced as in training (one output per transcript token); the dev
            # WER decodes the outputs at the length the adapter chooses itself, as in generation.
            with _lengths_from_targets(self.model.adapter):
                loss, _ = self._loss(batch)
            out = self.model.adapter_outputs(batch)
        else:
            loss, out = self._loss(batch)
        self.log("prealign/val_loss", loss, sync_dist=True, batch_size=len(batch.cut_ids))
        table = self.model.llm.input_embeddings()
        decoded = self.model.prealign.greedy_ids(self.objective, out, table)
        self._dev.extend(zip(batch.source_text, decoded))
        return {"loss": loss.detach(), **_outputs(out, batch)}

    def on_validation_epoch_end(self) -> None:
        if not self._dev:
            return
        tokenizer = self.model.llm.tokenizer
        refs = [ref for ref, _ in self._dev]
        hyps = [tokenizer.decode(ids, skip_special_tokens=True).strip() for _, ids in self._dev]
        self._dev = []
        errors = sentence_errors(refs, hyps)
        counts = torch.tensor([float(sum(e.edits for e in errors)), float(sum(e.ref_words for e in errors))])
        totals = self.trainer.strategy.reduce(counts.to(self.device), reduce_op="sum")
        if float(totals[1]) > 0:  # corpus WER in percent over every rank's dev clips
            self.dev_wer = 100.0 * float(totals[0] / totals[1])
            self.log("prealign/dev_wer", self.dev_wer, batch_size=1)

    def on_train_end(self) -> None:
        if self.rescale and self._rms:
            totals = self.trainer.strategy.reduce(torch.stack(list(self._rms)).sum(0), reduce_op="sum")
            rms = float((totals[0] / totals[1].clamp(min=1)).sqrt())
            self.output_rms = rms
            self.model.prealign.match_scale(rms, self.model.llm.input_embeddings())

    # -- optimizer ----------------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.optim.lr, weight_decay=self.optim.weight_decay)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": LambdaLR(optimizer, self._factor), "interval": "step"},
        }

    def on_train_start(self) -> None:
        self._started = time.perf_counter()

    def _factor(self, step: int) -> float:
        """Warm-up then cosine to 5%, over steps, or over wall-clock time when ``minutes`` is set."""
        fractions = [step / self.steps] if self.steps > 0 else []
        if self.seconds:
            fractions.append((time.perf_counter() - self._started) / self.seconds)
        return lr_factor(
            step,
            max(fractions, default=0.0),
            warmup_ratio=self.warmup_ratio,
            warmup_steps=self.warmup_steps,
            steps=self.steps,
        )


def lr_factor(step: int, fraction: float, *, warmup_ratio: float, warmup_steps: int, steps: int = 0) -> float:
    """The stage's multiplier of the peak lr at ``step``, ``fraction`` (0..1) through its budget.

    Linear warm-up over ``warmup_ratio`` of the budget then cosine to 5%, never above a linear
    ramp over ``warmup_steps`` (from 1%; at most half of a ``steps`` budget, so a short
    step-budgeted stage still reaches its peak).
    """
    factor = warmup_cosine(fraction, warmup_ratio, min_ratio=0.05)
    ramp = min(warmup_steps, steps / 2) if steps > 0 else warmup_steps
    if ramp > 0:
        factor = min(factor, max(step / ramp, 0.01))
    return factor


def _outputs(out: AdapterOutput, batch: Batch) -> dict[str, Any]:
    """What the monitors read from a step (as the LLM stage's): adapter stats, transcript tokens."""
    stats = {k: v.detach() for k, v in out.stats.items() if isinstance(v, torch.Tensor)}
    return {"stats": stats, "num_target_tokens": int(batch.transcript_lens.sum())}


def transcript_vocabulary(manifests: Any, prompts: Any, trust_sources: bool = False) -> torch.Tensor:
    """The LLM token ids that occur in the training manifests' transcripts, sorted: (K,) long."""
    ids: set[int] = set()
    for manifest in manifests:
        # train=False: read once through (a training Shar stream repeats without end).
        for cut in load_cuts(manifest, train=False, trust_sources=trust_sources):
            for sup in cut.supervisions:
                ids.update(prompts.text_ids(sup.text or ""))
    if not ids:
        raise ValueError("prealign: the training manifests hold no transcript text to align to")
    return torch.tensor(sorted(ids), dtype=torch.long)


def restrict_to_transcripts(cfg: Any, model: SpeechLLM) -> torch.Tensor | None:
    """Restrict every head that asks for it to the training transcripts' token ids, in one pass over
    the manifests: the pre-alignment head (``model.prealign.vocab: transcripts``) and the adapter's
    own (``model.adapter.vocab: transcripts``, the CTC adapter). Returns the ids, or None when no
    head asked."""
    heads = [
        head for head in (model.prealign, model.adapter) if getattr(head, "vocab", None) == "transcripts"
    ]
    if not heads:
        return None
    vocab = transcript_vocabulary(cfg.data.train, model.llm.prompts, cfg.data.trust_manifest_sources)
    for head in heads:
        head.set_vocab(vocab)
    return vocab
