""":class:`ListeningCheck`: the listening check during training, on the validation (and test) set.

Users of speech LLMs keep finding, hours into a run, that the model ignores its audio and writes
from the prompt alone. This callback asks the question at every validation: it decodes the first
``max_clips`` clips it sees, then again with each clip's audio replaced by another clip's and by
silence (:mod:`speechllm.evaluation.listening`), logs

- ``<stage>/listen_unchanged``: share of outputs unchanged with another clip's audio (1.0: deaf),
- ``<stage>/listen_wer_gap``: WER with another clip's audio minus WER with the right audio
  (large: the model uses what is said),
- ``<stage>/listen_flagged``: 1.0 when the verdict is "not listening" or "not following",

warns in plain words when the model is flagged, and adds ``listening_check_<task>`` to the run
directory ``<output_dir>/<stage>_step<global step>/run.json`` that the metric callbacks write
(``speechllm report`` prints it). Config: ``eval.listening_check: true`` (``eval.listening_clips``).

Distributed: rank 0 alone keeps and decodes its clips (the check is a sample, not a score), and
broadcasts the logged values so that every rank logs the same.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L

from speechllm.evaluation.decoding import decode_batch
from speechllm.evaluation.listening import ClipSample, listening_check
from speechllm.evaluation.scoring import run_names, write_run_dir
from speechllm.metrics.listening import listening_verdict
from speechllm.rundir import RunInfo

log = logging.getLogger(__name__)


class ListeningCheck(L.Callback):
    """Decode ``max_clips`` validation clips with their own audio, another clip's, and silence.

    Args:
        output_dir: where the run directories go (default ``<trainer.default_root_dir>/eval``, the
            metric callbacks' default).
        max_clips: clips kept per validation (at least 2).
        seed: seed of the audio swap (a derangement: no clip keeps its own audio).
        max_new_tokens, decoding: as the metric callbacks'.
        batch_size: clips per decoding call of the swapped and silent passes.
        on_validation, on_test: run at the end of validation / test epochs.
    """

    def __init__(
        self,
        output_dir: str | Path | None = None,
        max_clips: int = 32,
        seed: int = 0,
        max_new_tokens: int = 200,
        decoding: dict[str, Any] | None = None,
        batch_size: int = 8,
        on_validation: bool = True,
        on_test: bool = True,
    ) -> None:
        if max_clips < 2:
            raise ValueError(f"max_clips must be at least 2 (clips to swap audio between), got {max_clips}")
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.max_clips, self.seed, self.batch_size = max_clips, seed, batch_size
        self.max_new_tokens = max_new_tokens
        self.decoding = dict(decoding or {})
        self.stages = {stage for stage, on in (("val", on_validation), ("test", on_test)) if on}
        self._sample = ClipSample(max_clips)
        self.last_records: dict[str, dict[str, Any]] = {}  # task -> the last check's record

    def _start(self) -> None:
        self._sample = ClipSample(self.max_clips)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start()

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start()

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if "val" in self.stages and not trainer.sanity_checking:
            self._keep(trainer, pl_module, batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if "test" in self.stages:
            self._keep(trainer, pl_module, batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if "val" in self.stages and not trainer.sanity_checking:
            self._finish(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if "test" in self.stages:
            self._finish(trainer, pl_module, "test")

    def _keep(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any) -> None:
        if batch is None or not trainer.is_global_zero or len(self._sample.clips) >= self.max_clips:
            return
        model = getattr(pl_module, "model", pl_module)
        with trainer.precision_plugin.forward_context():
            decoded = decode_batch(model, batch, self.max_new_tokens, **self.decoding)
        self._sample.add(batch, decoded)

    def _finish(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        values: dict[str, float] = {}
        if trainer.is_global_zero:
            values = self._check(trainer, pl_module, stage)
        values = trainer.strategy.broadcast(values, src=0)
        for name, value in values.items():
            pl_module.log(f"{stage}/{name}", value, on_epoch=True, sync_dist=False)

    def _check(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> dict[str, float]:
        model = getattr(pl_module, "model", pl_module)
        records: dict[str, dict[str, Any]] = {}
        for task in sorted({clip.task for clip in self._sample.clips}):
            sample = ClipSample(
                self.max_clips, [c for c in self._sample.clips if c.task == task], self._sample.cached
            )
            with trainer.precision_plugin.forward_context():
                record = listening_check(
                    model,
                    sample,
                    pl_module.device,
                    self.batch_size,
                    self.seed,
                    max_new_tokens=self.max_new_tokens,
                    **self.decoding,
                )
            if record is None:
                log.warning("listening check (%s, %s): fewer than 2 clips, nothing to swap", stage, task)
                continue
            flagged, words = listening_verdict(record)
            (log.warning if flagged else log.info)("listening check (%s set, %s): %s", stage, task, words)
            records[task] = record
        self._sample = ClipSample(self.max_clips)
        self.last_records = records
        if not records:
            return {}
        config = getattr(model, "config", None)
        extra = {f"listening_check_{task}": record for task, record in records.items()}
        info = RunInfo(**run_names(config), tasks=sorted(records), extra=extra)
        root = self.output_dir or Path(trainer.default_root_dir) / "eval"
        write_run_dir(root / f"{stage}_step{trainer.global_step:06d}", info, [])
        # the logged values: the worst task's (the one a reader should look at)
        unchanged = max(float(r["unchanged_swapped"]) for r in records.values())
        gap = min(float(r["wer_swapped"]) - float(r["wer_true"]) for r in records.values())
        flagged = any(listening_verdict(r)[0] for r in records.values())
        return {"listen_unchanged": unchanged, "listen_wer_gap": gap, "listen_flagged": float(flagged)}
