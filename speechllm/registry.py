"""Name → class registries, so components are chosen from config by name.

A user registers their own component in their own module::

    from speechllm import Adapter, register_adapter

    @register_adapter("my_adapter")
    class MyAdapter(Adapter): ...

and selects it with ``model.adapter.name=my_adapter`` (listing the module under ``imports:``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownComponentError(KeyError):
    """Raised for a component name that no registry entry has; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class Registry(Generic[T]):
    """A named collection of component classes (or builder functions)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator that registers a class or builder under ``name``."""

        def decorator(obj: Callable[..., T]) -> Callable[..., T]:
            existing = self._entries.get(name)
            if existing is not None and existing is not obj and _qualname(existing) != _qualname(obj):
                raise ValueError(f"{self.kind} {name!r} is already registered to {_qualname(existing)}")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._entries:
            raise UnknownComponentError(
                f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self.names())}"
                " (register your own with @register_" + self.kind + " and list its module under `imports:`)"
            )
        return self._entries[name]

    def build(self, cfg: Mapping[str, Any], **kwargs: Any) -> T:
        """Build the component named ``cfg["name"]`` with the other keys of ``cfg`` plus ``kwargs``."""
        options = dict(cfg)
        if "name" not in options:
            raise KeyError(
                f"{self.kind} config needs a `name`; valid {self.kind}s: {', '.join(self.names())}"
            )
        factory = self.get(options.pop("name"))
        options.update(kwargs)
        return factory(**options)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


ENCODERS: Registry[Any] = Registry("encoder")
ADAPTERS: Registry[Any] = Registry("adapter")
LLMS: Registry[Any] = Registry("llm")

register_encoder = ENCODERS.register
register_adapter = ADAPTERS.register
register_llm = LLMS.register
