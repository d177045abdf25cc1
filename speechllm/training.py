"""Config → model, data, Lightning trainer → trained adapter in ``<output_dir>/model``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from speechllm.data.datamodule import SpeechDataModule
from speechllm.lightning.module import SpeechLLMModule
from speechllm.model import SpeechLLM

log = logging.getLogger(__name__)


def build_trainer(cfg: DictConfig, callbacks: list[L.Callback] | None = None) -> L.Trainer:
    """A ``lightning.Trainer`` from ``cfg.trainer``, logging CSV under ``cfg.output_dir``."""
    from lightning.pytorch.loggers import CSVLogger

    options: dict[str, Any] = OmegaConf.to_container(cfg.trainer, resolve=True)  # type: ignore[assignment]
    options = {k: v for k, v in options.items() if v is not None}
    return L.Trainer(
        default_root_dir=cfg.output_dir,
        logger=CSVLogger(cfg.output_dir, name="logs"),
        callbacks=callbacks or [],
        use_distributed_sampler=False,  # the lhotse sampler shards by rank itself
        enable_checkpointing=False,
        **options,
    )


def train(cfg: DictConfig) -> Path:
    """Train as configured; returns the ``save_pretrained`` directory of the trained model."""
    L.seed_everything(cfg.seed, workers=True)
    model = SpeechLLM.from_config(cfg.model)
    module = SpeechLLMModule(model, OmegaConf.to_object(cfg.optim))
    data = SpeechDataModule(cfg.data, model.llm.prompts, seed=cfg.seed)
    trainer = build_trainer(cfg)
    trainer.fit(module, datamodule=data)
    out = Path(cfg.output_dir) / "model"
    if trainer.is_global_zero:
        model.save_pretrained(out)
        log.info("saved trained parameters to %s", out)
    return out
