"""Config → model, data, Lightning trainer → trained adapter in ``<output_dir>/model``.

The trainer is Lightning's own; this module only turns ``cfg.trainer`` into its arguments:
precision, strategy (``ddp``, ``fsdp`` wrapping the LLM's decoder layers, ``deepspeed_stage_2``),
loggers, callbacks and the atomic, trainable-only checkpoints. See docs/training.md.
"""

from __future__ import annotations

import datetime
import importlib.util
import inspect
import json
import logging
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from speechllm.alignment import PREALIGNMENT_OPTIONS, resolve_objective
from speechllm.config import ConfigError
from speechllm.data.manifest import check_manifest_path
from speechllm.io import atomic_write
from speechllm.lightning.callbacks import (
    CompressionRatioMonitor,
    EmptyEpochGuard,
    ExportTrainable,
    ThroughputMonitor,
)
from speechllm.lightning.checkpoint import (
    CHECKPOINT_DIR,
    LAST_CHECKPOINT,
    PREALIGN_DIR,
    PREALIGN_DONE,
    AtomicCheckpointIO,
    SaveOnSigterm,
    TrainingInterrupted,
    check_output_dir,
    checkpoint_callback,
    release_output_dir,
    resolve_resume,
)
from speechllm.lightning.metric_callbacks import ASRMetrics, STMetrics
from speechllm.lightning.module import SpeechLLMModule
from speechllm.lightning.prealign import PreAlignModule, transcript_vocabulary
from speechllm.model import TRAINED_WEIGHTS, SpeechLLM
from speechllm.search import DecodingOptions
from speechllm.trainer_options import prepare_model_config, resolve_precision, write_precision_choice

log = logging.getLogger(__name__)

# TrainerConfig keys that speechllm interprets; the rest are lightning.Trainer keyword arguments.
OWN_TRAINER_KEYS = (
    "logger",
    "activation_checkpointing",
    "compile",
    "checkpoint_every_n_steps",
    "save_top_k",
    "max_bad_steps",
)
STRATEGIES = ("auto", "ddp", "fsdp", "deepspeed_stage_2")
LOGGERS = ("csv", "tensorboard", "wandb", "none")


def lightning_precision(precision: str) -> str:
    """Lightning's precision for ours: ``bf16-true`` runs as bf16 autocast over fp32 trained weights.

    Lightning's own ``bf16-true`` would cast the trained parameters (and AdamW's states) to bf16
    too, losing small updates; the frozen parts are already bf16 by :func:`prepare_model_config`.
    """
    return "bf16-mixed" if precision == "bf16-true" else precision


def check_strategy(cfg: DictConfig) -> str:
    """Validate ``trainer.strategy`` against the other trainer options before any weights load."""
    name = str(cfg.trainer.strategy)
    if name not in STRATEGIES:
        raise ConfigError(f"trainer.strategy: unknown {name!r}; valid: {', '.join(STRATEGIES)}")
    if name == "deepspeed_stage_2" and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(
            "trainer.strategy=deepspeed_stage_2 needs DeepSpeed: pip install 'speechllm[deepspeed]'"
        )
    if name == "fsdp":
        accelerator = str(cfg.trainer.accelerator)
        if accelerator not in ("gpu", "cuda", "auto") or (
            accelerator == "auto" and not torch.cuda.is_available()
        ):
            raise ConfigError(
                f"trainer.strategy=fsdp needs CUDA GPUs (Lightning's FSDPStrategy refuses the "
                f"{accelerator!r} accelerator); use ddp on CPU"
            )
        if str(cfg.trainer.precision) == "bf16-true":
            raise ConfigError(
                "trainer.precision=bf16-true cannot be used with trainer.strategy=fsdp (an FSDP unit needs "
                "one dtype for frozen and trained parameters); use bf16-mixed, whose FSDP MixedPrecision "
                "computes in bf16 over fp32 weights"
            )
    return name


def build_strategy(cfg: DictConfig, model: SpeechLLM | None = None) -> Any:
    """``cfg.trainer.strategy`` → a Lightning strategy (object or name).

    ``fsdp`` wraps each of the LLM's decoder layers in its own FSDP unit (see :func:`fsdp_strategy`).
    """
    name = check_strategy(cfg)
    if name != "fsdp":
        return name
    if model is None:
        raise ValueError("build_strategy: strategy fsdp needs the model (to find the LLM's decoder layers)")
    return fsdp_strategy(model, bool(cfg.trainer.activation_checkpointing))


def fsdp_strategy(model: SpeechLLM, activation_checkpointing: bool = False) -> Any:
    """Lightning's FSDP, one unit per LLM decoder layer, original parameters kept for the optimizer.

    ``state_dict_type="full"``: checkpoints gather the full state on rank 0, then
    :meth:`SpeechLLMModule.on_save_checkpoint` keeps the trained parameters only.
    """
    from lightning.pytorch.strategies import FSDPStrategy

    layer_classes = decoder_layer_classes(model)
    if not layer_classes:
        raise ConfigError(
            f"trainer.strategy=fsdp: found no decoder-layer class in {type(model.llm).__name__} "
            "(its HF model lists none in _no_split_modules)"
        )
    return FSDPStrategy(
        auto_wrap_policy=layer_classes,
        use_orig_params=True,
        state_dict_type="full",
        activation_checkpointing_policy=layer_classes if activation_checkpointing else None,
    )


def decoder_layer_classes(model: SpeechLLM) -> set[type[torch.nn.Module]]:
    """The LLM's decoder-layer classes (HF ``_no_split_modules``) found in ``model.llm``."""
    base = getattr(model.llm, "base_model", model.llm)
    names = set(getattr(base, "_no_split_modules", None) or [])
    return {type(m) for m in model.llm.modules() if type(m).__name__ in names}


def build_loggers(cfg: DictConfig) -> Any:
    """``csv`` (default), ``tensorboard``, ``wandb`` or ``none``; all write under ``output_dir``."""
    kind = str(cfg.trainer.logger)
    if kind not in LOGGERS:
        raise ConfigError(f"trainer.logger: unknown {kind!r}; valid: {', '.join(LOGGERS)}")
    if kind == "none":
        return False
    from lightning.pytorch import loggers

    if kind == "csv":
        # Flushed at every logged step, so a killed run's metrics.csv holds all but the step in flight.
        return loggers.CSVLogger(cfg.output_dir, name="logs", flush_logs_every_n_steps=1)
    if kind == "tensorboard":
        if not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
            raise ConfigError(
                "trainer.logger=tensorboard needs the tensorboard package: pip install tensorboard"
            )
        return loggers.TensorBoardLogger(cfg.output_dir, name="logs")
    if importlib.util.find_spec("wandb") is None:
        raise ConfigError("trainer.logger=wandb needs the wandb package: pip install wandb")
    return loggers.WandbLogger(save_dir=cfg.output_dir, name=Path(cfg.output_dir).name)


def default_callbacks(cfg: DictConfig, export: bool = True) -> list[L.Callback]:
    """Compression and throughput monitors, export of the trained parameters (``export``),
    checkpoints, progress bar."""
    trainer_cfg = cfg.trainer
    data = cfg.data
    hint = f"data.min_cut_duration={data.min_cut_duration}, data.max_cut_duration={data.max_cut_duration}"
    hint += f", skip report {data.skip_report}" if data.skip_report else ""
    callbacks: list[L.Callback] = [
        CompressionRatioMonitor(cfg.output_dir, adapter_name=cfg.model.adapter.get("name")),
        ThroughputMonitor(),
        EmptyEpochGuard(hint),
        SaveOnSigterm(),
        checkpoint_callback(cfg.output_dir, trainer_cfg.checkpoint_every_n_steps, trainer_cfg.save_top_k),
    ]
    if export:
        callbacks.insert(4, ExportTrainable(Path(cfg.output_dir) / "model"))
    # eval.num_beams, length_penalty, no_repeat_ngram_size, repetition_penalty
    decoding = {f.name: cfg.eval[f.name] for f in fields(DecodingOptions) if f.name != "max_new_tokens"}
    if cfg.eval.asr_metrics:
        callbacks.append(ASRMetrics(max_new_tokens=cfg.eval.max_new_tokens, decoding=decoding))
    if cfg.eval.st_metrics:
        comet = cfg.eval.comet_model
        callbacks.append(
            STMetrics(max_new_tokens=cfg.eval.max_new_tokens, comet_model=comet, decoding=decoding)
        )
    if trainer_cfg.enable_progress_bar and importlib.util.find_spec("rich") is not None:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar())
    return callbacks


def build_trainer(
    cfg: DictConfig,
    callbacks: list[L.Callback] | None = None,
    model: SpeechLLM | None = None,
    export: bool = True,
) -> L.Trainer:
    """A ``lightning.Trainer`` from ``cfg.trainer``: our keys interpreted, the rest passed through.

    Args:
        cfg: the full config (``trainer``, ``output_dir``, ``model``).
        callbacks: extra callbacks, after :func:`default_callbacks`.
        model: the built model, needed by ``strategy: fsdp`` to find the LLM's decoder layers.
        export: ``save_pretrained`` the trained parameters to ``<output_dir>/model`` at the end.
    """
    options: dict[str, Any] = OmegaConf.to_container(cfg.trainer, resolve=True)  # type: ignore[assignment]
    for key in OWN_TRAINER_KEYS:
        options.pop(key, None)
    options = {k: v for k, v in options.items() if v is not None}
    options["precision"] = lightning_precision(resolve_precision(cfg)[0])
    strategy = build_strategy(cfg, model)
    options["strategy"] = strategy
    # DeepSpeed writes its own checkpoint directories; the other strategies use our atomic writer.
    plugins = [] if str(cfg.trainer.strategy).startswith("deepspeed") else [AtomicCheckpointIO()]
    return L.Trainer(
        default_root_dir=cfg.output_dir,
        logger=build_loggers(cfg),
        callbacks=default_callbacks(cfg, export) + list(callbacks or []),
        plugins=plugins,
        use_distributed_sampler=False,  # the lhotse sampler shards by rank itself
        **options,
    )


def build_module(cfg: DictConfig) -> SpeechLLMModule:
    """The seeded model (``cfg`` already through :func:`prepare_model_config`) in its LightningModule."""
    L.seed_everything(cfg.seed, workers=True)
    model = SpeechLLM.from_config(cfg.model, imports=cfg.imports)
    if cfg.trainer.compile:
        # In place (nn.Module.compile): parameter names, and so checkpoints, are unchanged.
        model.adapter.compile()
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    return SpeechLLMModule(model, optim, max_bad_steps=int(cfg.trainer.get("max_bad_steps", 10)))  # type: ignore[arg-type]


def train(
    cfg: DictConfig,
    resume: str | None = None,
    callbacks: list[L.Callback] | None = None,
    prealign_callbacks: list[L.Callback] | None = None,
    overwrite: bool = False,
) -> Path:
    """Train as configured; returns the ``save_pretrained`` directory of the trained model.

    With ``pretrain.objective`` set, the pre-alignment stage (:func:`prealign`) runs first and the
    LLM stage starts from its adapter.

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

    check_output_dir(cfg.output_dir, resume, overwrite)  # and lock it for this run
    try:
        return _train(cfg, resume, callbacks, prealign_callbacks)
    except SIGTERMException:  # a SystemExit without a code: the process would exit 0
        raise TrainingInterrupted(
            f"training stopped by SIGTERM; its state is saved in {cfg.output_dir} (last.ckpt): continue "
            "it with --resume last"
        ) from None
    finally:
        release_output_dir(cfg.output_dir)


def _train(
    cfg: DictConfig,
    resume: str | None,
    callbacks: list[L.Callback] | None,
    prealign_callbacks: list[L.Callback] | None,
) -> Path:
    from speechllm.data.datamodule import SpeechDataModule

    ckpt_path = _llm_stage_resume(resume, cfg)  # a missing checkpoint fails before the models load
    requested = cfg
    for split in ("train", "val"):  # bad, empty or untrusted data fails before the models load
        for manifest in cfg.data[split]:
            if not check_manifest_path(manifest.path, bool(cfg.data.trust_manifest_sources)):
                raise ConfigError(f"data.{split}: {manifest.path} holds no cut")
    cfg = prepare_model_config(cfg)
    check_strategy(cfg)
    write_precision_choice(requested)
    build_loggers(cfg)  # an unknown or missing logger fails here, not after the models load
    module = build_module(cfg)
    if cfg.pretrain.objective != "none" or cfg.pretrain.init:
        prealign(cfg, module.model, resume=resume is not None, callbacks=prealign_callbacks)
    data = SpeechDataModule(cfg.data, module.model.llm.prompts, seed=cfg.seed, encoder=module.model.encoder)
    trainer = build_trainer(cfg, callbacks, model=module.model)
    fit_kwargs: dict[str, Any] = {"ckpt_path": ckpt_path}
    if "weights_only" in inspect.signature(trainer.fit).parameters:
        fit_kwargs["weights_only"] = True
    trainer.fit(module, datamodule=data, **fit_kwargs)
    return Path(cfg.output_dir) / "model"


def prealign(
    cfg: DictConfig, model: SpeechLLM, resume: bool = False, callbacks: list[L.Callback] | None = None
) -> dict[str, Any]:
    """The pre-alignment stage: train ``model.adapter`` against the LLM's input embeddings.

    Writes ``<output_dir>/prealign/`` (``checkpoints/``, ``logs/``, ``model/``: the whole model
    after the stage, and ``prealign.json``: objective, steps, seconds, dev WER, output scale). A
    finished stage (``prealign.json`` present) is not run again: its model is loaded instead.

    Args:
        cfg: the prepared config (``pretrain`` section; ``model.alignment`` set by load_config).
        model: the built model; its adapter and alignment head are trained in place.
        resume: continue an unfinished stage from ``prealign/checkpoints/last.ckpt`` if present.
        callbacks: extra Lightning callbacks.
    Returns:
        the ``prealign.json`` summary.
    """
    from safetensors.torch import load_file

    from speechllm.data.datamodule import SpeechDataModule

    if cfg.pretrain.init:
        return load_prealigned(cfg, model, Path(cfg.pretrain.init))
    out = Path(cfg.output_dir) / PREALIGN_DIR
    if (out / PREALIGN_DONE).is_file():
        model.load_trainable(load_file(str(out / "model" / TRAINED_WEIGHTS)), source=str(out / "model"))
        log.info("pre-alignment already done: loaded %s", out / "model")
        return json.loads((out / PREALIGN_DONE).read_text())
    pre = cfg.pretrain
    objective = resolve_objective(str(pre.objective), str(cfg.model.adapter.name))
    stage_cfg = _prealign_stage_config(cfg, out)
    data = SpeechDataModule(stage_cfg.data, model.llm.prompts, seed=cfg.seed, encoder=model.encoder)
    if model.alignment.vocab == "transcripts":
        vocab = transcript_vocabulary(cfg.data.train, model.llm.prompts, cfg.data.trust_manifest_sources)
        model.alignment.set_vocab(vocab)
    module = PreAlignModule(
        model,
        objective,
        lr=pre.lr,
        weight_decay=pre.weight_decay,
        warmup_ratio=pre.warmup_ratio,
        steps=pre.steps,
        minutes=pre.minutes,
        rescale=pre.rescale,
        max_bad_steps=int(cfg.trainer.max_bad_steps),
    )
    extra = list(callbacks or [])
    if pre.minutes:
        extra.append(
            L.pytorch.callbacks.Timer(duration=datetime.timedelta(minutes=pre.minutes), interval="step")
        )
    trainer = build_trainer(stage_cfg, extra, model=model, export=False)
    last = out / "checkpoints" / "last.ckpt"
    started = time.perf_counter()
    fit_kwargs: dict[str, Any] = {"ckpt_path": str(last) if resume and last.is_file() else None}
    if "weights_only" in inspect.signature(trainer.fit).parameters:
        fit_kwargs["weights_only"] = True
    trainer.fit(module, datamodule=data, **fit_kwargs)
    module.release()
    summary = {
        "objective": objective,
        "steps": int(trainer.global_step),
        "seconds": round(time.perf_counter() - started, 1),
        "dev_wer": module.dev_wer,
        "vocabulary": int(model.alignment.vocab_ids.numel()),
        "output_rms": getattr(module, "output_rms", None),
        "output_scale": float(model.alignment.output_scale.detach()),
        "inverse_temperature": float(model.alignment.log_scale.detach().exp()),
    }
    if trainer.is_global_zero:
        model.save_pretrained(out / "model")
        with atomic_write(out / PREALIGN_DONE) as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
    trainer.strategy.barrier("prealign_done")
    return summary


def load_prealigned(cfg: DictConfig, model: SpeechLLM, directory: Path) -> dict[str, Any]:
    """Start from another run's finished pre-alignment (``pretrain.init``) instead of running one.

    Raises:
        ConfigError: the saved adapter or alignment head is configured differently from this run's.
        CheckpointError / FileNotFoundError: the directory is not a readable model directory.
    """
    from speechllm.model_dir import read_model_dir

    saved = read_model_dir(directory, trust_imports=list(cfg.imports))
    for key in ("adapter", "alignment"):
        mine, theirs = _as_dict(cfg.model.get(key)), _as_dict(saved.model_config.get(key))
        differ = [k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
        if key == "alignment":  # the other head options only shape the LLM stage
            differ = [k for k in differ if k in PREALIGNMENT_OPTIONS]
        if differ:
            detail = ", ".join(f"{k}: {theirs.get(k)!r} there, {mine.get(k)!r} here" for k in differ)
            raise ConfigError(
                f"pretrain.init: {directory} was pre-aligned with another model.{key} ({detail})"
            )
    model.load_trainable(saved.tensors, source=str(directory / TRAINED_WEIGHTS))
    done = directory.parent / PREALIGN_DONE
    summary = json.loads(done.read_text()) if done.is_file() else {}
    log.info("pre-alignment loaded from %s", directory)
    return {**summary, "init": str(directory)}


def _as_dict(section: Any) -> dict[str, Any]:
    return OmegaConf.to_container(section, resolve=True) if section is not None else {}  # type: ignore[return-value]


def _prealign_stage_config(cfg: DictConfig, out: Path) -> DictConfig:
    """The pre-alignment stage's config: its own output dir, batch size, schedule; no LLM metrics."""
    pre = cfg.pretrain
    return OmegaConf.merge(  # type: ignore[return-value]
        cfg,
        {
            "output_dir": str(out),
            "data": {"max_duration": pre.max_duration},
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


def _llm_stage_resume(resume: str | None, cfg: DictConfig) -> str | None:
    """The LLM stage's checkpoint for ``resume`` (see :func:`resolve_resume`).

    With a pre-alignment stage, ``--resume last`` may find no LLM-stage checkpoint yet (the run
    stopped during pre-alignment): the LLM stage then starts fresh after it.
    """
    last = Path(cfg.output_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT
    if resume == "last" and cfg.pretrain.objective != "none" and not last.is_file():
        return None
    return resolve_resume(resume, cfg.output_dir)
