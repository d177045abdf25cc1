"""Retired module name (0.1): pre-alignment is :mod:`speechllm.prealign.head`. Removed in 0.3."""

from speechllm.deprecations import warn_retired
from speechllm.prealign.head import *  # noqa: F403
from speechllm.prealign.head import PreAlignHead

warn_retired("the module speechllm.alignment", "speechllm.prealign.head")
AlignmentHead = PreAlignHead  # the head's old name
