"""Name → class registries, so components are chosen from config by name.

A user registers their own component in their own module::

    from speechllm import Adapter, register_adapter

    @register_adapter("my_adapter")
    class MyAdapter(Adapter): ...

and selects it with ``model.adapter.name=my_adapter`` (listing the module under ``imports:``).

The built-in components are listed here by name and module, so that ``names()`` and config
validation know them without importing torch-heavy modules; ``get`` imports a built-in's module on
first use (its ``@register_*`` decorator then registers it). A test checks the table against the
decorators.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from speechllm.errors import SpeechLLMError

T = TypeVar("T")


class UnknownComponentError(SpeechLLMError, KeyError):
    """Raised for a component name that no registry entry has; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class Registry(Generic[T]):
    """A named collection of component classes (or builder functions)."""

    def __init__(self, kind: str, builtins: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}
        # name -> module that registers it on import (loaded on first ``get``)
        self.builtins: dict[str, str] = dict(builtins or {})

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
        if name not in self._entries and name in self.builtins:
            importlib.import_module(self.builtins[name])
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

    @contextlib.contextmanager
    def isolated(self) -> Iterator[None]:
        """Registrations made inside the block are undone when it ends (a notebook cell, a test).

        Built-ins first loaded inside the block stay: their modules are imported once and register
        only then.
        """
        before = dict(self._entries)
        try:
            yield
        finally:
            builtins = {name: obj for name, obj in self._entries.items() if name in self.builtins}
            self._entries.clear()
            self._entries.update({**builtins, **before})

    def names(self) -> list[str]:
        """Every registered and built-in name; imports nothing."""
        return sorted(set(self._entries) | set(self.builtins))

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self.builtins

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


ENCODERS: Registry[Any] = Registry(
    "encoder", {"whisper": "speechllm.encoders.whisper", "seamless": "speechllm.encoders.seamless"}
)
ADAPTERS: Registry[Any] = Registry(
    "adapter",
    {
        "base": "speechllm.adapters.base_adapter",
        **{name: f"speechllm.adapters.{name}" for name in ("conv", "cif", "ctc", "wlq_former")},
    },
)
LLMS: Registry[Any] = Registry("llm", {"hf_causal_lm": "speechllm.llms.causal_lm"})

register_encoder = ENCODERS.register
register_adapter = ADAPTERS.register
register_llm = LLMS.register


# -- what a component's constructor accepts ------------------------------------------------------
def constructor_options(component: Any) -> set[str]:
    """Keyword names a class (following ``**kwargs`` up its bases) or builder function accepts."""
    names: set[str] = set()
    targets = (
        [klass.__init__ for klass in inspect.getmro(component)] if inspect.isclass(component) else [component]
    )
    for target in targets:
        if target is object.__init__:
            break
        params = inspect.signature(target).parameters.values()
        names |= {
            p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"
        }
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names


def required_options(component: Any) -> set[str]:
    """Keyword names a class's own ``__init__`` (or a builder function) needs: those without a
    default. (Not followed up ``**kwargs``: a subclass may pass its base's required arguments itself.)"""
    target = component.__init__ if inspect.isclass(component) else component
    params = inspect.signature(target).parameters.values()
    return {
        p.name
        for p in params
        if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self"
    }
