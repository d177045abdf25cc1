"""Length arithmetic with real values beside ``meta`` tensors, so that a length stage whose shapes
follow from the clip lengths alone (Conv's strides, WLQ-former's windows) runs on ``meta`` exactly
as it runs for real.

Such a stage reads a few values: ``int(out_lens.max())`` to trim the batch, the number of windows
that hold a frame, a boolean mask to pick them. ``meta`` tensors have no values, so these reads
fail. :class:`LengthValues` keeps a real CPU copy of every tensor computed only from known values
(the lengths the planner passes, factories like ``arange``): each operator whose tensor inputs are
all known runs a second time on the copies. A read of a known tensor returns its value; a boolean
mask that is known becomes the indices it selects. A tensor computed from weights or activations
stays unknown, and so does one written in place from an unknown one (its whole storage); reading
an unknown value is an error, as for plain ``meta``: the stage's length depends on what it learned.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.weak import WeakTensorKeyDictionary

aten = torch.ops.aten
CPU = torch.device("cpu")
# Operators that take a list of (possibly boolean) indices: a known mask becomes long indices.
_MAX_KNOWN = 1 << 24  # elements: a length, mask or index tensor is (B, T) at most
_INDEXING = {
    aten.index.Tensor,
    aten.index_put.default,
    aten.index_put_.default,
    aten._index_put_impl_.default,
}


class UnknownLengthError(RuntimeError):
    """A length stage read a value that depends on its weights or inputs, not on the lengths."""


class LengthValues(TorchDispatchMode):
    """A dispatch mode that follows the values of length arithmetic on ``meta`` tensors.

    Values are followed only inside :meth:`following` (the length stage's forward pass): the LLM
    around it runs untouched. The mode stays on for the backward pass, which selects with the same
    known masks.

    Usage::

        with LengthValues() as values:
            with values.following():
                lens = values.known(torch.full((B,), T))  # a meta tensor whose value is known
                out = adapter(hidden_on_meta, lens)      # reads of lens-derived values now work
            out.embeds.sum().backward()
    """

    def __init__(self) -> None:
        super().__init__()
        self.values = WeakTensorKeyDictionary()
        self.unknown_storages: set[int] = set()
        self.active = False

    @contextmanager
    def following(self) -> Iterator[None]:
        """Follow the values of what runs inside (the length stage)."""
        self.active = True
        try:
            yield
        finally:
            self.active = False

    def known(self, value: Tensor) -> Tensor:
        """A ``meta`` tensor standing for the CPU tensor ``value``, its value known."""
        with _disable_current_modes():
            meta = torch.empty_like(value, device="meta")
        self.values[meta] = value.to(CPU)
        return meta

    def value(self, tensor: Tensor) -> Tensor | None:
        """The CPU value of ``tensor`` (itself off ``meta``), or None when it is unknown."""
        if tensor.device.type != "meta":
            return tensor
        if tensor.untyped_storage()._cdata in self.unknown_storages:
            return None
        return self.values.get(tensor)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is aten._local_scalar_dense.default:
            value = self.value(args[0])
            if value is None:
                raise UnknownLengthError(
                    "a length stage read a value its lengths do not determine (it depends on weights)"
                )
            return value.item()
        if func in _INDEXING:
            args = (args[0], [self._as_indices(index) for index in args[1]], *args[2:])
        out = func(*args, **kwargs)
        if self.active:
            self._follow(func, args, kwargs, out)
        return out

    def _as_indices(self, index: Tensor | None) -> Tensor | None:
        """A known boolean mask → the long indices of its true entries, on ``meta`` (shape only)."""
        if index is None or index.dtype != torch.bool or index.device.type != "meta":
            return index
        mask = self.value(index)
        if mask is None:
            raise UnknownLengthError("a length stage selected with a mask its lengths do not determine")
        if mask.dim() != 1:
            raise UnknownLengthError(f"a {mask.dim()}-D mask index is not supported here (only 1-D)")
        return self.known(mask.nonzero().flatten())

    def _follow(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        """Run ``func`` again on the known values when every tensor input is known; else mark what it
        wrote in place as unknown."""
        inputs = [x for x in tree_flatten((args, kwargs))[0] if isinstance(x, Tensor)]
        known = [self.value(x) for x in inputs]
        mutated = func._schema.is_mutable
        if any(v is None for v in known):
            if mutated and isinstance(args[0], Tensor):
                self.unknown_storages.add(args[0].untyped_storage()._cdata)
            return
        outputs = [x for x in tree_flatten(out)[0] if isinstance(x, Tensor) and x.device.type == "meta"]
        # Lengths, masks and indices only: activations and weights are never computed for real.
        if not outputs or any(x.is_floating_point() or x.numel() > _MAX_KNOWN for x in outputs):
            return

        def real(x: Any) -> Any:
            if isinstance(x, Tensor):
                return self.value(x)
            return CPU if isinstance(x, torch.device) and x.type == "meta" else x

        with _disable_current_modes():
            values = func(*tree_map(real, args), **tree_map(real, kwargs))
        for tensor, value in zip(outputs, [x for x in tree_flatten(values)[0] if isinstance(x, Tensor)]):
            self.values[tensor] = value
