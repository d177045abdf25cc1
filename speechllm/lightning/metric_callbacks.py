"""Lightning callbacks that decode the validation / test set and log WER, BLEU, chrF and COMET.

:class:`ASRMetrics` and :class:`STMetrics` decode (greedy, the fixed evaluation instruction) the
rows of their task in every validation or test batch, right after the module's own step, then at
the end of the epoch score them per ASR language / ST direction, log the scores through the
module's logger and write a run directory (the ``speechllm evaluate`` format, see
:mod:`speechllm.rundir`) per validation run:
``<output_dir>/<stage>_step<global step>/`` with ``run.json``, ``hyps_asr_<lang>.tsv``,
``bleu_st_<pair>.tsv`` (and ``hyps_st_<pair>.tsv`` with COMET) and ``metrics.json``. Both
callbacks may write into the same directory.

Logged names (``stage`` is ``val`` or ``test``): ``<stage>/wer_<lang>`` (corpus WER, percent),
``<stage>/mean_sentence_wer_<lang>``, ``<stage>/bleu_<pair>``, ``<stage>/chrf_<pair>``,
``<stage>/comet_<pair>`` (× 100, with a COMET model), and for each an ``_avg`` over the languages
or directions (the paper's average of per-language scores).

Distributed training: every rank decodes its own shard (the lhotse sampler shards by rank). At
epoch end the decoded sentences are gathered to every rank (``all_gather_object``), **rank 0
alone** scores them (COMET is loaded on rank 0 only) and writes the files, and the scores are
broadcast so that every rank logs the same values; a checkpoint callback monitoring
``val/wer_avg`` sees it on every rank. Ranks wait for rank 0 while it scores.

Decoding runs in the trainer's precision context (bf16 autocast under ``bf16-mixed``). The
sanity-check validation before training is not decoded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.distributed as dist

from speechllm.evaluation.decoding import DecodedSentence, decode_batch, group_decoded, warn_capped
from speechllm.evaluation.scoring import GroupScores, run_names, score_groups, write_run_dir
from speechllm.metrics.normalizers import PAPER, check_normalizer
from speechllm.rundir import RunInfo
from speechllm.search import DecodingOptions

log = logging.getLogger(__name__)


class _GenerationMetrics(L.Callback):
    """Decode one task's rows of each val/test batch; score, log and write at epoch end."""

    task: str = ""

    def __init__(
        self,
        output_dir: str | Path | None = None,
        max_new_tokens: int = 200,
        on_validation: bool = True,
        on_test: bool = True,
        decoding: dict[str, Any] | None = None,
        normalizer: str = PAPER,
    ) -> None:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}")
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.max_new_tokens = max_new_tokens
        self.decoding = dict(decoding or {})  # beams, repetition guard (SpeechLLM.generate)
        self.normalizer = check_normalizer(normalizer)
        self.stages = {stage for stage, on in (("val", on_validation), ("test", on_test)) if on}
        self._decoded: list[DecodedSentence] = []
        self.last_metrics: dict[str, float] = {}

    # -- hooks ------------------------------------------------------------------------------------
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._decoded = []

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._decoded = []

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if "val" in self.stages and not trainer.sanity_checking:
            self._decode(trainer, pl_module, batch)

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if "test" in self.stages:
            self._decode(trainer, pl_module, batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if "val" in self.stages and not trainer.sanity_checking:
            self._finish(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if "test" in self.stages:
            self._finish(trainer, pl_module, "test")

    # -- work -------------------------------------------------------------------------------------
    def _decode(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any) -> None:
        if batch is None or self.task not in batch.task:
            return
        model = _speech_llm(pl_module)
        with trainer.precision_plugin.forward_context():
            self._decoded += decode_batch(model, batch, self.max_new_tokens, task=self.task, **self.decoding)

    def _finish(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        decoded = _gather(self._decoded)
        self._decoded = []
        metrics: dict[str, float] = {}
        if trainer.is_global_zero and decoded:
            metrics = self._score_and_write(trainer, pl_module, stage, decoded)
        elif trainer.is_global_zero:
            log.warning(
                "%s: no %s sentences in the %s set: nothing to score", type(self).__name__, self.task, stage
            )
        metrics = trainer.strategy.broadcast(metrics, src=0)
        self.last_metrics = metrics
        for name, value in metrics.items():
            pl_module.log(f"{stage}/{name}", value, on_epoch=True, sync_dist=False)

    def _score_and_write(
        self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str, decoded: list[DecodedSentence]
    ) -> dict[str, float]:
        groups = group_decoded(decoded, where=f"{stage} set")
        scored = score_groups(groups, self._comet(pl_module), self.normalizer)
        config = getattr(_speech_llm(pl_module), "config", None)
        settings = {
            "stage": stage,
            "global_step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "max_new_tokens": self.max_new_tokens,
            # every setting, the defaults too (the duration limit applies unless turned off)
            "decoding": {**DecodingOptions(self.max_new_tokens).as_dict(), **self.decoding},
            "capped_hypotheses": warn_capped(decoded, f"{stage} set"),
            "normalizer": self.normalizer,
            "model_config": config,
        }
        info = RunInfo(**run_names(config), tasks=[self.task], extra=settings)
        root = self.output_dir or Path(trainer.default_root_dir) / "eval"
        write_run_dir(root / f"{stage}_step{trainer.global_step:06d}", info, scored)
        return _log_values(scored)

    def _comet(self, pl_module: L.LightningModule) -> Any:
        return None


class ASRMetrics(_GenerationMetrics):
    """WER per language (``<stage>/wer_<lang>``, ``<stage>/wer_avg``) of the ASR rows.

    Args:
        output_dir: where run directories go (default ``<trainer.default_root_dir>/eval``).
        max_new_tokens: greedy decoding limit (the paper: 200).
        on_validation, on_test: decode at the end of validation / test epochs.
        normalizer: also score WER under this normalizer (``whisper_english``, ``whisper_basic``;
            logged as ``<stage>/wer_<normalizer>_<lang>``), see :mod:`speechllm.metrics.normalizers`.
    """

    task = "asr"


class STMetrics(_GenerationMetrics):
    """BLEU and chrF (and COMET with ``comet_model``) per direction of the ST rows.

    Args:
        output_dir, max_new_tokens, on_validation, on_test: as :class:`ASRMetrics`.
        comet_model: a COMET hub name, model directory or ``model.ckpt``; loaded once, on rank 0,
            at the first scoring. None: no COMET.
        comet_batch_size: triples per COMET forward pass.
        comet_device: device of the COMET model (default: the module's device).
    """

    task = "st"

    def __init__(
        self,
        output_dir: str | Path | None = None,
        max_new_tokens: int = 200,
        on_validation: bool = True,
        on_test: bool = True,
        comet_model: str | Path | None = None,
        comet_batch_size: int = 16,
        comet_device: str | torch.device | None = None,
        decoding: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(output_dir, max_new_tokens, on_validation, on_test, decoding)
        self.comet_model = comet_model
        self.comet_batch_size = comet_batch_size
        self.comet_device = comet_device
        self._scorer: Any = None

    def _comet(self, pl_module: L.LightningModule) -> Any:
        if self.comet_model is None:
            return None
        if self._scorer is None:
            from speechllm.metrics.comet import CometScorer

            self._scorer = CometScorer(
                self.comet_model,
                batch_size=self.comet_batch_size,
                device=self.comet_device or pl_module.device,
            )
        return self._scorer


def _speech_llm(pl_module: L.LightningModule) -> Any:
    """The :class:`~speechllm.model.SpeechLLM` a module trains (its ``model``), or the module itself."""
    model = getattr(pl_module, "model", pl_module)
    if not hasattr(model, "generate"):
        raise TypeError(
            f"{type(pl_module).__name__} has no SpeechLLM: the metric callbacks need `module.model.generate`"
        )
    return model


def _gather(items: list[DecodedSentence]) -> list[DecodedSentence]:
    """Every rank's decoded sentences, on every rank (a no-op without a process group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(items)
    parts: list[list[DecodedSentence] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in (part or [])]


def _log_values(scored: list[GroupScores]) -> dict[str, float]:
    """Scores to log: ``asr_wer_en`` → ``wer_en``, ``st_comet_en-de`` → ``comet_en-de``, plus ``_avg``."""
    values: dict[str, float] = {}
    families: dict[str, list[float]] = {}
    for group in scored:
        label = group.records.label
        for key, value in group.metrics.items():
            if key.startswith("num_"):  # counts (sentences, capped hypotheses), not scores
                continue
            family = key.removeprefix(f"{group.records.task}_").removesuffix(f"_{label}")
            values[f"{family}_{label}"] = float(value)
            families.setdefault(family, []).append(float(value))
    for family, numbers in families.items():
        values[f"{family}_avg"] = sum(numbers) / len(numbers)
    return values
