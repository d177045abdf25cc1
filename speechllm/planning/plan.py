"""The plan of a configuration: parameters, sequence lengths, FLOPs, memory per GPU and time.

:func:`plan` builds the configuration on ``meta`` (:mod:`~speechllm.planning.meta_model`), counts
a training step for three batches (clips at the 10th, 50th and 99th duration percentile, each
filling ``data.max_duration``; :mod:`~speechllm.planning.workload`) and one decoding step, and
turns them into memory per GPU (:mod:`~speechllm.planning.memory`) and time at a stated MFU on a
stated GPU (:mod:`~speechllm.planning.hardware`). :func:`format_plan` prints it as one table.
Nothing is allocated: a paper configuration plans in seconds on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speechllm.config.loading import plain_config
from speechllm.planning.hardware import GIB, GPU, gpu_named
from speechllm.planning.memory import STRATEGIES, Memory, largest_batch, memory_per_gpu
from speechllm.planning.meta_model import build_meta_model, parameter_counts
from speechllm.planning.step import StepCount, StepShape, decoding_flops, training_step
from speechllm.planning.workload import COVOST2, Durations, manifest_durations, step_shape


@dataclass
class Plan:
    """Everything :func:`format_plan` prints; sizes in bytes, times in hours unless named.

    Attributes:
        title: encoder + LLM + adapter.
        counts: per component ``{frozen, trained, bytes}``.
        durations: the clip durations used.
        shapes: the three planned batches (short, typical, long clips).
        steps: their counted training steps.
        decode_flops: one greedy decoding step of the typical batch.
        memory: ``{(strategy, checkpointing): Memory}`` for the batch that needs the most.
        peak_shape: that batch.
        max_batch: ``{(strategy, checkpointing): clips}`` that fit the GPU, of the peak batch's duration.
        gpu, gpus, mfu: the hardware and utilisation assumed.
        step_seconds: a typical step's time (without / with checkpointing).
        epoch_hours: wall-clock hours of one epoch on ``gpus`` GPUs.
        max_steps: ``trainer.max_steps`` (or one epoch's steps when unset).
        run_hours: wall-clock hours of ``max_steps``.
        cost: dollars of ``run_hours`` on ``gpus`` GPUs at ``price``.
    """

    title: str
    counts: dict[str, dict[str, int]]
    durations: Durations
    shapes: list[StepShape]
    steps: list[StepCount]
    decode_flops: int
    memory: dict[tuple[str, bool], Memory]
    peak_shape: StepShape
    max_batch: dict[tuple[str, bool], int]
    gpu: GPU
    gpus: int
    mfu: float
    price: float
    step_seconds: tuple[float, float]
    epoch_hours: float
    max_steps: int
    run_hours: float
    cost: float

    @property
    def typical(self) -> StepCount:
        return self.steps[1]

    @property
    def flops_per_audio_hour(self) -> float:
        shape = self.shapes[1]
        return self.typical.total_flops / (shape.batch * shape.samples / 16000) * 3600


def plan(
    cfg: Any,
    *,
    gpu: str = "h100",
    gpus: int | None = None,
    mfu: float = 0.4,
    price: float | None = None,
    rate_hz: float | None = None,
    batch: int | None = None,
) -> Plan:
    """Plan a loaded config (:func:`speechllm.config.load_config`), the adapter it names.

    Args:
        cfg: the config (``model``, ``data``, ``trainer`` are read).
        gpu: a name of :data:`~speechllm.planning.hardware.GPUS`.
        gpus: data-parallel GPUs (default: ``trainer.devices`` when a number, else 1).
        mfu: model FLOPs utilisation assumed for the step time (0 < mfu ≤ 1).
        price: $ per GPU-hour (default: the GPU's assumed price).
        rate_hz: the adapter's output rate, for a data-dependent adapter without a Table 1 row.
        batch: clips per GPU batch instead of ``data.max_duration`` seconds' worth.

    Raises:
        ValueError: an unknown GPU, an MFU outside (0, 1], or a configuration the planner cannot build.
    """
    if not 0 < mfu <= 1:
        raise ValueError(f"--mfu must be in (0, 1], got {mfu}")
    hardware = gpu_named(gpu)
    model_cfg = plain_config(cfg.model)
    model = build_meta_model(model_cfg)
    counts = parameter_counts(model)
    adapter = str(model_cfg["adapter"]["name"])
    train_paths = [str(item["path"]) for item in (cfg.data.train or []) if item.get("path")]
    durations = manifest_durations(train_paths) or COVOST2
    max_duration = float(cfg.data.max_duration)
    shapes = [
        step_shape(model, adapter, seconds, max_duration, rate_hz, batch) for seconds in durations.quantiles
    ]
    steps = [training_step(model, shape) for shape in shapes]
    layers = len(model.decoder_layers)
    devices = cfg.trainer.devices
    gpus = gpus or (int(devices) if isinstance(devices, int) or str(devices).isdigit() else 1)
    # The batch that needs the most memory sets the memory (short clips: more prompts per batch).
    peak = max(
        range(len(steps)), key=lambda i: memory_per_gpu(counts, steps[i], "ddp", gpus, False, layers).total
    )
    memory, max_batch = {}, {}
    for strategy in STRATEGIES:
        for ckpt in (False, True):
            memory[strategy, ckpt] = memory_per_gpu(counts, steps[peak], strategy, gpus, ckpt, layers)
            fits = largest_batch(memory[strategy, ckpt], shapes[peak].batch, hardware.memory_gib * GIB)
            max_batch[strategy, ckpt] = fits
    typical, shape = steps[1], shapes[1]
    flops_per_second = hardware.tflops * 1e12 * mfu
    step_seconds = (
        typical.total_flops / flops_per_second,
        (typical.total_flops + typical.llm_forward_flops) / flops_per_second,
    )
    batch_seconds = shape.batch * shape.samples / 16000
    epoch_steps = durations.hours * 3600 / (batch_seconds * gpus)
    max_steps = int(cfg.trainer.max_steps) if int(cfg.trainer.max_steps) > 0 else int(epoch_steps)
    price = hardware.price if price is None else price
    run_hours = max_steps * step_seconds[0] / 3600
    return Plan(
        title=f"{_name(model_cfg['encoder'])} + {_name(model_cfg['llm'])}, adapter {adapter}",
        counts=counts,
        durations=durations,
        shapes=shapes,
        steps=steps,
        decode_flops=decoding_flops(model, shape),
        memory=memory,
        peak_shape=shapes[peak],
        max_batch=max_batch,
        gpu=hardware,
        gpus=gpus,
        mfu=mfu,
        price=price,
        step_seconds=step_seconds,
        epoch_hours=epoch_steps * step_seconds[0] / 3600,
        max_steps=max_steps,
        run_hours=run_hours,
        cost=run_hours * gpus * price,
    )


def _name(component: dict[str, Any]) -> str:
    return Path(str(component.get("path") or component.get("name"))).name


def _gib(value: float) -> str:
    return f"{value / GIB:.1f}"


def _millions(value: int) -> str:
    return f"{value / 1e6:,.1f} M"


def _memory_row(result: Plan, strategy: str, ckpt: bool) -> tuple[str, str]:
    memory, peak = result.memory[strategy, ckpt], result.peak_shape
    parts = f"params {_gib(memory.params)} + grads {_gib(memory.grads)}"
    parts += f" + optimizer {_gib(memory.optimizer)} + activations {_gib(memory.activations)}"
    clips = result.max_batch[strategy, ckpt]
    fits = f"largest batch on {result.gpu.name}: {clips} clips of {peak.samples / 16000:g} s"
    return f"GiB per GPU, {strategy}{' + ckpt' if ckpt else ''}", f"{_gib(memory.total)} = {parts}; {fits}"


def format_plan(result: Plan) -> str:
    """The plan as one Markdown table (two columns: quantity, value)."""
    rows: list[tuple[str, str]] = []
    for part, count in result.counts.items():
        if count["frozen"] or count["trained"]:
            kind = "trained" if count["trained"] else "frozen"
            size = _millions(count["frozen"] + count["trained"])
            rows.append((f"{part} parameters", f"{size} {kind}, {_gib(count['bytes'])} GiB"))
    durations = result.durations
    quantiles = "/".join(f"{s:g}" for s in durations.quantiles)
    rows.append(
        ("clip durations", f"{durations.source}: p10/p50/p99 {quantiles} s, {durations.hours:,.1f} h/epoch")
    )
    for label, shape in zip(("short", "typical", "long"), result.shapes, strict=True):
        length = f"{shape.prompt_tokens} prompt + {shape.audio_tokens} audio + {shape.target_tokens} target"
        rows.append((f"{label} batch ({shape.samples / 16000:g} s clips)", f"{shape.batch} × ({length})"))
    flops, tera = result.typical.flops, 1e12
    parts = ", ".join(f"{name} {value / tera:,.2f}" for name, value in flops.items())
    rows.append(("TFLOPs per typical step", f"{result.typical.total_flops / tera:,.2f} ({parts})"))
    rows.append(("PFLOPs per audio hour", f"{result.flops_per_audio_hour / 1e15:,.1f}"))
    rows.append(
        ("GFLOPs per decoding step", f"{result.decode_flops / 1e9:,.1f} for {result.shapes[1].batch} clips")
    )
    rows.extend(_memory_row(result, strategy, ckpt) for strategy, ckpt in result.memory)
    plain, ckpt = result.step_seconds
    rows.append(
        ("step time", f"{plain:.2f} s ({ckpt:.2f} s with ckpt), {result.gpu.name} at {result.mfu:.0%} MFU")
    )
    rows.append(("one epoch", f"{result.epoch_hours:,.1f} h on {result.gpus} × {result.gpu.name}"))
    gpu_hours = result.run_hours * result.gpus
    cost = f"${result.cost:,.0f} at ${result.price:.2f}/GPU-h"
    rows.append((f"{result.max_steps:,} steps", f"{result.run_hours:,.1f} h, {gpu_hours:,.0f} GPU-h, {cost}"))
    lines = [f"| {result.title} | |", "|---|---|", *(f"| {key} | {value} |" for key, value in rows)]
    return "\n".join(lines)
