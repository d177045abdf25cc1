"""Evaluation on several devices: Lightning starts one process per device, each decodes a shard.

``speechllm evaluate --devices N`` (``evaluate(..., devices=N)``) launches N processes with
:class:`lightning.fabric.Fabric` (``ddp``: NCCL on GPUs, gloo on CPUs). Each rank reads the
manifests with the data module's own rank sharding (rank ``r`` of ``W`` decodes every ``W``-th
batch; lhotse pads the last round with copies named ``<id>_dup<k>``, which are dropped again),
then :func:`gather_shards` brings every rank's sentences, decoding clock and adapter length tally
to rank 0, which scores them and writes the one run directory: the same files and scores as one
process would write, and rank 0 returns the metrics (the other ranks return ``{}``). RTFx is
then the whole set's audio over the slowest rank's decoding time.

Strategies: ``ddp`` re-runs the command for ranks 1…N-1 (the CLI); ``ddp_spawn`` starts them
with ``torch.multiprocessing`` from inside Python (a notebook, a test). The listening check runs on
rank 0's clips only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist

from speechllm.errors import UsageError
from speechllm.evaluation.decoding import DecodedSentence, LengthTally
from speechllm.evaluation.speed import DecodeClock

STRATEGIES = ("ddp", "ddp_spawn")


def rank_and_world_size() -> tuple[int, int]:
    """(rank, world size) of the process group, or (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_shards(
    decoded: list[DecodedSentence], clock: DecodeClock, tally: LengthTally
) -> tuple[list[DecodedSentence], DecodeClock, LengthTally]:
    """Every rank's sentences (rank order), summed counts and the slowest rank's decode time, on
    every rank; unchanged without a process group."""
    rank, world_size = rank_and_world_size()
    if world_size == 1:
        return decoded, clock, tally
    mine = (decoded, (clock.seconds, clock.audio_seconds, clock.clips, clock.tokens), tally)
    parts: list[Any] = [None] * world_size
    dist.all_gather_object(parts, mine)
    sentences = [sentence for part in parts for sentence in part[0]]
    total = DecodeClock(clock.device, seconds=max(part[1][0] for part in parts))
    for _, (_, audio, clips, tokens), _ in parts:
        total.add(audio, clips, tokens)
    counted = LengthTally()
    for *_, part_tally in parts:
        counted.utterances += part_tally.utterances
        counted.in_frames += part_tally.in_frames
        counted.out_frames += part_tally.out_frames
        counted.read_frames += part_tally.read_frames
    return sentences, total, counted


def drop_padding_copies(decoded: Sequence[DecodedSentence], cut_ids: set[str]) -> list[DecodedSentence]:
    """Sentences of cuts in the manifests, each once: the sampler's ``_dup`` copies that even out
    the ranks' last batches go."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for sentence in decoded:
        key = (sentence.task, sentence.cut_id)
        if sentence.cut_id in cut_ids and key not in seen:
            seen.add(key)
            kept.append(sentence)
    return kept


def _rank_main(
    fabric: Any, evaluate: Callable[..., dict[str, float]], kwargs: dict[str, Any]
) -> dict[str, float]:
    """One rank's evaluation (``evaluate`` finds the process group Fabric set up)."""
    if fabric.device.type == "cpu":  # one decoding process per device: share the cores
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // fabric.world_size))
    try:
        return evaluate(**kwargs, device=fabric.device, devices=1)
    finally:
        # Leave the process group before the interpreter exits: gloo's worker threads that outlive
        # it can abort a rank at exit (SIGABRT, "terminate called without an active exception";
        # pytorch/pytorch#190489). gather_shards is the last collective, so no rank still waits.
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def launch(
    evaluate: Callable[..., dict[str, float]],
    devices: int,
    accelerator: str,
    strategy: str,
    kwargs: dict[str, Any],
) -> dict[str, float]:
    """Run ``evaluate`` (:func:`speechllm.evaluation.runner.evaluate`, passed in: the runner imports
    this module) on ``devices`` processes; rank 0's metrics.

    Args:
        accelerator: ``cpu``, ``cuda`` / ``gpu`` or ``auto``.
        strategy: ``ddp`` or ``ddp_spawn`` (see the module's docstring).
        kwargs: the other ``evaluate`` arguments (the model as a directory: each process loads it).
    """
    from lightning.fabric import Fabric

    if strategy not in STRATEGIES:
        raise UsageError(f"unknown strategy {strategy!r} for evaluation; valid: {', '.join(STRATEGIES)}")
    if isinstance(kwargs.get("model"), torch.nn.Module):
        raise UsageError(
            "evaluating on several devices needs the model as a directory (each process loads it)"
        )
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    fabric = Fabric(accelerator=accelerator, devices=devices, strategy=strategy)
    return fabric.launch(_rank_main, evaluate, kwargs)
