"""Progress of a long step: a live bar with count and ETA on a terminal, one summary line otherwise.

Lightning shows rich bars while training; the steps around it (caching encoder outputs, decoding
a test set, transcribing many files, preparing a corpus) use this, so every step that can take
minutes says how far it has got. Output goes to stderr, leaving stdout to results.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO


@contextmanager
def progress(
    description: str, total: int | None, unit: str = "items", stream: TextIO | None = None
) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; show a live bar while the block runs, or one line when it ends.

    Args:
        description: what is being done, e.g. ``"cache train.jsonl.gz"``.
        total: how many units there will be (``None`` when unknown: a count without an ETA).
        unit: what is counted, for the summary line.
        stream: where to write (default: stderr). A stream that is not a terminal gets no live
            bar, only ``"<description>: <n> <unit> in <seconds> s"`` at the end.
    """
    stream = sys.stderr if stream is None else stream
    done = 0
    started = time.perf_counter()
    live = stream.isatty() if hasattr(stream, "isatty") else False
    if not live:

        def count(n: int = 1) -> None:
            nonlocal done
            done += n

        try:
            yield count
        finally:
            seconds = time.perf_counter() - started
            of = f"/{total}" if total is not None and total != done else ""
            print(f"{description}: {done}{of} {unit} in {seconds:.1f} s", file=stream, flush=True)
        return

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(file=stream), transient=False) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance
