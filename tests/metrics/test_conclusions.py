"""The paper's three conclusions as checks (speechllm.metrics.conclusions), on constructed cells whose
differences are significant, or not, by construction."""

from __future__ import annotations

import math
from pathlib import Path

from speechllm.metrics.conclusions import (
    HELD,
    INCONCLUSIVE,
    NOT_HELD,
    Cell,
    base_and_wlq_strong,
    check_conclusions,
    conclusions_markdown,
    encoder_matters_most,
    no_adapter_wins_everywhere,
)
from speechllm.metrics.tables import CompressionRow, RunResult

N = 40
BASE = [50 + 10 * math.sin(i) for i in range(N)]  # per-sentence WER of a reference system
ALT = [(-1) ** i for i in range(N)]  # ±1, mean 0: noise that moves no mean
WER = "asr_wer_en"
LLM = "SmolLM2"
ADAPTERS = ("Base", "CIF-based", "Conv-based", "CTC-based", "WLQ-former")


def cell(shift: float = 0.0, noise: float = 0.0) -> Cell:
    """Sentence scores BASE + shift (a shift of 10 on 40 sentences is significant) ± noise (not)."""
    scores = [b + shift + noise * a for b, a in zip(BASE, ALT)]
    return Cell(sum(scores) / N, {f"s{i}": s for i, s in enumerate(scores)})


def cells(design: dict[str, dict[str, tuple[float, float]]], column: str = WER) -> dict:
    """{encoder: {adapter: (shift, noise)}} → the checks' cells."""
    return {
        ((encoder, LLM, adapter), column): cell(*spec)
        for encoder, adapters in design.items()
        for adapter, spec in adapters.items()
    }


# Each adapter's own noise: two adapters' per-sentence differences then alternate by up to 5 points,
# so a mean difference of 5 or more is significant on 40 sentences and one of 0.1 is not.
SHORT = {"base": "Base", "cif": "CIF-based", "conv": "Conv-based", "ctc": "CTC-based", "wlq": "WLQ-former"}
NOISE = {"Base": 1.0, "CIF-based": -1.0, "Conv-based": 2.0, "CTC-based": -2.0, "WLQ-former": 3.0}


def same(noise: float = 1.0, **shifts: float) -> dict[str, tuple[float, float]]:
    """Every adapter at BASE ± its noise, except the shifted ones (keys without the -based suffix)."""
    names = {
        "base": "Base",
        "cif": "CIF-based",
        "conv": "Conv-based",
        "ctc": "CTC-based",
        "wlq": "WLQ-former",
    }
    shifted = {names[key]: shift for key, shift in shifts.items()}
    return {adapter: (shifted.get(adapter, 0.0), noise * NOISE[adapter]) for adapter in ADAPTERS}


# -- (a) the encoder matters most -----------------------------------------------------------------
def test_encoder_matters_most_when_its_gap_is_large_and_significant() -> None:
    checked = encoder_matters_most(
        cells({"tiny": same(), "big": {a: (-20.0, n) for a, (_, n) in same().items()}})
    )
    assert checked.verdict == HELD
    assert "gap 20.0" in checked.evidence[0] and "→ held" in checked.evidence[0]


def test_encoder_does_not_matter_most_when_adapters_spread_more_significantly() -> None:
    design = {"tiny": same(ctc=25.0), "big": same(ctc=25.0)}  # one encoder's twin, one weak adapter
    checked = encoder_matters_most(cells(design))
    assert checked.verdict == NOT_HELD
    assert "best vs worst significant for big, tiny" in checked.evidence[0]


def test_encoder_check_is_inconclusive_without_significant_differences_or_a_second_encoder() -> None:
    assert encoder_matters_most(cells({"tiny": same(), "big": same(noise=2.0)})).verdict == INCONCLUSIVE
    alone = encoder_matters_most(cells({"tiny": same(ctc=25.0)}))
    assert alone.verdict == INCONCLUSIVE and "no column has two encoders" in alone.evidence[0]


# -- (b) no adapter wins everywhere ---------------------------------------------------------------
def test_no_adapter_wins_everywhere_when_two_groups_reverse_their_winners_significantly() -> None:
    design = {"tiny": same(base=-10.0, conv=-5.0), "big": same(conv=-10.0, base=-5.0)}
    checked = no_adapter_wins_everywhere(cells(design))
    assert checked.verdict == HELD
    assert "reversal: Conv-based beats Base significantly in asr_wer_en (big" in checked.evidence[-1]


def test_one_adapter_winning_every_group_significantly_contradicts_it() -> None:
    design = {"tiny": same(wlq=-10.0), "big": same(wlq=-12.0)}
    checked = no_adapter_wins_everywhere(cells(design))
    assert checked.verdict == NOT_HELD and "WLQ-former wins every group" in checked.evidence[-1]


def test_different_winners_without_significance_are_inconclusive() -> None:
    design = {"tiny": same(base=-0.1), "big": same(conv=-0.1)}  # winners ahead by noise only
    assert no_adapter_wins_everywhere(cells(design)).verdict == INCONCLUSIVE
    assert no_adapter_wins_everywhere(cells({"tiny": same(base=-10.0)})).verdict == INCONCLUSIVE  # one group


def test_higher_is_better_for_bleu() -> None:
    # BLEU: the larger value wins, so Base (shift +10) wins both groups significantly
    design = {"tiny": same(base=10.0), "big": same(base=12.0)}
    checked = no_adapter_wins_everywhere(cells(design, column="st_bleu_de-en"))
    assert checked.verdict == NOT_HELD and "Base wins every group" in checked.evidence[-1]


# -- (c) Base and WLQ-former are strong -----------------------------------------------------------
def test_base_and_wlq_strong_when_neither_is_significantly_worse_than_the_best_but_another_is() -> None:
    compression = [
        CompressionRow("tiny", "Base", [LLM], 1.0, 50.0, 1.0, 50.0, adapter_compression_ratio=1.0),
        CompressionRow("tiny", "WLQ-former", [LLM], 16.0, 3.125, 16.0, 3.12, adapter_compression_ratio=16.0),
    ]
    checked = base_and_wlq_strong(cells({"tiny": same(ctc=15.0, cif=12.0)}), compression)
    assert checked.verdict == HELD
    assert "CIF-based, CTC-based significantly worse" in checked.evidence[0]
    assert "WLQ-former's outputs 16.0:1 against Base's 1.0:1 (16.0×)" in checked.evidence[-1]


def test_base_or_wlq_significantly_worse_than_the_best_contradicts_it() -> None:
    checked = base_and_wlq_strong(cells({"tiny": same(wlq=10.0, ctc=15.0)}))
    assert checked.verdict == NOT_HELD and "WLQ-former" in checked.evidence[0].split(";")[1]


def test_no_significant_difference_leaves_it_inconclusive() -> None:
    assert base_and_wlq_strong(cells({"tiny": same()})).verdict == INCONCLUSIVE


def test_groups_that_disagree_make_a_check_inconclusive() -> None:
    # held for tiny (CTC worse), contradicted for big (WLQ-former worse)
    checked = base_and_wlq_strong(cells({"tiny": same(ctc=15.0), "big": same(wlq=15.0)}))
    assert checked.verdict == INCONCLUSIVE
    assert [line.rsplit("→ ", 1)[1] for line in checked.evidence] == [NOT_HELD, HELD]  # big, tiny


# -- from runs --------------------------------------------------------------------------------------
def test_check_conclusions_reads_runs_and_leaves_other_rows_out(tmp_path: Path) -> None:
    runs = []
    for encoder, shift in (("tiny", 0.0), ("big", -20.0)):
        for adapter in (*ADAPTERS, "untrained"):
            extra = 80.0 if adapter == "untrained" else 0.0  # a floor: far worse, and not an adapter
            made = cell(shift + extra, noise=1.0)
            run = RunResult(tmp_path / encoder / adapter, encoder, LLM, adapter)
            run.scores[WER], run.sentence_scores[WER] = made.value, dict(made.sentences)
            runs.append(run)
    checks = check_conclusions(runs)
    assert [c.verdict for c in checks] == [HELD, INCONCLUSIVE, INCONCLUSIVE]
    assert "mean over 5 adapters" in checks[0].evidence[0]  # the floor is not one of them
    text = conclusions_markdown(checks)
    assert text.startswith("- (a) the speech encoder matters most: **held**\n    - asr_wer_en")
