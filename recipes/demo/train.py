"""Train one demo model within a wall-clock budget, recording loss and dev WER against time.

``speechllm train`` does the training; this driver only adds what the demo reports:

- a hard time limit: ``--minutes`` becomes ``trainer.max_time`` (Lightning's ``Timer``, checked
  after every step): the LLM stage stops then and the trained adapter is still exported to
  ``<output_dir>/model``. ``trainer.max_steps`` still stops it if reached first, so the demo's
  configs set it out of reach (100 000);
- a learning-rate schedule over wall-clock time (:class:`TimeCosineSchedule`): warm-up then cosine
  decay reaching its end when the time is up, so a slow (or shared) machine still finishes with
  a decayed learning rate instead of being cut mid-schedule (used when the config says
  ``optim.scheduler: constant``; any other scheduler runs over ``trainer.max_steps`` as usual);
- ``curve.tsv`` in ``output_dir``: ``step  seconds  loss`` per optimizer step, and
  ``step  seconds  dev_wer`` (or ``dev_bleu``) rows after each validation, decoded greedily by
  :class:`~speechllm.lightning.metric_callbacks.ASRMetrics` / ``STMetrics``;
- ``--untrained``: save the freshly initialised model instead (the "untrained adapter" row);
- ``--prealign-only``: run the pre-alignment stage alone (``<output_dir>/prealign/model``), no LLM
  stage: the experiments that decode the adapter alone need nothing more.

:func:`train_within` and :func:`save_untrained` are the same from Python (recipes/study uses them).

Usage: python recipes/demo/train.py CONFIG --minutes M [--task asr|st] [key=value ...]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig

from speechllm.config import load_config
from speechllm.lightning.metric_callbacks import ASRMetrics, STMetrics
from speechllm.lightning.module import warmup_cosine
from speechllm.model import SpeechLLM
from speechllm.training import prepare_model_config, train


class TimeCosineSchedule(L.Callback):
    """Set the learning rate from the fraction of the time budget spent: linear warm-up, then cosine.

    Runs before each optimizer step and overrides what the step-based scheduler set (configure
    ``optim.scheduler: constant`` so that one is a no-op).

    Args:
        minutes: the time budget the schedule spans.
        warmup: fraction of the budget spent warming up.
        min_ratio: final learning rate as a fraction of the peak.
    """

    def __init__(self, minutes: float, warmup: float = 0.05, min_ratio: float = 0.05) -> None:
        self.seconds = minutes * 60.0
        self.warmup = warmup
        self.min_ratio = min_ratio
        self.start = 0.0
        self.peaks: list[float] = []

    def factor(self, fraction: float) -> float:
        """Multiplier of the peak learning rate at ``fraction`` (0..1) of the budget."""
        return warmup_cosine(fraction, self.warmup, self.min_ratio)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()
        self.peaks = [group.get("initial_lr", group["lr"]) for group in trainer.optimizers[0].param_groups]

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        scale = self.factor((time.perf_counter() - self.start) / self.seconds)
        for group, peak in zip(trainer.optimizers[0].param_groups, self.peaks):
            group["lr"] = peak * scale


class CurveWriter(L.Callback):
    """Append ``kind  step  seconds  value`` rows to ``curve.tsv`` (seconds since training began).

    Args:
        path: the TSV file (rewritten at the start of training).
        dev_score: reads the latest dev score (WER, BLEU) after a validation, or None.
    """

    def __init__(self, path: Path, dev_score: Callable[[L.LightningModule], float | None]) -> None:
        self.path = path
        self.dev_score = dev_score
        self.start = 0.0

    def _write(self, kind: str, step: int, value: float) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(f"{kind}\t{step}\t{time.perf_counter() - self.start:.1f}\t{value:.4f}\n")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("kind\tstep\tseconds\tvalue\n", encoding="utf-8")
        self.start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if isinstance(outputs, dict) and "loss" in outputs:
            self._write("loss", trainer.global_step, float(outputs["loss"]))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = self.dev_score(pl_module)
        if value is not None and not trainer.sanity_checking:
            self._write("dev", trainer.global_step, float(value))


def prealign_curve(out: Path) -> CurveWriter:
    """The pre-alignment stage's curve: its loss and the adapter's own greedy dev WER."""
    return CurveWriter(out / "prealign" / "curve.tsv", lambda module: module.dev_wer)


def prealign_alone(cfg: Any, callbacks: list[L.Callback], overwrite: bool) -> dict[str, Any]:
    """The pre-alignment stage of ``speechllm.training.train`` alone, with its output-dir checks."""
    from speechllm.lightning.checkpoint import check_output_dir, release_output_dir
    from speechllm.lightning.trainer import build_module
    from speechllm.prealign.stage import run_prealign
    from speechllm.trainer_options import write_precision_choice

    check_output_dir(cfg.output_dir, None, overwrite)
    try:
        prepared = prepare_model_config(cfg)
        write_precision_choice(cfg)
        return run_prealign(prepared, build_module(prepared).model, callbacks=callbacks)
    finally:
        release_output_dir(cfg.output_dir)


def save_untrained(cfg: DictConfig) -> Path:
    """Save the seeded initialisation training starts from, untrained; returns the model directory."""
    L.seed_everything(cfg.seed)
    model = SpeechLLM.from_config(prepare_model_config(cfg).model)
    model_dir = Path(cfg.output_dir) / "model"
    model.save_pretrained(model_dir)
    return model_dir


def train_within(cfg: DictConfig, minutes: float, task: str = "asr", overwrite: bool = False) -> Path:
    """Train as configured, the LLM stage within ``minutes`` of wall-clock time, recording the curves.

    Args:
        cfg: a loaded config (``prealign.minutes`` or ``prealign.steps`` bound its own stage).
        minutes: the LLM stage's limit (``trainer.max_time``; its learning rate follows
            :class:`TimeCosineSchedule` when ``optim.scheduler`` is ``constant``).
        task: what the dev set scores during training: ``asr`` (WER) or ``st`` (BLEU).
        overwrite: replace an earlier run in ``output_dir``.
    Returns:
        the trained model's ``save_pretrained`` directory.
    """
    out = Path(cfg.output_dir)
    metrics = (ASRMetrics if task == "asr" else STMetrics)(output_dir=out / "dev_eval", max_new_tokens=48)
    key = "wer_avg" if task == "asr" else "bleu_avg"
    cfg.trainer.max_time = {"minutes": minutes}  # the LLM stage's clock (prealign.minutes: its own)
    callbacks: list[L.Callback] = [
        metrics,
        CurveWriter(out / "curve.tsv", lambda module: metrics.last_metrics.get(key)),
    ]
    if cfg.optim.scheduler == "constant":  # the demo's configs: schedule over the time budget
        callbacks.append(TimeCosineSchedule(minutes))
    return train(cfg, callbacks=callbacks, prealign_callbacks=[prealign_curve(out)], overwrite=overwrite)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. trainer.max_steps=100")
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock limit of the training")
    parser.add_argument("--task", default="asr", choices=["asr", "st"], help="what the dev set scores")
    parser.add_argument("--untrained", action="store_true", help="save the untrained model and exit")
    parser.add_argument(
        "--prealign-only", action="store_true", help="run the pre-alignment stage only (no LLM stage)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (1 is fastest on a CPU shared with other jobs)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier run in output_dir (a rerun of the demo's stage); default: refuse",
    )
    args = parser.parse_intermixed_args()

    cfg = load_config(args.config, args.overrides)
    if args.untrained:
        print(f"untrained model saved to {save_untrained(cfg)}")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    if args.prealign_only:
        summary = prealign_alone(cfg, [prealign_curve(Path(cfg.output_dir))], args.overwrite)
        print(f"pre-aligned ({summary['steps']} steps, {(time.perf_counter() - started) / 60:.1f} min)")
        return
    model_dir = train_within(cfg, args.minutes, args.task, args.overwrite)
    print(f"trained model saved to {model_dir} ({(time.perf_counter() - started) / 60:.1f} min)")


if __name__ == "__main__":
    main()
