"""Lightning checkpoints for resuming: trainable parameters only, written atomically, loaded safely.

A resume checkpoint holds what training changes: the adapter (and LoRA) parameters, the optimizer
and scheduler states, the loop counters, the callbacks' states and the data module's state (the
lhotse sampler's position). Frozen encoder and LLM weights are rebuilt from their own paths, so a
checkpoint of an 8B-LLM run is megabytes, not gigabytes.

Files are written to a temporary file in the same directory, fsynced and renamed over the target
(``os.replace`` is atomic on POSIX), so a job killed mid-write leaves the previous checkpoint
intact. They are read with ``torch.load(weights_only=True)``: a checkpoint is data (tensors,
numbers, strings, containers), and a crafted pickle that would run code is refused.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from speechllm.io import atomic_write

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds objects that ``torch.load(weights_only=True)`` refuses to unpickle."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` that writes via temp file + fsync + rename and loads ``weights_only``.

    Remote paths (``s3://`` …) keep Lightning's own writer, which stages through fsspec.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with atomic_write(path) as tmp:
            torch.save(checkpoint, tmp)
        _fsync_directory(Path(path).parent)

    def load_checkpoint(
        self, path: Any, map_location: Callable | Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        # Whatever the caller asks, a resume checkpoint is data only.
        return load_checkpoint(path, map_location=map_location)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with a clear error for refused or missing files.

    Raises:
        FileNotFoundError: no file at ``path``.
        UnsafeCheckpointError: the pickle references objects outside torch's weights-only allow
            list (e.g. a ``__reduce__`` that would call ``os.system``); nothing was executed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"{path}: refused to load: it holds objects that are not plain tensors/containers "
            f"(weights_only=True). Only load checkpoints you trust with other tools. Details: {err}"
        ) from None


def checkpoint_callback(
    output_dir: str | Path, every_n_steps: int | None, save_top_k: int
) -> ModelCheckpoint:
    """Step checkpoints + ``last.ckpt`` under ``<output_dir>/checkpoints``.

    ``every_n_steps=None`` saves after each validation (or epoch when there is none).
    """
    return ModelCheckpoint(
        dirpath=str(Path(output_dir) / CHECKPOINT_DIR),
        filename="step={step}",
        auto_insert_metric_name=False,
        save_last=True,
        save_top_k=save_top_k,
        every_n_train_steps=every_n_steps,
    )


def resolve_resume(resume: str | None, output_dir: str | Path) -> str | None:
    """``None`` → no resume; ``"last"`` → ``<output_dir>/checkpoints/last.ckpt``; else a path.

    Raises:
        FileNotFoundError: the checkpoint does not exist.
    """
    if resume is None:
        return None
    path = Path(output_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT if resume == "last" else Path(resume)
    if not path.is_file():
        hint = " (no checkpoint was written in this output_dir yet)" if resume == "last" else ""
        raise FileNotFoundError(f"--resume: checkpoint not found: {path}{hint}")
    return str(path)


def _fsync_directory(directory: Path) -> None:
    # The rename itself is durable only once the directory entry is flushed.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
