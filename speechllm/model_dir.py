"""A saved model directory: ``trainable.safetensors`` (trained parameters only) + ``config.yaml``.

Model directories travel (shared, downloaded), so reading one treats it as untrusted input: every
problem is a :class:`~speechllm.errors.CheckpointError` naming the file, never a crash deep in a
library, and the user modules it lists under ``imports:`` are not imported unless the caller opts
in (``trust_imports``, after transformers' ``trust_remote_code``): importing a module runs its code.
``import_dirs:`` records the directory each was imported from at training time, so that a trusted
load finds a module that sat next to the training config without PYTHONPATH.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from speechllm.config import Config, ConfigError, import_locations, validate_components
from speechllm.deprecations import upgrade_config
from speechllm.errors import CheckpointError, SpeechLLMError

TRAINED_WEIGHTS = "trainable.safetensors"
MODEL_CONFIG = "config.yaml"
INSIDE = "./"  # a component path that starts with it is relative to the model directory


class UntrustedImportsError(SpeechLLMError, PermissionError):
    """A model directory lists modules to import and the caller did not trust it to."""


@dataclass
class SavedModel:
    """What a model directory holds, checked: the model config, its imports, the trained tensors.

    ``import_dirs``: where each import was found at training time; filled only when every import
    is trusted (a directory named by the file is as untrusted as the file).
    """

    directory: Path
    model_config: DictConfig
    imports: list[str]
    tensors: dict[str, Any]
    import_dirs: dict[str, str] = field(default_factory=dict)


def write_model_dir(directory: str | Path, tensors: dict[str, Any], imports: list[str], config: Any) -> Path:
    """Write both files atomically (a crash never leaves a half-written model)."""
    from safetensors.torch import save_file

    from speechllm.io import atomic_write

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_write(directory / TRAINED_WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "library": "speechllm"})
    with atomic_write(directory / MODEL_CONFIG) as tmp:
        saved = {"imports": list(imports), "import_dirs": import_locations(list(imports)), "model": config}
        tmp.write_text(OmegaConf.to_yaml(OmegaConf.create(saved)))
    return directory


def read_model_dir(
    directory: str | Path,
    trust_imports: bool | list[str] = False,
    overrides: dict[str, Any] | None = None,
) -> SavedModel:
    """Read and check a model directory before anything is built from it.

    Args:
        directory: a :func:`write_model_dir` (``SpeechLLM.save_pretrained``) directory.
        trust_imports: ``True`` imports whatever the directory lists; a list trusts those modules
            (the ones a user named themselves); ``False`` trusts none.
        overrides: model config keys to replace.

    Raises:
        FileNotFoundError: a file is missing.
        CheckpointError: a file is unreadable or malformed (naming it and what is wrong).
        UntrustedImportsError: ``imports:`` lists modules not trusted (naming them).
    """
    directory = check_model_dir(directory)
    model_config, imports, import_dirs = _read_config(directory / MODEL_CONFIG, overrides)
    _paths_inside(model_config, directory)
    trusted = set(imports) if trust_imports is True else set(trust_imports or [])
    untrusted = [name for name in imports if name not in trusted]
    if untrusted:
        named = [f"{name} (from {import_dirs[name]})" if name in import_dirs else name for name in untrusted]
        raise UntrustedImportsError(
            f"{directory / MODEL_CONFIG} asks to import {', '.join(named)}: code that would run; "
            "if you trust this model directory, pass --trust-imports (trust_imports=True)"
        )
    tensors = _read_tensors(directory / TRAINED_WEIGHTS)
    # A list trusts module names the user gave, not the directories this file names.
    return SavedModel(directory, model_config, imports, tensors, import_dirs if trust_imports is True else {})


def _paths_inside(model: DictConfig, directory: Path) -> None:
    """A component ``path`` written ``./name`` (an export's ``./llm``) is read inside ``directory``,
    wherever the directory was moved to."""
    for kind in ("encoder", "llm"):
        section = model.get(kind)
        path = section.get("path") if isinstance(section, DictConfig) else None
        if isinstance(path, str) and path.startswith(INSIDE):
            section.path = str(directory.resolve() / path[len(INSIDE) :])


def check_model_dir(directory: str | Path, what: str = "") -> Path:
    """``directory`` holds both files of a model directory (nothing is read yet).

    ``what`` names where the path came from (``prealign.init``) in the message.

    Raises:
        FileNotFoundError: a file is missing; a training run's folder points at its ``model/``.
    """
    directory = Path(directory)
    for needed in (MODEL_CONFIG, TRAINED_WEIGHTS):
        if not (directory / needed).is_file():
            where = f"{what}: " if what else ""
            raise FileNotFoundError(
                f"{where}{directory / needed} not found: not a speechllm model directory"
                f"{_model_hint(directory)}"
            )
    return directory


def _model_hint(directory: Path) -> str:
    """``; did you mean RUN/model?`` where ``directory`` is a training run (or the pre-alignment
    stage's folder) holding the model directory one level down."""
    inner = directory / "model"
    if (inner / MODEL_CONFIG).is_file() and (inner / TRAINED_WEIGHTS).is_file():
        return f"; did you mean {inner}?"
    return ""


def _read_config(
    path: Path, overrides: dict[str, Any] | None
) -> tuple[DictConfig, list[str], dict[str, str]]:
    try:
        saved = OmegaConf.load(path)
    except (yaml.YAMLError, OmegaConfBaseException, UnicodeDecodeError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable model config ({_first_line(err)})") from None
    if not isinstance(saved, DictConfig) or not isinstance(saved.get("model"), DictConfig):
        raise CheckpointError(f"{path}: expected a mapping with a `model:` section")
    interpolated = _interpolations(OmegaConf.to_container(saved, resolve=False))
    if interpolated:  # ${oc.env:...} would read the environment into the model and run.json
        key, value = interpolated[0]
        raise CheckpointError(
            f"{path}: {key} holds the interpolation {value[:80]!r}; a saved model's config holds plain "
            "values (save_pretrained writes them resolved), so interpolations are not evaluated"
        )
    try:  # a model saved before 0.2 names the pre-alignment head ``alignment``
        saved = OmegaConf.create(upgrade_config(OmegaConf.to_container(saved), str(path)))  # type: ignore[arg-type]
    except ValueError as err:
        raise CheckpointError(str(err)) from None
    imports = saved.get("imports") or []
    if not isinstance(imports, ListConfig | list) or not all(isinstance(m, str) for m in imports):
        raise CheckpointError(f"{path}: `imports:` must be a list of module names")
    import_dirs = saved.get("import_dirs") or {}  # absent in older model directories
    if not isinstance(import_dirs, DictConfig | dict) or not all(
        isinstance(d, str) for d in import_dirs.values()
    ):
        raise CheckpointError(f"{path}: `import_dirs:` must map module names to directories")
    try:
        model = OmegaConf.merge(saved.model, overrides) if overrides else saved.model
        checked = OmegaConf.merge(OmegaConf.structured(Config), {"model": model})
    except (OmegaConfBaseException, ValueError) as err:
        raise CheckpointError(f"{path}: invalid model config ({_first_line(err)})") from None
    # Checked on the file's own keys: the schema's defaults would fill in a section cut short.
    for kind in ("encoder", "adapter", "llm"):
        section = model.get(kind)
        if not isinstance(section, DictConfig) or not isinstance(section.get("name"), str):
            raise CheckpointError(f"{path}: model.{kind} needs a `name` (the file is incomplete)")
    if not imports:  # a user component's options are only known once its module is imported
        try:
            validate_components(checked, require_options=True)
        except ConfigError as err:
            raise CheckpointError(f"{path}: {err}") from None
    return model, [str(m) for m in imports], {str(k): str(v) for k, v in import_dirs.items()}


def _interpolations(node: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``(key, value)`` of every string holding an OmegaConf interpolation (``${...}``)."""
    if isinstance(node, dict):
        return [found for k, v in node.items() for found in _interpolations(v, f"{prefix}{k}.")]
    if isinstance(node, list):
        return [found for i, v in enumerate(node) for found in _interpolations(v, f"{prefix}{i}.")]
    return [(prefix.rstrip("."), node)] if isinstance(node, str) and "${" in node else []


def _read_tensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error type, OSError, or ValueError
        raise CheckpointError(f"{path}: not a readable safetensors file ({_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return (text[:300] or type(err).__name__).rstrip()
