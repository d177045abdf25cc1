"""The report's evaluation checks: WER by normalizer, decoding speed, degenerate outputs, listening.

``speechllm evaluate`` records beside Table 3's scores what a reader needs to trust them
(``docs/evaluation-checks.md``): ``asr_wer_<normalizer>_<lang>`` and ``num_<kind>_<group>`` in
``metrics.json``, ``normalizer``, ``speed_<task>`` and ``listening_check_<task>`` in ``run.json``.
:func:`checks_sections` turns them into the report's Markdown sections, one table per check, for
the runs that recorded it (runs evaluated before these checks existed simply have no rows).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speechllm.metrics.degenerate import KINDS
from speechllm.metrics.listening import listening_verdict
from speechllm.metrics.normalizers import NORMALIZERS, PAPER
from speechllm.rundir import read_metrics, read_run_info

_ASR_WER = re.compile(r"^asr_wer_(?:(?P<normalizer>[a-z_]+)_)?(?P<lang>[A-Za-z]{2,3})$")
_COUNT = re.compile(r"^num_(?P<kind>[a-z_]+?)_(?P<group>(?:asr|st)_[A-Za-z-]+)$")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _number(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def _normalizer_rows(name: str, metrics: dict[str, float]) -> tuple[list[str], list[list[Any]]]:
    """(normalizers seen, rows: run, language, WER per normalizer)."""
    by_lang: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        match = _ASR_WER.match(key)
        if match is None or (match["normalizer"] or PAPER) not in NORMALIZERS:
            continue
        by_lang.setdefault(match["lang"], {})[match["normalizer"] or PAPER] = value
    seen = [n for n in NORMALIZERS if any(n in wers for wers in by_lang.values())]
    return seen, [[name, lang, *(wers.get(n) for n in NORMALIZERS)] for lang, wers in sorted(by_lang.items())]


def checks_sections(run_dirs: Sequence[str | Path], names: Sequence[str] | None = None) -> list[str]:
    """The Markdown sections (headings and tables) of the checks the runs recorded; each run is
    named by its path, or by ``names`` (same order) when given."""
    normalized: list[list[Any]] = []
    normalizers_seen: set[str] = set()
    speed: list[list[Any]] = []
    degenerate: list[list[Any]] = []
    listening: list[list[Any]] = []
    for run_dir, name in zip(run_dirs, names or [str(run_dir) for run_dir in run_dirs], strict=True):
        info, metrics = read_run_info(run_dir), read_metrics(run_dir)
        seen, rows = _normalizer_rows(name, metrics)
        if len(seen) > 1:  # the paper's column alone is Table 3's already
            normalizers_seen.update(seen)
            normalized += rows
        counts: dict[str, dict[str, float]] = {}
        for key, value in metrics.items():
            match = _COUNT.match(key)
            if match is not None and match["kind"] in (*KINDS, "sentences"):
                counts.setdefault(match["group"], {})[match["kind"]] = value
        for group, kinds in sorted(counts.items()):
            if any(kind in kinds for kind in KINDS[:3]):  # recorded by an evaluation with the counts
                total = kinds.get("sentences")
                degenerate.append(
                    [name, group, _number(total, 0), *(_number(kinds.get(k), 0) for k in KINDS)]
                )
        for task in info.tasks:
            record = info.extra.get(f"speed_{task}")
            if isinstance(record, dict):
                speed.append(
                    [
                        name,
                        task,
                        _number(record.get("rtfx"), 1),
                        _number(record.get("clips_per_second")),
                        _number(record.get("tokens_per_second"), 1),
                        record.get("device", "?"),
                        record.get("precision", "?"),
                    ]
                )
            check = info.extra.get(f"listening_check_{task}")
            if isinstance(check, dict):
                flagged, words = listening_verdict(check)
                listening.append(
                    [
                        name,
                        task,
                        check["clips"],
                        _number(check["wer_true"], 1),
                        _number(check["wer_swapped"], 1),
                        _number(check.get("wer_silence"), 1),
                        f"{float(check['unchanged_swapped']):.0%}",
                        "–"
                        if check.get("unchanged_silence") is None
                        else f"{float(check['unchanged_silence']):.0%}",
                        ("**flagged**: " if flagged else "") + words,
                    ]
                )
    sections: list[str] = []
    if normalized:
        shown = [n for n in NORMALIZERS if n in normalizers_seen]
        columns = [NORMALIZERS.index(n) for n in shown]
        rows = [[row[0], row[1], *(_number(row[2 + i]) for i in columns)] for row in normalized]
        sections += [
            "## WER by normalizer",
            _table(["run", "language", *shown], rows),
            "paper: lowercase, punctuation removed, digits as written (Table 3's); whisper_english: "
            "Whisper's English normalizer (numbers, spellings, contractions), as the Open ASR "
            "leaderboard scores; whisper_basic: Whisper's multilingual one.",
        ]
    if speed:
        sections += [
            "## Decoding speed",
            _table(["run", "task", "RTFx", "clips/s", "tokens/s", "device", "precision"], speed),
            "RTFx: seconds of audio decoded per second of wall clock (higher is faster), over the "
            "decoding loop (data loading, encoder, adapter, LLM; not the model load or the scoring).",
        ]
    if degenerate:
        sections += [
            "## Degenerate outputs",
            _table(["run", "group", "outputs", "empty", "repeating", "prompt copy", "capped"], degenerate),
            "empty: no word; repeating: a phrase of 1–10 words four times in a row; prompt copy: "
            "the output repeats the instruction; capped: stopped at the token limit (a model that "
            "does not stop). An output may count in several columns.",
        ]
    if listening:
        header = ["run", "task", "clips", "WER", "WER swapped", "WER silence", "same swapped", "same silence"]
        sections += [
            "## Listening check",
            _table([*header, "verdict"], listening),
            "The clips decoded again with another clip's audio (swapped) and with silence, scored "
            "against the true references; same: outputs unchanged from those with the right audio.",
        ]
    return sections
