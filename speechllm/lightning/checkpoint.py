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
import shutil
import socket
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from speechllm.config import ConfigError
from speechllm.errors import CheckpointError, SpeechLLMError
from speechllm.io import atomic_write, remove_stale_temporaries
from speechllm.model import TRAINED_WEIGHTS

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
PREALIGN_DIR = "prealign"  # the pre-alignment stage's own output_dir inside the run's
PREALIGN_DONE = "prealign.json"  # written when that stage finished


class UnsafeCheckpointError(SpeechLLMError, RuntimeError):
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
        CheckpointError: it is not a complete checkpoint archive.
    """
    if resume is None:
        return None
    path = Path(output_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT if resume == "last" else Path(resume)
    if not path.is_file():
        hint = " (no checkpoint was written in this output_dir yet)" if resume == "last" else ""
        raise FileNotFoundError(f"--resume: checkpoint not found: {path}{hint}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut-short one has no index
        raise CheckpointError(f"--resume: {path} is not a readable checkpoint (truncated or corrupt)")
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


def previous_run_files(output_dir: str | Path) -> list[Path]:
    """What a finished or interrupted run left in ``output_dir`` that a new run would mix with."""
    out = Path(output_dir)
    found = [out / "model" / TRAINED_WEIGHTS] if (out / "model" / TRAINED_WEIGHTS).is_file() else []
    for stage in (out, out / PREALIGN_DIR):
        found += sorted((stage / CHECKPOINT_DIR).glob("*.ckpt"))
    if (out / PREALIGN_DIR / PREALIGN_DONE).is_file():
        found.append(out / PREALIGN_DIR / PREALIGN_DONE)
    return found


def lock_output_dir(output_dir: str | Path) -> None:
    """Hold ``<output_dir>/.speechllm.lock`` for the rest of this process: one run per directory.

    A second run into the same ``output_dir`` (another process, on any machine sharing the file
    system's locks) fails at once, naming the run that holds it, instead of both writing there. The
    lock is the operating system's (``flock``), so a killed run leaves none behind; a finished one
    gives it up (:func:`release_output_dir`). A process that already holds it takes it again.
    No-op where ``fcntl`` is missing (Windows).

    Raises:
        ConfigError: another process holds the lock.
    """
    try:
        import fcntl
    except ImportError:
        return
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    key = str(out.resolve())
    if key in _HELD_LOCKS:
        return
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise ConfigError(
            f"output_dir {out} is in use by another run ({holder}); wait for it to finish, or train "
            "into another output_dir"
        ) from None
    os.ftruncate(fd, 0)
    os.write(
        fd,
        f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(),
    )
    _HELD_LOCKS[key] = fd


def release_output_dir(output_dir: str | Path) -> None:
    """Give up this process's lock on ``output_dir`` (the run is over); a no-op if it holds none."""
    fd = _HELD_LOCKS.pop(str(Path(output_dir).resolve()), None)
    if fd is not None:
        os.close(fd)  # closing the file releases the flock


LOCK_FILE = ".speechllm.lock"
_HELD_LOCKS: dict[str, int] = {}  # output_dir → the open, locked file (until release_output_dir)


class TrainingInterrupted(SpeechLLMError, RuntimeError):
    """The run was stopped by SIGTERM (``timeout``, a scheduler's preemption) after saving its state."""


class SaveOnSigterm(L.Callback):
    """On SIGTERM, save ``<default_root_dir>/checkpoints/last.ckpt`` before the run stops.

    Lightning stops the loops at the next batch boundary with ``SIGTERMException``, a
    ``SystemExit`` without a code: the process would exit 0, and a script running
    ``train && evaluate`` would go on without a model. The training functions turn it into
    :class:`TrainingInterrupted` (exit status 2, one line); this callback makes sure ``--resume
    last`` continues from the step the signal stopped (every rank saves together, as Lightning's
    own checkpointing does). SLURM's requeue signal keeps its Lightning handling.
    """

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException) and trainer.state.fn == "fit":
            path = Path(trainer.default_root_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT
            trainer.save_checkpoint(path)
            log.warning("SIGTERM at step %d: saved %s", trainer.global_step, path)


def check_output_dir(output_dir: str | Path, resume: str | None, overwrite: bool) -> None:
    """A new run locks its ``output_dir`` (:func:`lock_output_dir`) and refuses one holding another
    run's model or checkpoints.

    Lightning would otherwise keep the old ``last.ckpt`` beside a new ``last-v1.ckpt`` (and a later
    ``--resume last`` would pick the old run), and the old model would be overwritten unasked.
    ``resume`` continues that run instead; ``overwrite`` deletes its model, checkpoints and
    pre-alignment stage first (logs are versioned and stay). Only global rank 0 checks and deletes:
    other ranks start while it is already training.

    Raises:
        ConfigError: naming the files, unless ``resume`` or ``overwrite``.
    """
    from lightning.pytorch.utilities import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) != 0:
        return
    lock_output_dir(output_dir)  # before anything is checked or removed: one run at a time
    remove_stale_temporaries(output_dir)  # a killed run's half-written checkpoint or export
    if resume is not None:
        return
    found = previous_run_files(output_dir)
    if not found:
        return
    if not overwrite:
        shown = ", ".join(str(path) for path in found[:3]) + (
            f" and {len(found) - 3} more" if len(found) > 3 else ""
        )
        raise ConfigError(
            f"output_dir {output_dir} holds another run ({shown}); continue it with --resume last, "
            "or replace it with --overwrite"
        )
    out = Path(output_dir)
    for stale in (out / "model", out / CHECKPOINT_DIR, out / PREALIGN_DIR):
        if stale.exists():
            shutil.rmtree(stale)
    log.warning("--overwrite: removed the previous run's model and checkpoints from %s", out)
