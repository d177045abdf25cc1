"""Config checks that run before any weights load: unknown keys, component names and options,
numbers no run can work with, the pre-alignment sections. Every error names the key and what is valid."""

from __future__ import annotations

import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from speechllm.adapters import build_context
from speechllm.config.schema import NOISE_COLORS, ManifestConfig
from speechllm.errors import ConfigError
from speechllm.metrics.normalizers import NORMALIZERS
from speechllm.registry import ADAPTERS, ENCODERS, LLMS, Registry, constructor_options, required_options

# The adapter first: its module imports torch only, the encoders' and LLMs' also transformers
# (seconds), so the option a user edits most is checked soonest.
COMPONENTS: dict[str, Registry[Any]] = {"adapter": ADAPTERS, "encoder": ENCODERS, "llm": LLMS}


# Numbers no run can work with, refused before anything loads: (key, test, what is valid).
_VALUE_RULES: tuple[tuple[str, Any, str], ...] = (
    ("optim.lr", lambda v: v > 0, "> 0"),
    ("optim.adapter_lr", lambda v: v is None or v >= 0, ">= 0 or null"),
    ("optim.weight_decay", lambda v: v >= 0, ">= 0"),
    ("optim.warmup_ratio", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("data.max_duration", lambda v: v > 0, "> 0 (seconds of audio per batch)"),
    ("data.max_cuts", lambda v: v is None or v >= 1, ">= 1 or null"),
    ("data.max_llm_tokens", lambda v: v is None or v >= 1, ">= 1 or null (batches by audio seconds)"),
    ("data.llm_rate_hz", lambda v: v is None or v > 0, "> 0 or null (derived from the adapter)"),
    ("data.num_buckets", lambda v: v >= 1, ">= 1"),
    ("data.num_workers", lambda v: v >= 0, ">= 0"),
    ("data.min_cut_duration", lambda v: v >= 0, ">= 0"),
    ("data.max_cut_duration", lambda v: v > 0, "> 0"),
    ("data.max_text_tokens", lambda v: v is None or v >= 1, ">= 1 or null"),
    ("trainer.max_steps", lambda v: v == -1 or v > 0, "> 0, or -1 (no step limit)"),
    ("trainer.accumulate_grad_batches", lambda v: v >= 1, ">= 1"),
    ("prealign.lr", lambda v: v > 0, "> 0"),
    ("prealign.warmup_steps", lambda v: v >= 0, ">= 0 (0: the warm-up is warmup_ratio's alone)"),
    ("prealign.max_duration", lambda v: v > 0, "> 0"),
    ("eval.max_new_tokens", lambda v: v >= 1, ">= 1"),
    ("eval.max_new_tokens_per_second", lambda v: v is None or v > 0, "> 0 or null (no duration limit)"),
    ("eval.normalizer", lambda v: v in NORMALIZERS, "one of " + ", ".join(NORMALIZERS)),
    ("eval.listening_clips", lambda v: v >= 2, ">= 2 (clips to swap audio between)"),
)


def validate_values(cfg: DictConfig) -> None:
    """Refuse numbers a run cannot work with (a negative learning rate, empty batches), naming the key."""
    for key, valid, what in _VALUE_RULES:
        value = OmegaConf.select(cfg, key)
        if not valid(value):  # nan fails every comparison, so it is refused too
            raise ConfigError(f"{key}={value}: must be {what}")


def validate_encoder_cache(cfg: DictConfig) -> None:
    """An encoder-output cache serves a frozen encoder only: refuse it with a trained one (LoRA or
    unfrozen layers), naming both keys, before anything loads."""
    from speechllm.encoders.trainable import trainable_option_keys

    encoder = cfg.model.encoder
    keys = trainable_option_keys(encoder.get("lora"), int(encoder.get("unfreeze_top_layers") or 0))
    if keys and cfg.data.encoder_cache:
        raise ConfigError(
            f"data.encoder_cache={cfg.data.encoder_cache} cannot serve a trained encoder "
            f"({' and '.join(keys)}): its outputs change with every step; remove one or the other"
        )


def validate_components(cfg: DictConfig, require_options: bool = False) -> None:
    """Each component's name is registered and each of its options is a constructor argument.

    ``require_options``: also every argument the constructor needs (a saved model's config is
    complete; a config being written may still lack its paths).
    """
    for kind, registry in COMPONENTS.items():
        options = OmegaConf.to_container(cfg.model[kind], resolve=True)
        assert isinstance(options, dict)
        name = options.pop("name", None)
        if name is None:
            raise ConfigError(f"model.{kind}.name is missing; valid {kind}s: {', '.join(registry.names())}")
        if name not in registry:
            raise ConfigError(
                f"model.{kind}.name: unknown {kind} {name!r}; valid: {', '.join(registry.names())}"
            )
        component = registry.get(name)
        valid = (
            build_context.config_options(component) if kind == "adapter" else constructor_options(component)
        )
        for key in options:
            if key not in valid:
                choices = ", ".join(sorted(valid))
                raise ConfigError(f"model.{kind}.{key}: unknown option of {kind} {name!r}; valid: {choices}")
        if kind == "adapter":
            missing = build_context.missing_options(component, options)
        else:
            missing = sorted(required_options(component) - set(options))
        if require_options and missing:
            raise ConfigError(f"model.{kind}: {kind} {name!r} needs {', '.join(missing)}")


def validate_prealign(cfg: DictConfig) -> None:
    """``prealign`` and ``model.prealign`` options, checked before any weights load.

    A pre-alignment stage needs the head: ``model.prealign`` is added (its defaults) when absent.
    """
    from speechllm.prealign.head import OBJECTIVES, PreAlignHead

    objective = str(cfg.prealign.objective)
    valid = ("none", "auto", *OBJECTIVES)
    if objective not in valid:
        raise ConfigError(f"prealign.objective: unknown {objective!r}; valid: {', '.join(valid)}")
    if cfg.prealign.init:
        if cfg.model.prealign is None:
            cfg.model.prealign = {}
    elif objective != "none":
        if cfg.prealign.steps <= 0 and not cfg.prealign.minutes:
            raise ConfigError("prealign: set prealign.steps or prealign.minutes (> 0), or objective: none")
        if cfg.model.prealign is None:
            cfg.model.prealign = {}
    if cfg.model.prealign is not None:
        options = OmegaConf.to_container(cfg.model.prealign, resolve=True)
        valid_keys = constructor_options(PreAlignHead) - {"dim", "vocab_size"}
        for key in options:  # type: ignore[union-attr]
            if key not in valid_keys:
                raise ConfigError(
                    f"model.prealign.{key}: unknown option; valid: {', '.join(sorted(valid_keys))}"
                )


def check_keys(node: Any, schema: Any, prefix: str, source: str) -> None:
    """Walk the raw YAML alongside the dataclass schema and reject unknown keys with a helpful error."""
    if not isinstance(node, dict) or not is_dataclass(schema):
        return
    schema_fields = {f.name: f for f in fields(schema)}
    for key, value in node.items():
        if key not in schema_fields:
            where = prefix.rstrip(".") or "the top level"
            raise ConfigError(
                f"{source}: unknown config key '{prefix}{key}'; valid keys at {where}: "
                f"{', '.join(sorted(schema_fields))}"
            )
        sub_schema = _dataclass_of(typing.get_type_hints(schema)[key])
        if is_dataclass(sub_schema):
            check_keys(value, sub_schema, f"{prefix}{key}.", source)
        elif key in ("train", "val", "test") and isinstance(value, list):
            for i, item in enumerate(value):
                check_keys(item, ManifestConfig, f"{prefix}{key}[{i}].", source)


def _dataclass_of(hint: Any) -> Any:
    """The dataclass of an ``X | None`` type hint (a section that may be unset), else the hint."""
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return hint
    members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return members[0] if len(members) == 1 and is_dataclass(members[0]) else hint


def _range_problem(value: Any, positive: bool) -> str | None:
    """Why ``value`` is not a ``[low, high]`` pair of numbers (``None``: it is, or it is unset)."""
    if value is None:
        return None
    if len(value) != 2 or not all(isinstance(v, (int, float)) and v == v for v in value):
        return f"must be [low, high], two numbers, not {list(value)}"
    if value[0] > value[1]:
        return f"must be [low, high] with low <= high, not {list(value)}"
    if positive and value[0] <= 0:
        return f"must be > 0, not {list(value)}"
    return None


def validate_augment(cfg: DictConfig) -> None:
    """``data.augment`` and ``data.spec_augment``: ranges, probabilities, noise colours, each error
    naming its key. SpecAugment masks cached encoder outputs, so it needs ``data.encoder_cache``."""
    augment = cfg.data.get("augment")
    if augment is not None:
        for key, positive in (("speed", True), ("volume_db", False), ("noise_snr_db", False)):
            problem = _range_problem(augment[key], positive)
            if problem:
                raise ConfigError(f"data.augment.{key}: {problem}")
        unknown = [c for c in augment.noise_colors if c not in NOISE_COLORS]
        if unknown or not augment.noise_colors:
            raise ConfigError(
                f"data.augment.noise_colors: {list(augment.noise_colors)}; "
                f"each one of {', '.join(NOISE_COLORS)}"
            )
        for key in ("reverb", "prob", "narrowband"):
            if not 0 <= augment[key] <= 1:
                raise ConfigError(f"data.augment.{key}={augment[key]}: must be a probability in [0, 1]")
        if augment.rooms < 1:
            raise ConfigError(f"data.augment.rooms={augment.rooms}: must be >= 1")
    spec = cfg.data.get("spec_augment")
    if spec is not None:
        for key in ("time_masks", "feature_masks"):
            if spec[key] < 0:
                raise ConfigError(f"data.spec_augment.{key}={spec[key]}: must be >= 0")
        for key in ("max_time_width", "max_feature_width"):
            if not 0 <= spec[key] <= 1:
                raise ConfigError(f"data.spec_augment.{key}={spec[key]}: must be a fraction in [0, 1]")
        if not cfg.data.encoder_cache:
            raise ConfigError(
                "data.spec_augment: masks cached encoder outputs, so it needs data.encoder_cache "
                "(or use data.augment, which augments the audio)"
            )
