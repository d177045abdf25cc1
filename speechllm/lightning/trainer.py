"""``cfg.trainer`` → a Lightning ``Trainer``: precision, strategy, loggers, callbacks, checkpoints.

The trainer is Lightning's own; this module only turns ``cfg.trainer`` into its arguments:
precision, strategy (``ddp``, ``fsdp`` wrapping the LLM's decoder layers, ``fsdp2`` sharding them
(also on CPUs), ``deepspeed_stage_2``),
loggers, callbacks and the atomic, trainable-only checkpoints. Both training stages
(:mod:`speechllm.prealign.stage`, :mod:`speechllm.training`) build their trainer here. See
docs/training.md.
"""

from __future__ import annotations

import importlib.util
import inspect
from dataclasses import fields
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from speechllm.config import ConfigError
from speechllm.lightning.callbacks import (
    CompressionRatioMonitor,
    EmptyEpochGuard,
    ExportTrainable,
    ThroughputMonitor,
)
from speechllm.lightning.checkpoint import AtomicCheckpointIO, SaveOnSigterm, checkpoint_callback
from speechllm.lightning.metric_callbacks import ASRMetrics, STMetrics
from speechllm.lightning.module import SpeechLLMModule
from speechllm.model import SpeechLLM
from speechllm.search import DecodingOptions
from speechllm.trainer_options import resolve_precision

# TrainerConfig keys that speechllm interprets; the rest are lightning.Trainer keyword arguments.
OWN_TRAINER_KEYS = (
    "logger",
    "activation_checkpointing",
    "compile",
    "checkpoint_every_n_steps",
    "save_top_k",
    "max_bad_steps",
)
STRATEGIES = ("auto", "ddp", "fsdp", "fsdp2", "deepspeed_stage_2")
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
    if name in ("fsdp", "fsdp2") and str(cfg.trainer.precision) == "bf16-true":
        raise ConfigError(
            f"trainer.precision=bf16-true cannot be used with trainer.strategy={name} (an FSDP unit needs "
            "one dtype for frozen and trained parameters); use bf16-mixed, which computes in bf16 over "
            "fp32 weights"
        )
    if name == "fsdp":
        accelerator = str(cfg.trainer.accelerator)
        if accelerator not in ("gpu", "cuda", "auto") or (
            accelerator == "auto" and not torch.cuda.is_available()
        ):
            raise ConfigError(
                f"trainer.strategy=fsdp needs CUDA GPUs (Lightning's FSDPStrategy refuses the "
                f"{accelerator!r} accelerator); use fsdp2 (or ddp) on CPU"
            )
    return name


def build_strategy(cfg: DictConfig, model: SpeechLLM | None = None) -> Any:
    """``cfg.trainer.strategy`` → a Lightning strategy (object or name).

    ``fsdp`` wraps each of the LLM's decoder layers in its own FSDP unit (see :func:`fsdp_strategy`);
    ``fsdp2`` shards each of them with ``fully_shard`` (:class:`~speechllm.lightning.fsdp2.FSDP2Strategy`).
    """
    name = check_strategy(cfg)
    if name not in ("fsdp", "fsdp2"):
        return name
    if model is None:
        raise ValueError(
            f"build_strategy: strategy {name} needs the model (to find the LLM's decoder layers)"
        )
    if name == "fsdp2":
        from speechllm.lightning.fsdp2 import FSDP2Strategy

        return FSDP2Strategy(_checked_layer_classes(model, name))
    return fsdp_strategy(model, bool(cfg.trainer.activation_checkpointing))


def fsdp_strategy(model: SpeechLLM, activation_checkpointing: bool = False) -> Any:
    """Lightning's FSDP, one unit per LLM decoder layer, original parameters kept for the optimizer.

    ``state_dict_type="full"``: checkpoints gather the full state on rank 0, then
    :meth:`SpeechLLMModule.on_save_checkpoint` keeps the trained parameters only.
    """
    from lightning.pytorch.strategies import FSDPStrategy

    layer_classes = _checked_layer_classes(model, "fsdp")
    return FSDPStrategy(
        auto_wrap_policy=layer_classes,
        use_orig_params=True,
        state_dict_type="full",
        activation_checkpointing_policy=layer_classes if activation_checkpointing else None,
    )


def _checked_layer_classes(model: SpeechLLM, strategy: str) -> set[type[torch.nn.Module]]:
    layer_classes = decoder_layer_classes(model)
    if not layer_classes:
        raise ConfigError(
            f"trainer.strategy={strategy}: found no decoder-layer class in {type(model.llm).__name__} "
            "(its HF model lists none in _no_split_modules)"
        )
    return layer_classes


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
    # eval.num_beams, length_penalty, no_repeat_ngram_size, repetition_penalty, ctc_weight, ...
    decoding = {f.name: cfg.eval[f.name] for f in fields(DecodingOptions) if f.name != "max_new_tokens"}
    if cfg.eval.asr_metrics:
        callbacks.append(
            ASRMetrics(
                max_new_tokens=cfg.eval.max_new_tokens, decoding=decoding, normalizer=cfg.eval.normalizer
            )
        )
    if cfg.eval.st_metrics:
        comet = cfg.eval.comet_model
        st_decoding = {**decoding, "ctc_weight": 0.0}  # the CTC head spells the source, not the translation
        callbacks.append(
            STMetrics(max_new_tokens=cfg.eval.max_new_tokens, comet_model=comet, decoding=st_decoding)
        )
    if cfg.eval.listening_check:
        from speechllm.lightning.listening_callback import ListeningCheck

        callbacks.append(
            ListeningCheck(
                max_clips=cfg.eval.listening_clips,
                seed=cfg.seed,
                max_new_tokens=cfg.eval.max_new_tokens,
                decoding=decoding,
            )
        )
    if trainer_cfg.enable_progress_bar and importlib.util.find_spec("rich") is not None:
        from speechllm.lightning.progress_bar import RunProgressBar

        callbacks.append(RunProgressBar())
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
        model: the built model, needed by ``strategy: fsdp`` / ``fsdp2`` to find the LLM's decoder layers.
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


def fit(
    trainer: L.Trainer, module: L.LightningModule, data: L.LightningDataModule, ckpt_path: str | None
) -> None:
    """``trainer.fit``, loading a checkpoint as weights only where this Lightning can (no pickled code)."""
    kwargs: dict[str, Any] = {"ckpt_path": ckpt_path}
    if "weights_only" in inspect.signature(trainer.fit).parameters:
        kwargs["weights_only"] = True
    trainer.fit(module, datamodule=data, **kwargs)
