"""Trainer options that change how the model is built: precision (``auto`` resolved for the
device) and activation checkpointing, folded into ``cfg.model`` before anything is built."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from speechllm.config import ConfigError, constructor_options
from speechllm.io import atomic_write
from speechllm.precision import cpu_bf16_flags, cpu_name, resolve_training_precision, training_device
from speechllm.registry import ENCODERS, LLMS

log = logging.getLogger(__name__)

PRECISION_FILE = "precision.json"  # in output_dir: the training precision chosen, and why
PRECISIONS = ("auto", "bf16-mixed", "bf16-true", "32", "32-true", "16-mixed")


def resolve_precision(cfg: DictConfig) -> tuple[str, str]:
    """``cfg.trainer.precision`` with ``auto`` resolved for the training device, and why
    (:func:`speechllm.precision.resolve_training_precision`); explicit values come back unchanged."""
    precision = str(cfg.trainer.precision)
    if precision not in PRECISIONS:
        raise ConfigError(f"trainer.precision: unknown {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision, "explicit"
    frozen_dtype_ok = all(
        "dtype" in constructor_options(registry.get(cfg.model[kind].name))
        and cfg.model[kind].get("dtype") in (None, "bfloat16")
        for kind, registry in (("encoder", ENCODERS), ("llm", LLMS))
    )
    device = training_device(str(cfg.trainer.accelerator))
    return resolve_training_precision(precision, device, frozen_dtype_ok, str(cfg.trainer.strategy) == "fsdp")


def prepare_model_config(cfg: DictConfig) -> DictConfig:
    """Fold trainer options that change how the frozen parts are built into ``cfg.model``.

    - ``precision: auto`` is resolved first (:func:`resolve_precision`): ``bf16-true`` where the
      device runs bf16 natively, ``32`` where it does not.
    - ``precision: bf16-true`` builds the frozen encoder and LLM with ``dtype: bfloat16`` (their
      own option; the encoder's dtype is also part of its cache key). The trained adapter and LoRA
      stay fp32 and the step runs under bf16 autocast (see :func:`lightning_precision`). An
      encoder with ``unfreeze_top_layers`` stays float32: its trained layers are float32.
    - ``activation_checkpointing: true`` sets the LLM's ``gradient_checkpointing``.

    Returns a copy; raises :class:`ConfigError` when a component cannot honour the option.
    """
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    cfg.trainer.precision = precision = resolve_precision(cfg)[0]
    if precision == "bf16-true":
        for kind, registry in (("encoder", ENCODERS), ("llm", LLMS)):
            if kind == "encoder" and cfg.model.encoder.get("unfreeze_top_layers"):
                continue
            _set_component_option(cfg, kind, registry, "dtype", "bfloat16", "trainer.precision=bf16-true")
    if cfg.trainer.activation_checkpointing:
        _set_component_option(
            cfg, "llm", LLMS, "gradient_checkpointing", True, "trainer.activation_checkpointing"
        )
    return cfg


def _set_component_option(cfg: DictConfig, kind: str, registry: Any, key: str, value: Any, why: str) -> None:
    component = cfg.model[kind]
    if key not in constructor_options(registry.get(component.name)):
        raise ConfigError(f"{why} needs model.{kind}.{key}, which {kind} {component.name!r} does not accept")
    current = component.get(key)
    if current is not None and current != value:
        raise ConfigError(f"{why} sets model.{kind}.{key}={value}, but the config has {key}={current}")
    component[key] = value


# What each training precision does to the weights and the step (Lightning's own line about AMP
# is filtered, speechllm.logs: under bf16-true it would name bf16-mixed, what the step runs as).
PRECISION_MEANINGS = {
    "bf16-true": "frozen encoder and LLM stored in bfloat16, trained parameters and optimizer states "
    "in float32, steps under bf16 autocast",
    "bf16-mixed": "weights as built (float32 unless a component sets its dtype), steps under bf16 autocast",
    "16-mixed": "weights as built, steps under float16 autocast with gradient scaling",
    "32": "float32 throughout",
    "32-true": "float32 throughout",
}


def write_precision_choice(cfg: DictConfig) -> dict[str, Any]:
    """Log the training precision (``auto`` resolved), why and what it means, in one line; write
    ``<output_dir>/precision.json``."""
    precision, reason = resolve_precision(cfg)
    device = training_device(str(cfg.trainer.accelerator))
    choice = {
        "requested": str(cfg.trainer.precision),
        "resolved": precision,
        "reason": reason,
        "device": device,
        **({"cpu": cpu_name(), "cpu_bf16_flags": cpu_bf16_flags()} if device == "cpu" else {}),
    }
    why = f"auto on {device}: {reason}" if choice["requested"] == "auto" else "trainer.precision"
    log.info("precision %s (%s): %s", precision, why, PRECISION_MEANINGS[precision])
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / PRECISION_FILE) as tmp:
        tmp.write_text(json.dumps(choice, indent=2) + "\n")
    return choice
