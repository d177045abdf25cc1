"""Config → model, data, Lightning trainer → trained adapter in ``<output_dir>/model``.

:func:`train` runs the pre-alignment stage first when configured (:mod:`speechllm.prealign.stage`),
then the LLM stage on the trainer that :mod:`speechllm.lightning.trainer` builds. See
docs/training.md.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning as L
from omegaconf import DictConfig

from speechllm.config import ConfigError
from speechllm.data.manifest_check import check_manifest_path
from speechllm.lightning.checkpoint import (
    CHECKPOINT_DIR,
    LAST_CHECKPOINT,
    LOCK_FILE,
    TrainingInterrupted,
    check_output_dir,
    release_output_dir,
    resolve_resume,
)
from speechllm.lightning.trainer import build_loggers, build_module, build_trainer, check_strategy, fit
from speechllm.logs import quiet_third_party
from speechllm.model_dir import check_model_dir
from speechllm.prealign.module import restrict_to_transcripts
from speechllm.prealign.stage import run_prealign
from speechllm.trainer_options import PRECISION_FILE, prepare_model_config, write_precision_choice

__all__ = ["prepare_model_config", "train"]


def train(
    cfg: DictConfig,
    resume: str | None = None,
    callbacks: list[L.Callback] | None = None,
    prealign_callbacks: list[L.Callback] | None = None,
    overwrite: bool = False,
) -> Path:
    """Train as configured; returns the ``save_pretrained`` directory of the trained model.

    With ``prealign.objective`` set, the pre-alignment stage
    (:func:`~speechllm.prealign.stage.run_prealign`) runs first and the LLM stage starts from its
    adapter.

    Args:
        cfg: a config from :func:`speechllm.config.load_config`.
        resume: ``None``, ``"last"`` (``<output_dir>/checkpoints/last.ckpt``) or a checkpoint path;
            training continues mid-epoch where that checkpoint was written. An unfinished
            pre-alignment stage resumes from its own ``last.ckpt``.
        callbacks: extra Lightning callbacks of the LLM stage (after the defaults).
        prealign_callbacks: extra Lightning callbacks of the pre-alignment stage.
        overwrite: without ``resume``, delete a previous run's model and checkpoints in
            ``output_dir`` first (otherwise they are an error, see :func:`check_output_dir`).
    """
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    ckpt_path = check_inputs(cfg, resume)  # before output_dir is made or any model loads
    made = _first_missing(Path(cfg.output_dir))
    check_output_dir(cfg.output_dir, resume, overwrite)  # and lock it for this run
    finished = False
    try:
        with quiet_third_party():  # one line per log event, no third-party tips
            trained = _train(cfg, resume, ckpt_path, callbacks, prealign_callbacks)
        finished = True
        return trained
    except SIGTERMException:  # a SystemExit without a code: the process would exit 0
        raise TrainingInterrupted(
            f"training stopped by SIGTERM; its state is saved in {cfg.output_dir} (last.ckpt): continue "
            "it with --resume last"
        ) from None
    finally:
        release_output_dir(cfg.output_dir)
        if not finished and made is not None:
            _remove_if_unused(made)


def check_inputs(cfg: DictConfig, resume: str | None) -> str | None:
    """What training reads, checked before anything is written or loaded; returns the LLM stage's
    checkpoint to resume from (or None).

    A missing, empty or untrusted manifest, resume checkpoint, ``prealign.init`` model directory or
    ``data.encoder_cache`` folder, an unknown logger or strategy: each fails here, in a second,
    naming the key and the path.
    """
    ckpt_path = _llm_stage_resume(resume, cfg)
    for split in ("train", "val"):
        for manifest in cfg.data[split]:
            if not check_manifest_path(manifest.path, bool(cfg.data.trust_manifest_sources)):
                raise ConfigError(f"data.{split}: {manifest.path} holds no cut")
    if cfg.data.encoder_cache and not Path(cfg.data.encoder_cache).is_dir():
        raise ConfigError(
            f"data.encoder_cache: {cfg.data.encoder_cache} is not a directory; write it with "
            f"`speechllm cache CONFIG --out {cfg.data.encoder_cache}`"
        )
    if cfg.prealign.init:
        check_model_dir(cfg.prealign.init, "prealign.init")
    build_loggers(cfg)  # an unknown or missing logger package
    check_strategy(prepare_model_config(cfg))  # `auto` precision resolved, as training will
    return ckpt_path


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` (itself or a parent) that does not exist yet."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    return missing


def _remove_if_unused(folder: Path) -> None:
    """Remove a folder this run made when the run failed before writing anything of its own: only
    the output_dir lock, ``precision.json`` (written before the models load) and empty folders."""
    leftovers = {LOCK_FILE, PRECISION_FILE}
    if folder.is_dir() and all(p.is_dir() or p.name in leftovers for p in folder.rglob("*")):
        shutil.rmtree(folder, ignore_errors=True)


def _train(
    cfg: DictConfig,
    resume: str | None,
    ckpt_path: str | None,
    callbacks: list[L.Callback] | None,
    prealign_callbacks: list[L.Callback] | None,
) -> Path:
    from speechllm.data.datamodule import SpeechDataModule
    from speechllm.data.token_batching import configured_rate_hz

    requested = cfg
    cfg = prepare_model_config(cfg)
    write_precision_choice(requested)
    module = build_module(cfg)
    if cfg.prealign.objective != "none" or cfg.prealign.init:
        run_prealign(cfg, module.model, resume=resume is not None, callbacks=prealign_callbacks)
    else:  # the stage would have done it: the CTC adapter's `vocab: transcripts`
        restrict_to_transcripts(cfg, module.model)
    encoder = module.model.encoder
    rate = configured_rate_hz(cfg.data, cfg.model, float(encoder.frame_rate_hz))
    data = SpeechDataModule(
        cfg.data, module.model.llm.prompts, seed=cfg.seed, encoder=encoder, llm_rate_hz=rate
    )
    trainer = build_trainer(cfg, callbacks, model=module.model)
    fit(trainer, module, data, ckpt_path)
    return Path(cfg.output_dir) / "model"


def _llm_stage_resume(resume: str | None, cfg: DictConfig) -> str | None:
    """The LLM stage's checkpoint for ``resume`` (see :func:`resolve_resume`).

    With a pre-alignment stage, ``--resume last`` may find no LLM-stage checkpoint yet (the run
    stopped during pre-alignment): the LLM stage then starts fresh after it.
    """
    last = Path(cfg.output_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT
    if resume == "last" and cfg.prealign.objective != "none" and not last.is_file():
        return None
    return resolve_resume(resume, cfg.output_dir)
