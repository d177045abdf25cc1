"""recipes/demo/budget.py: the demo's budget split, in Python rather than inside run.sh."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers.paths import REPO
from helpers.recipe_modules import recipe_module

SCRIPT = REPO / "recipes" / "demo" / "budget.py"


def _budget_module():
    return recipe_module("demo", "budget")


def test_the_default_budget_splits_as_documented() -> None:
    budget = _budget_module().split_budget(12, 1)
    # docs/demo.md: 52 % pre-alignment, 10 % LLM stage; ST 10 % pre-alignment, 5 % LLM stage;
    # test sets scale with the minutes (the real es/fr/it/nl/cs sets: 20 clips each by default).
    assert (budget.prealign_minutes, budget.llm_minutes) == (6.24, 1.2)
    assert (budget.st_prealign_minutes, budget.st_minutes) == (1.2, 0.6)
    assert (budget.num_test, budget.num_real, budget.num_real_other, budget.num_st_test) == (90, 45, 20, 9)


def test_adapters_share_the_asr_minutes_and_sizes_stay_in_bounds() -> None:
    split_budget = _budget_module().split_budget
    two = split_budget(12, 2)
    assert two.prealign_minutes == pytest.approx(3.12) and two.llm_minutes == pytest.approx(0.6)
    assert split_budget(1, 1).num_test == 20 and split_budget(100, 1).num_test == 100
    assert split_budget(1, 1).num_real_other == 5 and split_budget(100, 1).num_real_other == 20
    with pytest.raises(ValueError, match="minutes > 0"):
        split_budget(0, 1)
    with pytest.raises(ValueError, match="below 1"):
        split_budget(18, 1, prealign_share=0.8)  # + 10 % LLM stage + 15 % ST


def test_run_sh_reads_the_split_from_the_script() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "12", "conv cif"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["3.12", "0.60", "1.20", "0.60", "90", "45", "20", "9"]
    assert "recipes/demo/budget.py" in (REPO / "recipes" / "demo" / "run.sh").read_text()
