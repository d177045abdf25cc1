"""Registry.isolated: registrations made inside the block are undone at its end."""

from __future__ import annotations

import pytest

from speechllm.registry import ADAPTERS, Registry, UnknownComponentError


def test_isolated_undoes_registrations_and_keeps_builtins_loaded_inside() -> None:
    registry: Registry[object] = Registry("widget", {"builtin": "speechllm.errors"})
    registry.register("kept")(object)
    with registry.isolated():
        registry.register("temporary")(dict)
        registry.register("builtin")(list)  # what a built-in module's decorator does on first import
        assert registry.get("temporary") is dict
    assert registry.get("kept") is object and registry.get("builtin") is list
    with pytest.raises(UnknownComponentError, match="unknown widget 'temporary'"):
        registry.get("temporary")


def test_isolated_restores_even_when_the_block_fails() -> None:
    with pytest.raises(RuntimeError), ADAPTERS.isolated():
        ADAPTERS.register("short_lived")(object)
        raise RuntimeError("a failing test")
    assert "short_lived" not in ADAPTERS
