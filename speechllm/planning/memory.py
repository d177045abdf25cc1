"""Memory per GPU of a training step in bf16 mixed precision, for DDP, FSDP and DeepSpeed ZeRO-2.

The four parts, from the meta-built model and the counted step (:mod:`speechllm.planning.step`):

- parameters: each component in its dtype (frozen LLM bf16, encoder as configured, the trained
  adapter and LoRA matrices float32);
- gradients: float32, trained parameters only (DDP also keeps its communication buckets, as
  large again);
- optimizer states: AdamW's two float32 moments per trained parameter;
- activations: the bytes autograd saved in the step, plus one decoder layer's while its backward
  runs. With activation checkpointing each decoder layer keeps only its input (B, L, D), and one
  layer's activations are rebuilt at a time.

FSDP (full shard) splits parameters, gradients and optimizer states over the GPUs and gathers one
decoder layer at a time (two with prefetch); ZeRO-2 splits gradients and optimizer states and
replicates parameters. Not counted: the CUDA context and allocator slack (leave ~10 %, see
:data:`USABLE_FRACTION`), and the frozen encoder's forward, whose tensors are freed before the
LLM runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from speechllm.planning.step import StepCount

STRATEGIES = ("ddp", "fsdp", "deepspeed_stage_2")
USABLE_FRACTION = 0.9  # of a GPU's memory: the rest is context, allocator slack, fragmentation
ADAM_BYTES = 8  # two float32 moments per trained parameter
GRAD_BYTES = 4


@dataclass(frozen=True)
class Memory:
    """Bytes per GPU: ``params``, ``grads``, ``optimizer``, ``activations``; ``total`` their sum."""

    params: int
    grads: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.params + self.grads + self.optimizer + self.activations


def activation_bytes(step: StepCount, layers: int, checkpointing: bool) -> int:
    """Activations of the step, with or without activation checkpointing of the decoder layers."""
    if not checkpointing:
        return sum(step.saved_bytes.values()) + step.largest_layer_bytes
    kept = step.saved_bytes.get("other", 0) + layers * step.layer_input_bytes
    return kept + 2 * step.largest_layer_bytes  # one layer rebuilt, and its gradients


def memory_per_gpu(
    counts: dict[str, dict[str, int]],
    step: StepCount,
    strategy: str,
    gpus: int,
    checkpointing: bool,
    layers: int,
) -> Memory:
    """Memory per GPU of one training step.

    Args:
        counts: :func:`~speechllm.planning.meta_model.parameter_counts`.
        step: the counted step (:func:`~speechllm.planning.step.training_step`).
        strategy: one of :data:`STRATEGIES`.
        gpus: data-parallel GPUs (what FSDP and ZeRO-2 shard over).
        checkpointing: activation checkpointing of the LLM's decoder layers.
        layers: the LLM's decoder layers.

    Raises:
        ValueError: an unknown strategy.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    param_bytes = sum(part["bytes"] for part in counts.values())
    trained = sum(part["trained"] for part in counts.values())
    grads, optimizer = trained * GRAD_BYTES, trained * ADAM_BYTES
    if strategy == "ddp":
        params, grads = param_bytes, 2 * grads
    elif strategy == "fsdp":
        layer_bytes = counts["llm"]["bytes"] // max(layers, 1)
        params = param_bytes // gpus + (2 * layer_bytes if gpus > 1 else 0)
        grads, optimizer = grads // gpus, optimizer // gpus
    else:
        params, grads, optimizer = param_bytes, grads // gpus, optimizer // gpus
    return Memory(params, grads, optimizer, activation_bytes(step, layers, checkpointing))


def largest_batch(memory: Memory, batch: int, gpu_bytes: float) -> int:
    """The most clips of the step's duration that fit ``gpu_bytes`` (activations grow with the
    batch; the rest does not). 0: not even one clip fits."""
    free = gpu_bytes * USABLE_FRACTION - (memory.total - memory.activations)
    per_clip = memory.activations / max(batch, 1)
    return max(0, int(free // per_clip)) if per_clip > 0 else 0
