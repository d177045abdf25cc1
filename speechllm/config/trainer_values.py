"""Checks of the ``trainer:`` options that Lightning reads, run before any weights load.

Lightning refuses a bad ``max_time`` or ``limit_train_batches`` only when the ``Trainer`` is built,
after the encoder and LLM have loaded (minutes for real models); these checks refuse it at once,
naming the key and what is valid. Unknown keys are refused by name earlier
(:func:`speechllm.config.validation.check_keys`).
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from speechllm.errors import ConfigError

DURATION = re.compile(r"(\d+):(\d\d):(\d\d):(\d\d)")
DURATION_KEYS = ("weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds")
CLIP_ALGORITHMS = ("norm", "value")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count_or_fraction(value: Any) -> bool:
    """Lightning's ``limit_*_batches`` / ``overfit_batches``: batches (int ≥ 0) or a fraction."""
    return (_is_int(value) and value >= 0) or (isinstance(value, float) and 0.0 <= value <= 1.0)


# key → (test of a value that is not None, what is valid)
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "max_epochs": (lambda v: _is_int(v) and v >= -1, "an integer >= 0, -1 (no epoch limit) or null"),
    "min_steps": (lambda v: _is_int(v) and v >= 0, "an integer >= 0 or null"),
    "min_epochs": (lambda v: _is_int(v) and v >= 0, "an integer >= 0 or null"),
    "fast_dev_run": (
        lambda v: isinstance(v, bool) or (_is_int(v) and v >= 0),
        "true, false or a number of batches >= 0",
    ),
    "limit_train_batches": (_count_or_fraction, "a number of batches (int >= 0) or a fraction in [0.0, 1.0]"),
    "limit_val_batches": (_count_or_fraction, "a number of batches (int >= 0) or a fraction in [0.0, 1.0]"),
    "limit_test_batches": (_count_or_fraction, "a number of batches (int >= 0) or a fraction in [0.0, 1.0]"),
    "overfit_batches": (_count_or_fraction, "a number of batches (int >= 0) or a fraction in [0.0, 1.0]"),
    "num_sanity_val_steps": (lambda v: _is_int(v) and v >= -1, "an integer >= 0, -1 (all) or null"),
    "gradient_clip_val": (lambda v: _is_number(v) and v >= 0, "a number >= 0 or null (no clipping)"),
    "gradient_clip_algorithm": (lambda v: v in CLIP_ALGORITHMS, f"one of {', '.join(CLIP_ALGORITHMS)}"),
}


def parse_max_time(value: Any) -> datetime.timedelta | None:
    """``trainer.max_time`` as a duration: ``"DD:HH:MM:SS"`` or a mapping of timedelta keys.

    Raises:
        ConfigError: any other value (an unquoted ``1:00:00:00`` is a YAML base-60 number).
    """
    if value is None:
        return None
    if isinstance(value, DictConfig):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, str):
        match = DURATION.fullmatch(value.strip())
        if match is None:
            raise ConfigError(
                f"trainer.max_time={value!r}: write a duration as 'DD:HH:MM:SS' (e.g. '00:02:30:00')"
            )
        days, hours, minutes, seconds = map(int, match.groups())
        duration = datetime.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    elif isinstance(value, Mapping):
        unknown = sorted(set(value) - set(DURATION_KEYS))
        if unknown or not all(_is_number(v) for v in value.values()):
            raise ConfigError(
                f"trainer.max_time={value}: a mapping of numbers with keys among {', '.join(DURATION_KEYS)}"
            )
        duration = datetime.timedelta(**value)
    else:
        raise ConfigError(
            f"trainer.max_time={value!r}: write it as a quoted 'DD:HH:MM:SS' string or a mapping like "
            "{hours: 1, minutes: 30} (unquoted, YAML reads 1:00:00:00 as the number 216000)"
        )
    if duration.total_seconds() <= 0:
        raise ConfigError(f"trainer.max_time={value!r}: must be longer than 0 s")
    return duration


def validate_trainer_values(cfg: DictConfig) -> None:
    """Refuse a ``trainer:`` value that Lightning would refuse later, naming the key."""
    trainer = cfg.trainer
    parse_max_time(trainer.get("max_time"))
    for key, (valid, what) in _RULES.items():
        value = trainer.get(key)
        if value is not None and not valid(value):
            raise ConfigError(f"trainer.{key}={value!r}: must be {what}")
