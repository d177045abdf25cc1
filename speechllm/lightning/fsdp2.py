"""``trainer.strategy: fsdp2``: per-parameter sharding (``torch.distributed.fsdp.fully_shard``)
through Lightning's ``ModelParallelStrategy``; it runs on CPUs (gloo) as well as on GPUs.

Every process is one data-parallel rank (no tensor parallelism). :meth:`FSDP2Strategy.shard_model`
makes one FSDP unit per LLM decoder layer and one root unit over the rest of the
:class:`~speechllm.model.SpeechLLM` (encoder, adapter, embeddings, pre-alignment head). The root
unit matters: a parameter outside every unit would get no gradient reduction across ranks.
FSDP2 shards each parameter on its own (a DTensor), so frozen and trained parameters share a unit
and the optimizer, built after sharding, holds the trained shards. Checkpoints gather the trained
parameters only, on the first rank, under the names an unsharded run writes. See docs/training.md.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch import Tensor

# SpeechLLM methods that decode without going through forward(): registered with FSDP2 so that
# the root unit's parameters are gathered for them too (the metric callbacks call them).
DECODING_METHODS = ("encode", "generate", "generate_detailed")


class FSDP2Strategy(ModelParallelStrategy):
    """Lightning's ``ModelParallelStrategy`` with all processes data-parallel and our sharding plan.

    Checkpoints are single files gathered on rank 0 (``save_distributed_checkpoint=False``): they
    hold the trained parameters only (the frozen ones are filtered before any gathering), so they
    are small, and they are read by every strategy and by ``SpeechLLM.from_pretrained``.

    Args:
        layer_classes: the LLM's decoder-layer classes; each such module becomes one FSDP unit.
            (``trainer.activation_checkpointing`` needs nothing here: it is the LLM's own
            ``gradient_checkpointing``, set when the model is built.)
    """

    def __init__(self, layer_classes: Iterable[type[torch.nn.Module]]) -> None:
        super().__init__(save_distributed_checkpoint=False)
        self.layer_classes = tuple(layer_classes)

    def setup_environment(self) -> None:
        # Lightning's "auto" makes every GPU of a node a tensor-parallel rank; we want FSDP over all.
        self._data_parallel_size = self.num_nodes * self.num_processes
        self._tensor_parallel_size = 1
        super().setup_environment()

    def shard_model(self, model: torch.nn.Module) -> None:
        """``fully_shard`` each decoder layer, then the whole ``model`` (root); idempotent.

        Called from ``SpeechLLMModule.configure_model``, before the optimizer is built.
        """
        from torch.distributed.fsdp import FSDPModule, fully_shard, register_fsdp_forward_method

        if isinstance(model, FSDPModule):  # configure_model runs again for validate/test after fit
            return
        mesh = self.device_mesh["data_parallel"]
        layers = [m for m in model.modules() if isinstance(m, self.layer_classes)]
        if not layers:
            names = ", ".join(c.__name__ for c in self.layer_classes) or "none"
            raise ValueError(f"trainer.strategy=fsdp2: no decoder layer of class {names} in the model")
        for layer in layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        for name in DECODING_METHODS:
            if hasattr(model, name):
                register_fsdp_forward_method(model, name)


def full_tensors(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Sharded (DTensor) values gathered to full tensors; a collective: every rank must call it."""
    from torch.distributed.tensor import DTensor

    return {k: v.full_tensor() if isinstance(v, DTensor) else v for k, v in tensors.items()}


def is_sharded(module: torch.nn.Module) -> bool:
    """Whether FSDP2 has sharded ``module`` (its parameters are DTensors)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)
