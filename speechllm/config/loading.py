"""YAML (with ``extends:``) + ``key=value`` overrides → one validated OmegaConf config."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from speechllm.config.schema import Config
from speechllm.config.trainer_values import validate_trainer_values
from speechllm.config.validation import check_keys, validate_components, validate_prealign, validate_values
from speechllm.deprecations import upgrade_config, upgrade_override
from speechllm.errors import ConfigError


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> DictConfig:
    """Read YAML (optional), apply ``key=value`` overrides, validate, import ``imports:``.

    Raises:
        ConfigError: unknown key, wrong type, unknown component or component option.
    """
    raw = read_yaml(Path(path)) if path is not None else OmegaConf.create({})
    source = str(path) if path is not None else "<overrides>"
    try:
        if overrides:
            overrides = [upgrade_override(item) for item in overrides]
            raw = OmegaConf.merge(raw, OmegaConf.from_dotlist(overrides))
    except OmegaConfBaseException as err:
        raise ConfigError(f"bad override {overrides}: {err}") from None
    check_keys(OmegaConf.to_container(raw), Config, prefix="", source=source)
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Config), raw)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{source}: {err.msg if hasattr(err, 'msg') else err}") from None
    import_user_modules(list(cfg.imports), Path(path).parent if path is not None else None)
    validate_components(cfg)
    validate_prealign(cfg)
    validate_values(cfg)
    validate_trainer_values(cfg)
    prompt = cfg.model["llm"].get("prompt")
    if prompt:  # the prompt's own checks, before the LLM loads
        from speechllm.llms.prompts import PromptConfig

        try:
            PromptConfig(**OmegaConf.to_container(prompt, resolve=True))  # type: ignore[arg-type]
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{source}: {err}") from None
    return cfg  # type: ignore[return-value]


def read_yaml(path: Path, _seen: tuple[Path, ...] = ()) -> DictConfig:
    """Load a YAML file; an ``extends: other.yaml`` key (relative to the file) is merged underneath.

    This keeps recipe configs short: a pair's ``st.yaml`` extends its ``asr.yaml``, which extends
    the shared paper settings, so each file shows only what differs.
    """
    path = path.resolve()
    if path in _seen:
        raise ConfigError(f"{path}: circular `extends` ({' -> '.join(map(str, _seen + (path,)))})")
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
    cfg = OmegaConf.create(plain)
    base = cfg.pop("extends", None)
    if base is None:
        return cfg  # type: ignore[return-value]
    parent = read_yaml(path.parent / str(base), _seen + (path,))
    return OmegaConf.merge(parent, cfg)  # type: ignore[return-value]


def import_user_modules(
    modules: list[str],
    config_dir: str | Path | None = None,
    found_in: Mapping[str, str | Path] | None = None,
) -> None:
    """Import the user's modules, so that their components register (built-ins load by name).

    A module that is not importable as is is looked for next to the config file
    (``config_dir/name.py`` or a package ``config_dir/name/``), then in ``found_in[name]``: the
    directory a saved model recorded it was imported from (:func:`import_locations`; pass it only
    for a model directory the user trusts). The directory that holds it joins ``sys.path``.
    """
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            top = name.split(".")[0]
            recorded = (found_in or {}).get(name)
            places = [Path(d) for d in (config_dir, recorded) if d is not None]
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
