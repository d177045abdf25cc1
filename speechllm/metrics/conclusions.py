"""The paper's three conclusions, restated as checks on our own Table 3: held, not held, inconclusive.

The paper (Verdini et al., 2025) concludes that (a) the speech encoder (SFM) matters most, (b) no
adapter wins everywhere, and (c) Base and WLQ-former are both strong although their outputs differ
16× in rate. Each check here reads the same cells Table 3 shows (a value per row and column) and
their per-sentence scores, tests the differences it relies on with the paired bootstrap
(:func:`~speechllm.metrics.significance.paired_bootstrap`, p < ``alpha``), and says why in words.

Only the paper's five adapters take part (a plain run, an untrained floor or another system's own
decoder are other rows of the table). A check is decided per group (a column, or an (SFM, LLM)
pair and a column); the verdict over groups is **held** when some group holds and none contradicts
it, **not held** when some group contradicts it and none holds, and **inconclusive** otherwise: no
decisive group (the differences are not significant, or there is nothing to compare) or groups
that disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from speechllm.metrics.significance import DEFAULT_ALPHA, DEFAULT_RESAMPLES, paired_bootstrap
from speechllm.metrics.tables import CompressionRow, RowKey, RunResult, lower_is_better, merge_runs

HELD, NOT_HELD, INCONCLUSIVE = "held", "not held", "inconclusive"
PAPER_ADAPTERS = ("Base", "CIF-based", "Conv-based", "CTC-based", "WLQ-former")
CLAIMS = {
    "encoder": "(a) the speech encoder matters most",
    "no_winner": "(b) no adapter wins everywhere",
    "base_wlq": "(c) Base and WLQ-former are strong despite a 16× compression difference",
}


@dataclass(frozen=True)
class Cell:
    """One Table 3 value and the per-sentence scores it rests on (sentence id → score)."""

    value: float
    sentences: Mapping[str, float]


Cells = Mapping[tuple[RowKey, str], Cell]  # ((SFM, LLM, adapter), column) → cell


@dataclass(frozen=True)
class Check:
    """A conclusion's verdict on our numbers, with the evidence (one line per group)."""

    claim: str
    verdict: str
    evidence: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Tester:
    """Paired bootstrap between two cells of one column, at the paper's threshold."""

    alpha: float = DEFAULT_ALPHA
    n_resamples: int = DEFAULT_RESAMPLES
    seed: int = 0

    def p_value(self, first: Sequence[Cell], second: Sequence[Cell]) -> float:
        """p of the difference between two lists of cells, paired cell by cell and sentence by sentence."""
        a, b = [], []
        for left, right in zip(first, second, strict=True):
            if left.sentences.keys() != right.sentences.keys():
                raise ValueError("the conclusions compare cells scored on different sentences")
            ids = list(left.sentences)
            a += [left.sentences[i] for i in ids]
            b += [right.sentences[i] for i in ids]
        return paired_bootstrap(a, b, n_resamples=self.n_resamples, seed=self.seed).p_value

    def significant(self, first: Sequence[Cell], second: Sequence[Cell]) -> bool:
        return self.p_value(first, second) < self.alpha


def cells_from_runs(runs: Iterable[RunResult]) -> dict[tuple[RowKey, str], Cell]:
    """The cells of the paper's five adapters in loaded runs (runs of one row merged, as Table 3 does)."""
    cells = {}
    for key, run in merge_runs(runs).items():
        if key[2] in PAPER_ADAPTERS:
            for column, value in run.scores.items():
                cells[(key, column)] = Cell(value, run.sentence_scores[column])
    return cells


def _better(column: str, x: float, y: float) -> bool:
    return x < y if lower_is_better(column) else x > y


def _ranked(cells: Cells, pair: tuple[str, str], column: str) -> list[str]:
    """The adapters of an (SFM, LLM) pair that have ``column``, best first (the paper's order on ties)."""
    present = [a for a in PAPER_ADAPTERS if ((*pair, a), column) in cells]
    sign = 1 if lower_is_better(column) else -1
    return sorted(present, key=lambda a: sign * cells[((*pair, a), column)].value)


def _groups(cells: Cells) -> list[tuple[tuple[str, str], str]]:
    """(SFM, LLM) pairs and columns with two adapters or more."""
    groups = {(key[:2], column) for key, column in cells}
    return sorted(g for g in groups if len(_ranked(cells, *g)) >= 2)


def _combine(claim: str, verdicts: list[tuple[str, str]], none: str) -> Check:
    """One verdict from the groups' (verdict, evidence line); ``none``: the evidence without groups."""
    found = {verdict for verdict, _ in verdicts}
    if HELD in found and NOT_HELD not in found:
        verdict = HELD
    elif NOT_HELD in found and HELD not in found:
        verdict = NOT_HELD
    else:
        verdict = INCONCLUSIVE
    return Check(claim, verdict, [line for _, line in verdicts] or [none])


def _spread(values: Sequence[float]) -> float:
    """Mean absolute deviation around the mean."""
    mean = sum(values) / len(values)
    return sum(abs(v - mean) for v in values) / len(values)


def encoder_matters_most(cells: Cells, tester: Tester | None = None) -> Check:
    """(a): per LLM and column, the encoders' means over the adapters they share differ by more than
    the adapters spread around their encoder's mean (mean absolute deviation), significantly.

    Held in a group when the encoder gap is the larger and the best and worst encoders differ
    significantly (their cells pooled over the shared adapters); not held when the adapters' spread
    is the larger and some encoder's best and worst adapters differ significantly.
    """
    tester = tester or Tester()
    verdicts = []
    for llm, column in sorted({(key[1], column) for key, column in cells}):
        encoders = sorted({key[0] for key, c in cells if key[1] == llm and c == column})
        shared = [a for a in PAPER_ADAPTERS if all(((e, llm, a), column) in cells for e in encoders)]
        if len(encoders) < 2 or len(shared) < 2:
            continue
        row = {e: [cells[((e, llm, a), column)] for a in shared] for e in encoders}
        means = {e: sum(c.value for c in row[e]) / len(shared) for e in encoders}
        ranked = sorted(encoders, key=means.__getitem__, reverse=not lower_is_better(column))
        best, worst = ranked[0], ranked[-1]
        gap, p_encoders = abs(means[best] - means[worst]), tester.p_value(row[best], row[worst])
        spread = sum(_spread([c.value for c in row[e]]) for e in encoders) / len(encoders)
        # encoders whose best and worst adapters differ significantly
        adapters_differ = [e for e in encoders if tester.significant(*_extremes(row[e], column))]
        if gap > spread and p_encoders < tester.alpha:
            verdict = HELD
        elif spread >= gap and adapters_differ:
            verdict = NOT_HELD
        else:
            verdict = INCONCLUSIVE
        line = (
            f"{column} ({llm}): encoders {best} {means[best]:.1f} vs {worst} {means[worst]:.1f} "
            f"(mean over {len(shared)} adapters), gap {gap:.1f}, p = {p_encoders:.3f}; adapters spread "
            f"{spread:.1f} around their encoder's mean (best vs worst significant for "
            f"{', '.join(adapters_differ) or 'no encoder'}) → {verdict}"
        )
        verdicts.append((verdict, line))
    return _combine(CLAIMS["encoder"], verdicts, "no column has two encoders with two shared adapters")


def _extremes(cells: Sequence[Cell], column: str) -> tuple[list[Cell], list[Cell]]:
    """([the best cell], [the worst cell]) of ``column``'s cells."""
    ordered = sorted(cells, key=lambda cell: cell.value, reverse=not lower_is_better(column))
    return [ordered[0]], [ordered[-1]]


def no_adapter_wins_everywhere(cells: Cells, tester: Tester | None = None) -> Check:
    """(b): held when two groups reverse the order of their winners significantly (in one, adapter X
    beats Y significantly; in another, Y beats X significantly); not held when one adapter is best in
    every group and significantly better than the runner-up in each."""
    tester = tester or Tester()
    groups = _groups(cells)
    winners = {g: _ranked(cells, *g)[0] for g in groups}
    lines = []
    for (pair, column), winner in winners.items():
        runner_up = _ranked(cells, pair, column)[1]
        p = tester.p_value([cells[((*pair, winner), column)]], [cells[((*pair, runner_up), column)]])
        lines.append(
            f"{column} ({' + '.join(pair)}): best {winner} "
            f"{cells[((*pair, winner), column)].value:.1f}, runner-up {runner_up} "
            f"{cells[((*pair, runner_up), column)].value:.1f} (p = {p:.3f})"
        )
    if len(groups) < 2:
        return Check(CLAIMS["no_winner"], INCONCLUSIVE, lines + ["fewer than two groups to compare"])

    def beats(group: tuple[tuple[str, str], str], x: str, y: str) -> bool:
        pair, column = group
        first, second = cells.get(((*pair, x), column)), cells.get(((*pair, y), column))
        if first is None or second is None or not _better(column, first.value, second.value):
            return False
        return tester.significant([first], [second])

    for g1 in groups:
        for g2 in groups:
            x, y = winners[g1], winners[g2]
            if x != y and beats(g1, x, y) and beats(g2, y, x):
                reversal = f"reversal: {x} beats {y} significantly in {g1[1]} ({' + '.join(g1[0])}), "
                reversal += f"{y} beats {x} significantly in {g2[1]} ({' + '.join(g2[0])})"
                return Check(CLAIMS["no_winner"], HELD, lines + [reversal])
    only = set(winners.values())
    if len(only) == 1:
        winner = only.pop()
        if all(beats(g, winner, _ranked(cells, *g)[1]) for g in groups):
            return Check(CLAIMS["no_winner"], NOT_HELD, lines + [f"{winner} wins every group significantly"])
    undecided = "no significant reversal, and no adapter significantly best everywhere"
    return Check(CLAIMS["no_winner"], INCONCLUSIVE, lines + [undecided])


def base_and_wlq_strong(
    cells: Cells, compression: Sequence[CompressionRow] = (), tester: Tester | None = None
) -> Check:
    """(c): per group with Base, WLQ-former and another adapter: held when neither is significantly
    worse than the group's best while some adapter is (the test can tell adapters apart); not held
    when either is significantly worse than the best; inconclusive when no adapter is.

    ``compression`` (Table 1's rows) adds the measured ratios of the two to the evidence.
    """
    tester = tester or Tester()
    verdicts = []
    for pair, column in _groups(cells):
        ranked = _ranked(cells, pair, column)
        if "Base" not in ranked or "WLQ-former" not in ranked or len(ranked) < 3:
            continue
        best = cells[((*pair, ranked[0]), column)]
        worse = {a for a in ranked[1:] if tester.significant([best], [cells[((*pair, a), column)]])}
        weak = [a for a in ("Base", "WLQ-former") if a in worse]
        if weak:
            verdict = NOT_HELD
        elif worse:
            verdict = HELD
        else:
            verdict = INCONCLUSIVE
        values = ", ".join(f"{a} {cells[((*pair, a), column)].value:.1f}" for a in ranked)
        significantly = f"{', '.join(sorted(worse))} significantly worse than {ranked[0]}" if worse else ""
        significantly = significantly or "no adapter significantly worse than the best"
        verdicts.append((verdict, f"{column} ({' + '.join(pair)}): {values}; {significantly} → {verdict}"))
    check = _combine(CLAIMS["base_wlq"], verdicts, "no group holds Base, WLQ-former and a third adapter")
    return Check(check.claim, check.verdict, check.evidence + _compression_lines(compression))


def _compression_lines(rows: Sequence[CompressionRow]) -> list[str]:
    """WLQ-former's measured compression against Base's, per SFM (the adapters' own outputs and what
    the LLM reads)."""
    ratios = {(r.sfm, r.adapter): r for r in rows}
    lines = []
    for sfm in sorted({r.sfm for r in rows}):
        base, wlq = ratios.get((sfm, "Base")), ratios.get((sfm, "WLQ-former"))
        if base is None or wlq is None or base.adapter_compression_ratio is None:
            continue
        own = (wlq.adapter_compression_ratio or 0.0) / base.adapter_compression_ratio
        read = wlq.compression_ratio / base.compression_ratio
        lines.append(
            f"{sfm}: WLQ-former's outputs {wlq.adapter_compression_ratio:.1f}:1 against Base's "
            f"{base.adapter_compression_ratio:.1f}:1 ({own:.1f}×); the LLM reads "
            f"{wlq.compression_ratio:.1f}:1 against {base.compression_ratio:.1f}:1 ({read:.1f}×)"
        )
    return lines


def check_conclusions(
    runs: Iterable[RunResult],
    compression: Sequence[CompressionRow] = (),
    alpha: float = DEFAULT_ALPHA,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> list[Check]:
    """The three checks on loaded runs (the rows of our Table 3), in the paper's order."""
    cells = cells_from_runs(runs)
    tester = Tester(alpha, n_resamples, seed)
    return [
        encoder_matters_most(cells, tester),
        no_adapter_wins_everywhere(cells, tester),
        base_and_wlq_strong(cells, compression, tester),
    ]


def conclusions_markdown(checks: Sequence[Check]) -> str:
    """One bullet per check: the claim, its verdict in bold, the evidence beneath."""
    lines = []
    for check in checks:
        lines.append(f"- {check.claim}: **{check.verdict}**")
        lines += [f"    - {line}" for line in check.evidence]
    return "\n".join(lines)
