"""Checkpoint averaging: the mean of the trained parameters over a run's last k checkpoints.

Averaging the weights of the last few checkpoints of a run (Ultravox's and speechlmm's
``average_checkpoints``) smooths the noise of the final steps, often for a small gain at no
training cost. Only trained parameters are averaged (adapter, LoRA, pre-alignment head, a
trainable encoder's layers): the checkpoints hold nothing else (:mod:`speechllm.lightning.checkpoint`).

The result is an ordinary model directory (``trainable.safetensors`` + ``config.yaml``, the run's
model config), so ``evaluate``, ``transcribe`` and ``export`` take it as they take ``<run>/model``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from speechllm.errors import CheckpointError
from speechllm.io import atomic_write
from speechllm.lightning.checkpoint import CHECKPOINT_DIR, load_checkpoint
from speechllm.lightning.module import clean_name
from speechllm.model_dir import MODEL_CONFIG, TRAINED_WEIGHTS, check_model_dir

_STEP = re.compile(r"step=(\d+)")


def trained_tensors(path: str | Path) -> dict[str, Tensor]:
    """The trained parameters a file holds, named as ``SpeechLLM.trainable_state_dict`` names them.

    ``path``: a Lightning checkpoint (``*.ckpt``, its ``state_dict`` of ``model.*`` keys) or a
    ``trainable.safetensors``.

    Raises:
        FileNotFoundError: no file; CheckpointError: not a checkpoint this library wrote.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        try:
            return load_file(str(path))
        except Exception as err:  # safetensors raises its own error type, OSError or ValueError
            raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    checkpoint = load_checkpoint(path)
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: no `state_dict` of trained parameters (not a speechllm checkpoint?)")
    return {clean_name(k).removeprefix("model."): v for k, v in state.items()}


def last_checkpoints(run_dir: str | Path, k: int) -> list[Path]:
    """The ``k`` step checkpoints of ``run_dir/checkpoints`` with the highest steps, oldest first.

    ``last.ckpt`` is left out: it repeats the newest step checkpoint (or a later state Lightning
    saved at the end), and counting it twice would weight it double.

    Raises:
        FileNotFoundError: no step checkpoint; CheckpointError: fewer than ``k`` of them.
    """
    folder = Path(run_dir) / CHECKPOINT_DIR
    found = []
    for path in folder.glob("*.ckpt"):
        match = _STEP.search(path.name)
        if match is not None:
            found.append((int(match.group(1)), path))
    if not found:
        raise FileNotFoundError(f"{folder}: no step checkpoints (step=N.ckpt) to average")
    if len(found) < k:
        raise CheckpointError(
            f"{folder}: {len(found)} step checkpoint(s), fewer than the {k} asked for; train with "
            f"trainer.save_top_k={k} (or -1: keep all) to keep that many"
        )
    return [path for _, path in sorted(found)[-k:]]


def average_tensors(paths: Sequence[str | Path]) -> dict[str, Tensor]:
    """The element-wise mean of every trained tensor over ``paths`` (each file weighs the same).

    Floating-point tensors are summed in float64 and cast back to their dtype; other tensors (ids,
    counters) must be equal in every file and are taken as they are.

    Raises:
        ValueError: no path.
        CheckpointError: a file's keys, shapes or dtypes differ from the first file's (naming both).
    """
    if not paths:
        raise ValueError("average_tensors: no checkpoint given")
    first = Path(paths[0])
    reference = trained_tensors(first)
    sums = {k: v.double() if v.is_floating_point() else v for k, v in reference.items()}
    for other in map(Path, paths[1:]):
        tensors = trained_tensors(other)
        missing, extra = sorted(set(reference) - set(tensors)), sorted(set(tensors) - set(reference))
        if missing or extra:
            raise CheckpointError(
                f"{other}: its trained parameters differ from {first}'s (missing: {missing[:5]}, "
                f"unexpected: {extra[:5]}); average checkpoints of one run only"
            )
        for key, tensor in tensors.items():
            ref = reference[key]
            if tensor.shape != ref.shape or tensor.dtype != ref.dtype:
                raise CheckpointError(
                    f"{other}: {key} is {tuple(tensor.shape)} {tensor.dtype}, "
                    f"{first} has {tuple(ref.shape)} {ref.dtype}"
                )
            if ref.is_floating_point():
                sums[key] += tensor.double()
            elif not torch.equal(tensor, ref):
                raise CheckpointError(f"{other}: {key} (not a float tensor) differs from {first}'s")
    n = len(paths)
    return {
        k: (v / n).to(reference[k].dtype) if reference[k].is_floating_point() else v for k, v in sums.items()
    }


def average_checkpoints(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    last: int = 5,
    checkpoints: Sequence[str | Path] | None = None,
) -> Path:
    """Average a training run's last ``last`` step checkpoints into a model directory.

    Args:
        run_dir: a ``speechllm train`` output directory (``checkpoints/`` and ``model/config.yaml``,
            the model config every checkpoint was trained with).
        out_dir: where to write the model directory (default ``<run_dir>/model_avg<last>``).
        last: how many of the newest step checkpoints to average.
        checkpoints: average these files instead (checkpoints or ``trainable.safetensors``).

    Returns:
        The model directory written: ``SpeechLLM.from_pretrained`` loads it.

    Raises:
        FileNotFoundError: no ``<run_dir>/model`` or no checkpoint; CheckpointError: see
        :func:`last_checkpoints` and :func:`average_tensors`.
    """
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    model_dir = check_model_dir(run_dir / "model", what="the run's model config")
    paths = list(checkpoints) if checkpoints else last_checkpoints(run_dir, last)
    averaged = average_tensors(paths)
    expected = set(trained_tensors(model_dir / TRAINED_WEIGHTS))  # the tensors must fit the run's model
    if set(averaged) != expected:
        missing, extra = sorted(expected - set(averaged)), sorted(set(averaged) - expected)
        raise CheckpointError(
            f"{paths[0]}: its trained parameters are not those of {model_dir / TRAINED_WEIGHTS} "
            f"(missing: {missing[:5]}, unexpected: {extra[:5]})"
        )
    out = Path(out_dir) if out_dir is not None else run_dir / f"model_avg{len(paths)}"
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / TRAINED_WEIGHTS) as tmp:
        tensors = {k: v.contiguous() for k, v in averaged.items()}
        save_file(tensors, str(tmp), metadata={"format": "pt", "library": "speechllm"})
    # The model config, imports and their directories as training saved them.
    with atomic_write(out / MODEL_CONFIG) as tmp:
        shutil.copyfile(model_dir / MODEL_CONFIG, tmp)
    return out
