"""Retired module name (0.1): the adapter contract is :mod:`speechllm.adapters.interface` (the
paper's Base adapter is :mod:`speechllm.adapters.base_adapter`). Removed in 0.3."""

from speechllm.adapters.interface import *  # noqa: F403
from speechllm.deprecations import warn_retired

warn_retired("the module speechllm.adapters.base", "speechllm.adapters.interface (or speechllm.Adapter)")
