"""Every benchmark runs at a tiny size and prints its ratio table, so none of them rots.

Figures are not checked here (timings belong in docs/benchmarks.md, never in assertions); only
that each script runs end to end and reports a ratio.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from helpers.paths import REPO

BENCHMARKS = REPO / "benchmarks"
TINY_ARGS = {
    "cif.py": ["--batch", "2", "--frames", "200", "--dim", "32", "--repeats", "1"],
    "ctc.py": ["--batch", "2", "--frames", "200", "--dim", "32", "--repeats", "1"],
    "ctc_vocab.py": [
        "--batch",
        "2",
        "--frames",
        "40",
        "--dim",
        "32",
        "--vocab",
        "300",
        "--kept",
        "50",
        "--repeats",
        "1",
    ],
    "bucketing.py": ["--tiny", "--repeats", "1"],
    "token_batching.py": ["--tiny", "--repeats", "1"],
    "whisper_padding.py": ["--tiny", "--batch", "1", "--repeats", "1"],
    "encoder_cache_sweep.py": ["--tiny", "--steps", "2", "--train_cuts", "8", "--repeats", "1"],
    "train_step_vs_voxtral.py": ["--size", "tiny", "--repeats", "1", "--no_memory", "--precision", "32"],
    "mfu.py": ["--size", "tiny", "--repeats", "1", "--precisions", "32"],
    "demo_step.py": ["--tiny", "--batch", "2", "--repeats", "1"],
    "precision.py": ["--tiny", "--clips", "4", "--batch", "2", "--new-tokens", "3", "--repeats", "1"],
    "cache_order.py": ["--tiny", "--clips", "12", "--repeats", "1"],
    "beam_search.py": ["--tiny", "--batch", "3", "--beams", "2", "--max_new_tokens", "4", "--repeats", "1"],
    "joint_ctc.py": ["--tiny", "--batch", "3", "--beams", "2", "--max_new_tokens", "4", "--repeats", "1"],
    "plan_memory.py": ["--batches", "2", "--seconds", "1", "--adapters", "base"],
}
# Real-size steps on a GPU (benchmarks/gpu.sh): nothing to run at tiny size on a CPU.
GPU_ONLY = {"plan_vs_gpu.py"}


def test_every_benchmark_script_has_a_tiny_run():
    scripts = {p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(TINY_ARGS) | GPU_ONLY


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY_ARGS))
def test_benchmark_runs_at_tiny_size_and_prints_a_ratio(script, tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *TINY_ARGS[script]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "SPEECHLLM_CACHE": str(tmp_path / "models")},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    table_rows = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert len(table_rows) >= 3, result.stdout[-1000:]  # header, rule, at least one measured row
    assert re.search(r"\d+(\.\d+)?(×|%)", "\n".join(table_rows)), result.stdout[-1000:]
