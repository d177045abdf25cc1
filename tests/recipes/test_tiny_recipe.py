"""recipes/tiny/run.sh runs every stage (prepare, cache, train, evaluate, report) on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.paths import REPO

RUN = REPO / "recipes" / "tiny" / "run.sh"


@pytest.mark.slow
def test_tiny_recipe_runs_all_stages_and_writes_a_report(tmp_path):
    env = {
        **os.environ,
        "SPEECHLLM": str(Path(sys.executable).parent / "speechllm"),
        "SPEECHLLM_CACHE": str(tmp_path / "models"),
        "ADAPTERS": "base conv",
    }
    result = subprocess.run(
        [
            "bash",
            str(RUN),
            "trainer.max_steps=6",
            "trainer.val_check_interval=3",
            "trainer.enable_progress_bar=false",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = (tmp_path / "runs" / "tiny" / "report" / "report.md").read_text()
    assert "| Base |" in report and "| Conv-based |" in report
    assert "4.0:1" in report  # Conv's measured compression in Table 1
    for adapter in ("base", "conv"):
        assert (tmp_path / "runs" / "tiny" / adapter / "model" / "trainable.safetensors").is_file()
        assert (tmp_path / "runs" / "tiny" / adapter / "eval" / "hyps_asr_en.tsv").is_file()
    assert any((tmp_path / "data" / "encoder_cache" / "tiny").iterdir())
