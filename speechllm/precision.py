"""Precision that fits the hardware: ``auto`` resolves to bf16 where the device runs it natively.

bf16 halves memory traffic and, on hardware with bf16 units, doubles matmul throughput; on
hardware without them it is emulated and can be ~90× slower than float32 (a 512×512 matmul on an
AVX2-only CPU: 0.9 GFLOP/s against 83.7, docs/precision.md). So ``auto`` (training, the encoder
cache, decoding) asks the device:

- CUDA: bf16 when the GPU has bf16 units (compute capability 8.0 and newer: A100, H100, RTX 30xx+);
- CPU: bf16 when the CPU flags show AVX-512 BF16 or AMX-BF16 (x86) or the BF16 extension (Arm);
  otherwise a short matmul probe decides (bf16 at least as fast as float32);
- anything else (Apple MPS, XPU): float32.

``SPEECHLLM_BF16`` forces the branch ``auto`` takes: ``1`` (or ``bf16``) bf16, ``0`` (or
``fp32``) float32; unset or ``auto`` asks the device. An explicit precision is never overridden.
The choice and its reason are logged once per device type and process.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

ENV_VAR = "SPEECHLLM_BF16"
_FORCE_BF16 = ("1", "bf16", "bfloat16", "true", "yes")
_FORCE_FP32 = ("0", "fp32", "float32", "32", "false", "no")
_X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class BF16Support:
    """Whether ``auto`` takes the bf16 branch on a device type, and why (for logs and run dirs)."""

    device: str
    bf16: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_bf16_flags() -> list[str]:
    """The CPU's native bf16 flags (``avx512_bf16``, ``amx_bf16``, Arm ``bf16``); empty if none."""
    flags: set[str] = set()
    for line in _cpuinfo().splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    found = [flag for flag in _X86_BF16_FLAGS if flag in flags]
    if platform.machine().lower() in ("aarch64", "arm64") and "bf16" in flags:
        found.append("bf16")
    return found


def matmul_probe(size: int = 256, repeats: int = 3) -> tuple[float, float]:
    """Seconds of one ``size``×``size`` matmul in float32 and in bf16 (best of ``repeats``, CPU)."""
    times = []
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(size, size).to(dtype)
        b = torch.randn(size, size).to(dtype)
        a @ b  # warm-up: oneDNN builds its kernel on first use
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        times.append(best)
    return times[0], times[1]


def bf16_support(device: str | torch.device = "cpu") -> BF16Support:
    """Whether ``auto`` takes the bf16 branch on ``device`` (see the module docstring).

    Decided once per device type and value of ``SPEECHLLM_BF16`` in a process (the probe runs once).
    """
    return _bf16_support(torch.device(device).type, os.environ.get(ENV_VAR, "auto").strip().lower())


@functools.cache
def _bf16_support(device_type: str, forced: str) -> BF16Support:
    inherited = os.environ.get(_DECIDED_VAR + device_type.upper())
    if forced in ("", "auto") and inherited:  # decided by the process that started this one
        bf16, _, reason = inherited.partition("|")
        return BF16Support(device_type, bf16 == "1", reason)
    support = _decide(device_type, forced)
    branch = "bf16" if support.bf16 else "float32"
    # debug: the training and decoding lines say which precision runs and why (this is the why)
    log.debug("precision auto on %s: %s (%s)", device_type, branch, support.reason)
    # DDP ranks and data-loader workers started from here inherit the decision: a timing probe
    # run again in each could disagree, and ranks must build the same model.
    os.environ[_DECIDED_VAR + device_type.upper()] = f"{int(support.bf16)}|{support.reason}"
    return support


_DECIDED_VAR = "SPEECHLLM_BF16_DECIDED_"


def _decide(device_type: str, forced: str) -> BF16Support:
    if forced in _FORCE_BF16:
        return BF16Support(device_type, True, f"forced by {ENV_VAR}={forced}")
    if forced in _FORCE_FP32:
        return BF16Support(device_type, False, f"forced by {ENV_VAR}={forced}")
    if forced not in ("", "auto"):
        raise ValueError(f"{ENV_VAR}={forced!r}; valid: 1/bf16, 0/fp32, auto")
    if device_type == "cuda":
        if not torch.cuda.is_available():
            return BF16Support(device_type, False, "CUDA is not available")
        name = torch.cuda.get_device_name()
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return BF16Support(device_type, True, f"{name} has bf16 units")
        return BF16Support(device_type, False, f"{name} has no bf16 units (compute capability < 8.0)")
    if device_type != "cpu":
        return BF16Support(device_type, False, f"no native bf16 check for {device_type}: float32")
    cpu = cpu_name()
    flags = cpu_bf16_flags()
    if flags:
        return BF16Support(device_type, True, f"{cpu} has {' and '.join(flags)}")
    fp32_s, bf16_s = matmul_probe()
    ratio = bf16_s / fp32_s
    if ratio <= 1.0:
        return BF16Support(device_type, True, f"{cpu}: a bf16 matmul ran {1 / ratio:.1f}× as fast as fp32")
    why = f"no avx512_bf16/amx_bf16; a bf16 matmul ran {ratio:.1f}× slower than fp32"
    return BF16Support(device_type, False, f"{cpu} has no native bf16 ({why})")


@functools.cache
def _cpuinfo() -> str:
    path = Path("/proc/cpuinfo")
    return path.read_text(errors="replace") if path.is_file() else ""


# -- the three places that take ``auto`` -------------------------------------------------------
def resolve_decode_precision(precision: str, device: str | torch.device) -> tuple[str, str]:
    """Decoding precision ``auto`` | ``bf16`` | ``32`` → (``"bf16"`` or ``"32"``, reason).

    ``bf16`` decodes under bf16 autocast (frozen weights as stored); ``32`` in float32 throughout.
    """
    if precision in ("bf16", "32"):
        return precision, "explicit"
    if precision != "auto":
        raise ValueError(f"decoding precision {precision!r}; valid: auto, bf16, 32")
    support = bf16_support(device)
    return ("bf16" if support.bf16 else "32"), support.reason


def resolve_training_precision(
    precision: str, device: str | torch.device, frozen_dtype_ok: bool, fsdp: bool
) -> tuple[str, str]:
    """``trainer.precision`` → (a concrete precision, reason); only ``auto`` is resolved.

    ``auto`` with native bf16 is ``bf16-true`` (frozen encoder and LLM stored in bf16, trained
    weights fp32 under bf16 autocast: half the memory of the frozen parts, the fastest CPU step),
    or ``bf16-mixed`` where the frozen parts cannot be stored in bf16 (``frozen_dtype_ok`` False:
    a component without a ``dtype`` option or with another dtype set) or under FSDP (one dtype per
    unit). Without native bf16 it is ``32``.
    """
    if precision != "auto":
        return precision, "explicit"
    support = bf16_support(device)
    if not support.bf16:
        return "32", support.reason
    if fsdp:
        return "bf16-mixed", f"{support.reason}; bf16-mixed under FSDP"
    if not frozen_dtype_ok:
        return "bf16-mixed", f"{support.reason}; bf16-mixed (a frozen part keeps its own dtype)"
    return "bf16-true", support.reason


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Where decoding or caching runs: ``auto`` (or None) is CUDA when available, else the CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def training_device(accelerator: str) -> str:
    """The device type ``trainer.accelerator`` trains on (``auto``: CUDA when available)."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "cuda"
    if accelerator == "mps" or (accelerator == "auto" and torch.backends.mps.is_available()):
        return "mps"
    return "cpu"


def decode_precision(
    model: torch.nn.Module, device: torch.device, precision: str
) -> tuple[torch.nn.Module, contextlib.AbstractContextManager[Any], dict[str, str]]:
    """``precision`` (``auto`` | ``bf16`` | ``32``) → (model, context to decode in, what to record).

    ``bf16`` decodes under bf16 autocast with the frozen weights as stored; ``32`` in float32
    throughout (a model trained with bf16 frozen parts is cast up, exactly, in place: no bf16
    matmul runs on hardware that would emulate it). ``auto`` asks :func:`bf16_support`.
    """
    resolved, reason = resolve_decode_precision(precision, device)
    if resolved == "bf16":
        autocast = torch.autocast(device.type, dtype=torch.bfloat16)
        return model, autocast, {"precision": "bf16", "reason": reason}
    if any(p.dtype != torch.float32 for p in model.parameters() if p.is_floating_point()):
        model = model.float()
    return model, contextlib.nullcontext(), {"precision": "32", "reason": reason}
