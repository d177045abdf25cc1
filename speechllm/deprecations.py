"""Names retired in 0.2, still read for one release with a warning that names the new one.

Every retired name lives here (and in the two module shims, ``speechllm/alignment.py`` and
``speechllm/adapters/base.py``), so ``grep`` for an old name finds its one translation. Configs
(YAML, overrides and a saved model's ``config.yaml``), run directories, checkpoints and decoder and
preset names written before 0.2 keep working, with a warning.
"""

from __future__ import annotations

import warnings
from typing import Any

REMOVED_IN = "0.3"


class SpeechLLMDeprecationWarning(FutureWarning):
    """A retired name was used; shown by default (a ``FutureWarning``), since users write configs."""


# Config sections, as paths from the top of a training config (a model directory's config.yaml
# holds the ``model`` section itself, so the model's keys are also listed from there).
RETIRED_CONFIG_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("pretrain",): ("prealign",),
    ("model", "alignment"): ("model", "prealign"),
}
RETIRED_MODEL_KEYS: dict[str, str] = {"alignment": "prealign"}
RETIRED_DECODERS: dict[str, str] = {"alignment": "prealign"}
RETIRED_PRESETS: dict[str, str] = {
    f"tiny-{kind}": f"tiny-random-{kind}" for kind in ("whisper", "seamless", "llama", "mistral")
}
# Trained-parameter names (safetensors, Lightning checkpoints) of the pre-alignment head.
RETIRED_STATE_PREFIXES: dict[str, str] = {"alignment.": "prealign."}


def warn_retired(old: str, new: str, where: str = "") -> None:
    """A :class:`SpeechLLMDeprecationWarning` naming the retired and the new name (Python's default
    filter shows each message once per place it comes from)."""
    place = f"{where}: " if where else ""
    warnings.warn(
        f"{place}{old} is deprecated and will be removed in {REMOVED_IN}; use {new}",
        SpeechLLMDeprecationWarning,
        stacklevel=3,
    )


def upgrade_config(raw: dict[str, Any], source: str = "", model_only: bool = False) -> dict[str, Any]:
    """Rename retired sections of a plain config mapping in place (and return it).

    ``model_only``: ``raw`` is a model section (a saved model's ``config.yaml``).

    Raises:
        ValueError: both the retired and the new name are set (which one was meant is unclear).
    """
    renames = (
        {(old,): (new,) for old, new in RETIRED_MODEL_KEYS.items()} if model_only else RETIRED_CONFIG_KEYS
    )
    for old_path, new_path in renames.items():
        parent = raw
        for key in old_path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or old_path[-1] not in parent:
            continue
        old, new = ".".join(old_path), ".".join(new_path)
        if new_path[-1] in parent:
            raise ValueError(f"{source or 'config'}: both {old} (retired) and {new} are set; keep only {new}")
        warn_retired(f"the config key {old}", new, source)
        parent[new_path[-1]] = parent.pop(old_path[-1])
    return raw


def upgrade_override(item: str) -> str:
    """A ``key=value`` override, a retired section in its key renamed (``pretrain.steps=5``)."""
    key, sep, value = item.partition("=")
    for old_path, new_path in RETIRED_CONFIG_KEYS.items():
        old = ".".join(old_path)
        if key == old or key.startswith(old + "."):
            new = ".".join(new_path) + key[len(old) :]
            warn_retired(f"the config key {old}", ".".join(new_path), "command line")
            return new + sep + value
    return item


def decoder_name(name: str) -> str:
    """A decoder name, the retired ``alignment`` read as ``prealign``."""
    if name in RETIRED_DECODERS:
        warn_retired(f"the decoder {name!r}", repr(RETIRED_DECODERS[name]))
        return RETIRED_DECODERS[name]
    return name


def preset_name(name: str) -> str:
    """A model path, a retired tiny preset name read as its new name."""
    if name in RETIRED_PRESETS:
        warn_retired(f"the preset {name!r}", repr(RETIRED_PRESETS[name]))
        return RETIRED_PRESETS[name]
    return name


def upgrade_state_dict(state: dict[str, Any], prefix: str = "") -> None:
    """Rename retired parameter names (``<prefix>alignment.*``) in place."""
    for key in list(state):
        for old, new in RETIRED_STATE_PREFIXES.items():
            if key.startswith(prefix + old):
                state[prefix + new + key[len(prefix + old) :]] = state.pop(key)
