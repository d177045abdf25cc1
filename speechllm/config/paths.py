"""Relative paths in a config file are relative to the folder of the file that names them.

So a config reads the same data from any working directory, and a file that ``extends:`` another
keeps the base's paths pointing where the base meant them. What is anchored (the paths a run
reads): ``extends:`` itself, ``data.{train,val,test}[].path``, ``data.encoder_cache``,
``prealign.init``, and the ``path`` of ``model.encoder`` / ``model.adapter`` / ``model.llm`` and
``eval.comet_model`` when they name a file or folder (they may also be a preset or hub name, so
only one that starts with ``./`` or ``../`` or exists beside the file is anchored). What a run
writes (``output_dir``, ``data.skip_report``) stays relative to the working directory, as
``--out`` on the command line does; overrides on the command line are relative to the working
directory too. ``..`` is taken as written: beside a symlinked folder, not inside its target.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Sections whose `path` option may be a preset or hub name instead of a file.
MODEL_PATH_SECTIONS = ("encoder", "adapter", "llm")


def join_path(base_dir: str | os.PathLike[str], value: str) -> str:
    """``value`` seen from ``base_dir``, normalised as written (``a/b/../c`` → ``a/c``)."""
    return os.path.normpath(os.path.join(base_dir, value))


def anchor_paths(raw: dict[str, Any], base_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Rewrite the relative input paths of one config file's mapping against ``base_dir`` (in place).

    A path that is absolute, starts with ``~`` or ``${`` (an interpolation), or is a URL
    (``scheme://``) is left as it is.
    """
    data = raw.get("data")
    if isinstance(data, dict):
        for split in ("train", "val", "test"):
            for item in data.get(split) or []:
                if isinstance(item, dict):
                    _anchor(item, "path", base_dir)
        _anchor(data, "encoder_cache", base_dir)
    prealign = raw.get("prealign")
    if isinstance(prealign, dict):
        _anchor(prealign, "init", base_dir)
    model = raw.get("model")
    if isinstance(model, dict):
        for section in MODEL_PATH_SECTIONS:
            if isinstance(model.get(section), dict):
                _anchor(model[section], "path", base_dir, only_local=True)
    evaluation = raw.get("eval")
    if isinstance(evaluation, dict):
        _anchor(evaluation, "comet_model", base_dir, only_local=True)
    return raw


def _anchor(
    section: dict[str, Any], key: str, base_dir: str | os.PathLike[str], only_local: bool = False
) -> None:
    value = section.get(key)
    if not isinstance(value, str) or not _is_relative_path(value):
        return
    joined = join_path(base_dir, value)
    # A bare name (`whisper-tiny.en`, `org/model`) is a preset or hub name unless it is on disk there.
    explicit = value in (".", "..") or value.startswith(("./", "../"))
    if only_local and not explicit and not os.path.exists(joined):
        return
    section[key] = joined


def _is_relative_path(value: str) -> bool:
    return bool(value) and not (Path(value).is_absolute() or value.startswith(("~", "${")) or "://" in value)
