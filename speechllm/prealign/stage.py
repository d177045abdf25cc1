"""The pre-alignment stage: the adapter trained against the LLM's input embeddings, before the LLM stage.

:func:`run_prealign` trains ``model.adapter`` and the pre-alignment head
(:mod:`speechllm.prealign.head`) in a :class:`~speechllm.prealign.module.PreAlignModule` on the
trainer of :mod:`speechllm.lightning.trainer`, writing ``<output_dir>/prealign/``;
:func:`load_prealigned` starts from another run's finished stage (``prealign.init``) instead.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from speechllm.config import ConfigError
from speechllm.io import atomic_write
from speechllm.lightning.checkpoint import PREALIGN_DIR, PREALIGN_DONE
from speechllm.lightning.trainer import build_trainer, fit
from speechllm.model import TRAINED_WEIGHTS, SpeechLLM
from speechllm.prealign.head import PREALIGNMENT_OPTIONS, resolve_objective
from speechllm.prealign.module import PreAlignModule, restrict_to_transcripts

log = logging.getLogger(__name__)


def run_prealign(
    cfg: DictConfig, model: SpeechLLM, resume: bool = False, callbacks: list[L.Callback] | None = None
) -> dict[str, Any]:
    """The pre-alignment stage: train ``model.adapter`` against the LLM's input embeddings.

    Writes ``<output_dir>/prealign/`` (``checkpoints/``, ``logs/``, ``model/``: the whole model
    after the stage, and ``prealign.json``: objective, steps, seconds, dev WER, output scale). A
    finished stage (``prealign.json`` present) is not run again: its model is loaded instead.

    Args:
        cfg: the prepared config (``prealign`` section; ``model.prealign`` set by load_config).
        model: the built model; its adapter and pre-alignment head are trained in place.
        resume: continue an unfinished stage from ``prealign/checkpoints/last.ckpt`` if present.
        callbacks: extra Lightning callbacks.
    Returns:
        the ``prealign.json`` summary.
    """
    from safetensors.torch import load_file

    from speechllm.data.datamodule import SpeechDataModule

    if cfg.prealign.init:
        return load_prealigned(cfg, model, Path(cfg.prealign.init))
    out = Path(cfg.output_dir) / PREALIGN_DIR
    if (out / PREALIGN_DONE).is_file():
        model.load_trainable(load_file(str(out / "model" / TRAINED_WEIGHTS)), source=str(out / "model"))
        log.info("pre-alignment already done: loaded %s", out / "model")
        return json.loads((out / PREALIGN_DONE).read_text())
    pre = cfg.prealign
    objective = resolve_objective(str(pre.objective), model.adapter)
    stage_cfg = _prealign_stage_config(cfg, out)
    data = SpeechDataModule(stage_cfg.data, model.llm.prompts, seed=cfg.seed, encoder=model.encoder)
    restrict_to_transcripts(cfg, model)
    module = PreAlignModule(
        model,
        objective,
        lr=pre.lr,
        weight_decay=pre.weight_decay,
        warmup_ratio=pre.warmup_ratio,
        warmup_steps=pre.warmup_steps,
        steps=pre.steps,
        minutes=pre.minutes,
        rescale=pre.rescale,
        max_bad_steps=int(cfg.trainer.max_bad_steps),
    )
    trainer = build_trainer(stage_cfg, list(callbacks or []), model=model, export=False)
    last = out / "checkpoints" / "last.ckpt"
    started = time.perf_counter()
    fit(trainer, module, data, str(last) if resume and last.is_file() else None)
    module.release()
    summary = {
        "objective": objective,
        "steps": int(trainer.global_step),
        "seconds": round(time.perf_counter() - started, 1),
        "dev_wer": module.dev_wer,
        "vocabulary": int(model.prealign.vocab_ids.numel()),
        "output_rms": getattr(module, "output_rms", None),
        "output_scale": float(model.prealign.output_scale.detach()),
        "inverse_temperature": float(model.prealign.log_scale.detach().exp()),
    }
    if trainer.is_global_zero:
        model.save_pretrained(out / "model")
        with atomic_write(out / PREALIGN_DONE) as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
    trainer.strategy.barrier("prealign_done")
    return summary


def load_prealigned(cfg: DictConfig, model: SpeechLLM, directory: Path) -> dict[str, Any]:
    """Start from another run's finished pre-alignment (``prealign.init``) instead of running one.

    Raises:
        ConfigError: the saved adapter or pre-alignment head is configured differently from this run's.
        CheckpointError / FileNotFoundError: the directory is not a readable model directory.
    """
    from speechllm.model_dir import read_model_dir

    saved = read_model_dir(directory, trust_imports=list(cfg.imports))
    for key in ("adapter", "prealign"):
        mine, theirs = _as_dict(cfg.model.get(key)), _as_dict(saved.model_config.get(key))
        differ = [k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
        if key == "prealign":  # the other head options only shape the LLM stage
            differ = [k for k in differ if k in PREALIGNMENT_OPTIONS]
        if differ:
            detail = ", ".join(f"{k}: {theirs.get(k)!r} there, {mine.get(k)!r} here" for k in differ)
            raise ConfigError(
                f"prealign.init: {directory} was pre-aligned with another model.{key} ({detail})"
            )
    model.load_trainable(saved.tensors, source=str(directory / TRAINED_WEIGHTS))
    done = directory.parent / PREALIGN_DONE
    summary = json.loads(done.read_text()) if done.is_file() else {}
    log.info("pre-alignment loaded from %s", directory)
    return {**summary, "init": str(directory)}


def _as_dict(section: Any) -> dict[str, Any]:
    return OmegaConf.to_container(section, resolve=True) if section is not None else {}  # type: ignore[return-value]


def _prealign_stage_config(cfg: DictConfig, out: Path) -> DictConfig:
    """The pre-alignment stage's config: its own output dir, batch size, schedule; no LLM metrics.

    Its clock is ``prealign.minutes`` (Lightning's ``max_time``: a ``Timer`` checked after every
    step), not the LLM stage's ``trainer.max_time``.
    """
    pre = cfg.prealign
    stage = OmegaConf.merge(
        cfg,
        {
            "output_dir": str(out),
            # No LLM runs in this stage: batches go by audio seconds, whatever data.max_llm_tokens says.
            "data": {"max_duration": pre.max_duration, "max_llm_tokens": None},
            "eval": {"asr_metrics": False, "st_metrics": False},
            "trainer": {
                "max_steps": pre.steps if pre.steps > 0 else -1,
                "max_epochs": None if pre.steps > 0 else 1000,
                "val_check_interval": pre.val_check_interval if cfg.data.val else None,
                "check_val_every_n_epoch": None,
                "checkpoint_every_n_steps": pre.val_check_interval,
            },
        },
    )
    # Assigned, not merged: a "DD:HH:MM:SS" string does not merge with a mapping.
    stage.trainer.max_time = {"minutes": float(pre.minutes)} if pre.minutes else None
    return stage  # type: ignore[return-value]
