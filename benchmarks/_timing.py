"""Shared helpers of the adapter benchmarks: import paths, median timing, a one-table report."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The loop references live with the tests (tests/reference_adapters.py), which check them.
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def median_seconds(run: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``run()`` over ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def print_table(title: str, loop_s: float, vectorized_s: float, repeats: int) -> None:
    """One table: both implementations' medians and the speed ratio loop / vectorized."""
    print(title)
    print(f"| implementation | median of {repeats} (ms) | speed-up |")
    print("|---|---:|---:|")
    print(f"| loop reference | {loop_s * 1e3:.1f} | 1.0× |")
    print(f"| vectorized | {vectorized_s * 1e3:.1f} | {loop_s / vectorized_s:.1f}× |")
