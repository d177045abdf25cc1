"""What the model gives an adapter when it builds it, and so what an adapter config may set.

One definition for both sides: :func:`speechllm.builders.build_adapter` passes these arguments,
and :mod:`speechllm.config` validates an adapter config against the same sets, so a config that
validates builds. A constructor's options are read the same way on both sides:
:func:`~speechllm.registry.constructor_options` follows ``**kwargs`` up the class's bases, so a
user subclass taking ``**kwargs`` accepts its base's options (and its base's context arguments).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from speechllm.registry import constructor_options, required_options

# Always given by the model, never by a config: encoder width C and LLM width D.
SUPPLIED = ("in_dim", "out_dim")
# Given by the model when the constructor takes them and the config does not set them.
CONTEXT = ("vocab_size", "blank_id", "encoder_frame_rate_hz")


def config_options(adapter_class: Any) -> set[str]:
    """Options an adapter config may set: the constructor's, less what the model always supplies."""
    return constructor_options(adapter_class) - set(SUPPLIED)


def missing_options(adapter_class: Any, options: Mapping[str, Any]) -> list[str]:
    """Constructor arguments without a default that neither the model nor ``options`` gives."""
    return sorted(required_options(adapter_class) - set(SUPPLIED) - set(CONTEXT) - set(options))


def build_arguments(adapter_class: Any, options: Mapping[str, Any], encoder: Any, llm: Any) -> dict[str, Any]:
    """The arguments the model adds to ``options``: :data:`SUPPLIED`, and the :data:`CONTEXT` the
    constructor takes and the config is silent on (read only then: a tokenizer without pad/eos
    has no blank id, which only the CTC adapter needs)."""
    facts: dict[str, Callable[[], Any]] = {
        "vocab_size": lambda: llm.vocab_size,
        "blank_id": lambda: llm.pad_id,
        "encoder_frame_rate_hz": lambda: float(encoder.frame_rate_hz),
    }
    accepted = constructor_options(adapter_class)
    context = {key: facts[key]() for key in CONTEXT if key in accepted and key not in options}
    return {"in_dim": encoder.dim, "out_dim": llm.dim, **context}
