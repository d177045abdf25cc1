"""Weight dtypes by the names configs use (``dtype: bfloat16``)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def resolve_dtype(name: str, what: str = "dtype", allowed: Iterable[str] = tuple(DTYPES)) -> torch.dtype:
    """``"bfloat16"`` → ``torch.bfloat16``; a name outside ``allowed`` is an error listing them.

    Args:
        what: what the dtype is for, for the message (``"encoder dtype"``).
    """
    allowed = tuple(allowed)
    if name not in allowed:
        raise ValueError(f"{what} {name!r} is not supported; valid: {', '.join(allowed)}")
    return DTYPES[name]
