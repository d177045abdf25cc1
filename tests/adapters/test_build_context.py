"""What the model gives an adapter at build time has one owner (speechllm.adapters.build_context),
used both to validate a config and to build: a config that validates builds."""

from __future__ import annotations

from typing import Any

import pytest

from speechllm import SpeechLLM, load_config
from speechllm.adapters import build_context
from speechllm.adapters.ctc import CTCAdapter
from speechllm.config import ConfigError
from speechllm.registry import ADAPTERS, register_adapter

TINY_RECIPE = "recipes/tiny/conf/asr.yaml"


def test_the_model_supplies_the_widths_and_no_config_may_set_them() -> None:
    options = build_context.config_options(CTCAdapter)
    assert {"ctc_weight", "max_len", "vocab_size", "blank_id"} <= options
    assert not {"in_dim", "out_dim"} & options
    # vocab_size and blank_id come from the LLM: a config that omits them lacks nothing.
    assert build_context.missing_options(CTCAdapter, {}) == []


def test_a_subclass_taking_kwargs_gets_its_base_options_and_context(tiny_model_overrides: list[str]) -> None:
    with ADAPTERS.isolated():

        @register_adapter("my_ctc")
        class ShrinkingCTC(CTCAdapter):
            """A user's CTC adapter that names only its own option and forwards the rest."""

            def __init__(self, in_dim: int, out_dim: int, *, shrink: int = 1, **kwargs: Any) -> None:
                super().__init__(in_dim, out_dim, **kwargs)
                self.shrink = shrink

        overrides = [*tiny_model_overrides, "model.adapter.name=my_ctc", "model.adapter.shrink=2"]
        cfg = load_config(TINY_RECIPE, [*overrides, "model.adapter.ctc_weight=0.3"])  # a base option
        model = SpeechLLM.from_config(cfg.model)  # validated, so it builds
        assert isinstance(model.adapter, ShrinkingCTC) and model.adapter.shrink == 2
        assert model.adapter.vocab_size == model.llm.vocab_size  # the context reached the base class
        assert model.adapter.blank_id == model.llm.pad_id
        with pytest.raises(ConfigError, match="model.adapter.in_dim: unknown option"):
            load_config(TINY_RECIPE, [*overrides, "model.adapter.in_dim=3"])
        with pytest.raises(ConfigError, match="model.adapter.ctc_wieght: unknown option"):
            load_config(TINY_RECIPE, [*overrides, "model.adapter.ctc_wieght=0.3"])
