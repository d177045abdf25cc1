"""What every command shares: forwarding parsed arguments to the library function they name."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any


def call_with_args(func: Callable[..., Any], args: argparse.Namespace, **overrides: Any) -> Any:
    """Call ``func`` with each of its parameters taken from the same-named attribute of ``args``.

    ``overrides`` supply parameters whose flag has another name or needs converting first. A
    parameter that neither provides keeps its default.
    """
    kwargs = {name: getattr(args, name) for name in inspect.signature(func).parameters if hasattr(args, name)}
    kwargs.update(overrides)
    return func(**kwargs)
