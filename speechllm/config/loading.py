"""YAML (with ``extends:``) + ``key=value`` overrides → one validated OmegaConf config.

Relative paths in a file are relative to that file (:mod:`~speechllm.config.paths`); those in
overrides, to the working directory. An error names where the key came from: the file, or the
command line override that set it.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from speechllm.config.paths import anchor_paths, join_path
from speechllm.config.schema import Config
from speechllm.config.trainer_values import validate_trainer_values
from speechllm.config.validation import (
    check_keys,
    validate_augment,
    validate_components,
    validate_encoder_cache,
    validate_prealign,
    validate_values,
)
from speechllm.deprecations import upgrade_config, upgrade_override
from speechllm.errors import ConfigError


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> DictConfig:
    """Read YAML (optional), apply ``key=value`` overrides, validate, import ``imports:``.

    Raises:
        ConfigError: unknown key, wrong type, unknown component or component option; naming the
            file, or the command line override, that set it.
    """
    raw, config_dirs = _read_chain(Path(path)) if path is not None else (OmegaConf.create({}), [])
    source = str(path) if path is not None else "<overrides>"
    overrides = [upgrade_override(item) for item in overrides or []]
    for item in overrides:  # each alone, so that an error names the one at fault
        where = f"command line override {item!r}"
        try:
            single = OmegaConf.from_dotlist([item])
        except OmegaConfBaseException as err:
            raise ConfigError(f"{where}: not a key=value override ({_message(err)})") from None
        check_keys(OmegaConf.to_container(single), Config, prefix="", source=where)
    if overrides:
        raw = OmegaConf.merge(raw, OmegaConf.from_dotlist(overrides))
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Config), raw)
    except OmegaConfBaseException as err:
        item = _override_for(str(getattr(err, "full_key", "") or ""), overrides)
        where = f"command line override {item!r}" if item else source
        raise ConfigError(f"{where}: {_message(err)}") from None
    import_user_modules(list(cfg.imports), config_dirs)
    try:
        validate_components(cfg)
        validate_prealign(cfg)
        validate_values(cfg)
        validate_encoder_cache(cfg)
        validate_augment(cfg)
        validate_trainer_values(cfg)
        _check_prompt(cfg)
    except ConfigError as err:
        item = _override_for(_key_of(str(err)), overrides)
        if item is None:
            raise
        raise ConfigError(f"command line override {item!r}: {err}") from None
    return cfg  # type: ignore[return-value]


def _check_prompt(cfg: DictConfig) -> None:
    """The prompt's own checks, before the LLM loads."""
    prompt = cfg.model["llm"].get("prompt")
    if not prompt:
        return
    from speechllm.llms.prompts import PromptConfig

    try:
        PromptConfig(**OmegaConf.to_container(prompt, resolve=True))  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model.llm: prompt: {err}") from None


def _key_of(message: str) -> str:
    """The config key an error message starts with (``model.adapter.kernel: unknown option``)."""
    found = re.match(r"([A-Za-z_][\w.\[\]]*)\s*[:=]", message)
    return found.group(1) if found else ""


def _override_for(key: str, overrides: Sequence[str]) -> str | None:
    """The last override that set ``key``, a section holding it, or a key inside it."""
    if not key:
        return None
    for item in reversed(overrides):
        name = item.partition("=")[0].lstrip("+~")
        if key == name or key.startswith(name + ".") or name.startswith(key + "."):
            return item
    return None


def _message(err: OmegaConfBaseException) -> str:
    """OmegaConf's message without the lines of internals it appends (``full_key: ...``)."""
    text = str(getattr(err, "msg", None) or err).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(err).__name__


def read_yaml(path: Path) -> DictConfig:
    """Load a YAML file; an ``extends: other.yaml`` key (relative to the file) is merged underneath.

    This keeps recipe configs short: a pair's ``st.yaml`` extends its ``asr.yaml``, which extends
    the shared paper settings, so each file shows only what differs. Each file's relative input
    paths are taken from its own folder (:func:`~speechllm.config.paths.anchor_paths`), and each
    file's keys are checked, naming the file.
    """
    return _read_chain(path)[0]


def _read_chain(path: Path, _seen: tuple[Path, ...] = ()) -> tuple[DictConfig, list[Path]]:
    """The merged config of ``path`` and its ``extends:`` bases, and their folders (``path``'s first)."""
    path = Path(join_path(".", str(path)))  # as written: `..` beside a symlink, not in its target
    real = path.resolve()
    if real in _seen:
        raise ConfigError(f"{path}: circular `extends` ({' -> '.join(map(str, _seen + (real,)))})")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        cfg = OmegaConf.load(path)
    except yaml.YAMLError as err:  # the parser's message carries line and column
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    except OmegaConfBaseException as err:
        raise ConfigError(f"{path}: {err}") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(
            f"{path}: a config is a mapping of keys (model:, data:, ...), not a {type(cfg).__name__}"
        )
    try:
        plain = upgrade_config(OmegaConf.to_container(cfg, resolve=False), str(path))  # type: ignore[arg-type]
    except ValueError as err:
        raise ConfigError(str(err)) from None
    base = plain.pop("extends", None)
    check_keys(plain, Config, prefix="", source=str(path))
    cfg = OmegaConf.create(anchor_paths(plain, path.parent))
    if base is None:
        return cfg, [path.parent]  # type: ignore[return-value]
    parent, parent_dirs = _read_chain(Path(join_path(path.parent, str(base))), _seen + (real,))
    return OmegaConf.merge(parent, cfg), [path.parent, *parent_dirs]  # type: ignore[return-value]


def import_user_modules(
    modules: list[str],
    config_dir: str | Path | Sequence[str | Path] | None = None,
    found_in: Mapping[str, str | Path] | None = None,
) -> None:
    """Import the user's modules, so that their components register (built-ins load by name).

    A module that is not importable as is is looked for next to a config file
    (``config_dir/name.py`` or a package ``config_dir/name/``; ``config_dir`` may list the folders
    of a config and its ``extends:`` bases), then in ``found_in[name]``: the directory a saved
    model recorded it was imported from (:func:`import_locations`; pass it only for a model
    directory the user trusts). The directory that holds it joins ``sys.path``.
    """
    if config_dir is None:
        folders: list[Path] = []
    elif isinstance(config_dir, (str, Path)):
        folders = [Path(config_dir)]
    else:
        folders = [Path(folder) for folder in config_dir]
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            top = name.split(".")[0]
            recorded = (found_in or {}).get(name)
            places = [*folders, *([Path(recorded)] if recorded is not None else [])]
            holder = next((d for d in places if err.name == top and _is_module_in(top, d)), None)
            if holder is None:
                hint = "is it on PYTHONPATH?"
                if recorded is not None and err.name == top:
                    hint = f"the model was trained with it from {recorded}, which no longer holds it; " + (
                        "put the directory that holds it on PYTHONPATH"
                    )
                raise ConfigError(f"imports: cannot import {name!r} ({err}); {hint}") from err
            # Appended, not prepended: the directory's other files never shadow installed modules.
            if str(holder.resolve()) not in sys.path:
                sys.path.append(str(holder.resolve()))
            importlib.import_module(name)
        except ImportError as err:
            raise ConfigError(f"imports: cannot import {name!r} ({err})") from err


def import_locations(modules: list[str]) -> dict[str, str]:
    """``{module: directory}``: the ``sys.path`` entry each imported module was loaded from.

    Saved with a model (``import_dirs:`` in its ``config.yaml``), so that loading it with trusted
    imports finds a module that sat next to the training config without PYTHONPATH. Modules not
    imported, or without a file (namespace packages), are left out.
    """
    locations = {}
    for name in modules:
        top = sys.modules.get(name.split(".")[0])
        file = getattr(top, "__file__", None)
        if file is None:
            continue
        path = Path(file).resolve()
        # a package's __init__.py sits one level deeper than a single-file module
        locations[name] = str(path.parent.parent if path.name == "__init__.py" else path.parent)
    return locations


def _is_module_in(name: str, directory: Path) -> bool:
    return (directory / f"{name}.py").is_file() or (directory / name / "__init__.py").is_file()


def plain_config(cfg: Any) -> dict[str, Any]:
    """A config section (an OmegaConf node or any JSON-like mapping) as a plain, resolved dict."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return cfg if isinstance(cfg, dict) else json.loads(json.dumps(cfg))
