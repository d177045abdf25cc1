"""GPUs the planner knows: dense bf16 peak, memory, and an assumed hourly price.

Peaks are the vendors' dense (no sparsity) bf16 tensor-core figures for the SXM parts; prices
are an assumption for on-demand cloud GPUs in 2025 (they vary by provider by 2× or more: pass
``--price``).
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3


@dataclass(frozen=True)
class GPU:
    """A GPU model: ``tflops`` dense bf16 peak, ``memory_gib`` usable memory, ``price`` $/GPU-hour."""

    name: str
    tflops: float
    memory_gib: float
    price: float


GPUS: dict[str, GPU] = {
    gpu.name: gpu
    for gpu in (
        GPU("h100", 989.4, 80.0, 2.50),
        GPU("h200", 989.4, 141.0, 3.50),
        GPU("a100", 312.0, 80.0, 1.50),
        GPU("a100-40gb", 312.0, 40.0, 1.20),
        GPU("l40s", 362.1, 48.0, 1.00),
    )
}


def gpu_named(name: str) -> GPU:
    """The GPU called ``name`` (case-insensitive).

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    key = name.lower()
    if key not in GPUS:
        raise ValueError(f"unknown GPU {name!r}; known: {', '.join(GPUS)}")
    return GPUS[key]
