"""The run directory: the one module that writes and reads an evaluated run's files.

An evaluated run (``speechllm evaluate``, the metric callbacks, the Whisper baseline) is a
directory that ``speechllm report`` and ``recipes/demo/report.py`` read (``docs/evaluation.md``):

- ``run.json`` (:class:`RunInfo`): ``sfm``, ``llm``, ``adapter`` (the model's labels), ``tasks``
  and any other keys (manifests, decoding settings, the model config);
- ``hyps_asr_<lang>.tsv`` / ``hyps_st_<src>-<tgt>.tsv`` (:func:`write_hypotheses`): one line per
  sentence, ``score`` = WER % (ASR) or COMET × 100 (ST), Table 3's per-sentence scores;
- ``bleu_st_<src>-<tgt>.tsv``: the same format with per-sentence BLEU (not read by the report);
- ``metrics.json``: corpus-level scores, ``{name: number}``;
- ``compression.json`` (:class:`Compression`): mean encoder frames and adapter outputs per
  utterance, written in one schema by evaluation and by the training callback.

Every file is written atomically (:func:`speechllm.io.atomic_write`): a crash never leaves half a
file that a later report would read. This module imports only the standard library and
:mod:`speechllm.io`, so readers (the report, recipes) stay free of torch.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speechllm.compression import COMPRESSION_FILE, Compression, is_number
from speechllm.errors import RunDirError
from speechllm.io import atomic_write

RUN_INFO_FILE = "run.json"
METRICS_FILE = "metrics.json"
HYPS_COLUMNS = ("id", "reference", "hypothesis", "score")
NAME_KEYS = ("sfm", "llm", "adapter")
# run.json's adapter of a reference system with none (`speechllm whisper-baseline`): the report
# draws it as a baseline, not as an adapter.
NO_ADAPTER = "none"
# Splits a compression.json may be measured on: the training monitor's, or evaluation decoding.

_HYPS_FILE = re.compile(r"^hyps_(asr|st)_([A-Za-z]{2,3})(?:-([A-Za-z]{2,3}))?\.tsv$")
_HYPS_COLUMNS_WITH_SOURCE = ("id", "source", "reference", "hypothesis", "score")


# -- JSON helpers ---------------------------------------------------------------------------------
def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RunDirError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a JSON object")
    return data


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    with atomic_write(path) as tmp:
        # default=str: a model config may hold paths; sort_keys: diffs between runs stay readable.
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


# -- file names -----------------------------------------------------------------------------------
def hyps_file_name(task: str, label: str) -> str:
    """The report's TSV of a group: ``hyps_asr_en.tsv`` (WER %), ``hyps_st_en-de.tsv`` (COMET × 100)."""
    return f"hyps_{task}_{label}.tsv"


def bleu_file_name(label: str) -> str:
    """The per-sentence BLEU TSV of an ST direction: ``bleu_st_en-de.tsv``."""
    return f"bleu_st_{label}.tsv"


def column_for_hyps_file(name: str) -> str | None:
    """Table 3 column of a hypotheses file name: ``hyps_st_en-de.tsv`` → ``st_comet_en-de``."""
    match = _HYPS_FILE.match(name)
    if match is None:
        return None
    task, first, second = match.group(1), match.group(2).lower(), match.group(3)
    if task == "asr":
        if second is not None and second.lower() != first:
            return None
        return f"asr_wer_{first}"
    if second is None:
        return None
    return f"st_comet_{first}-{second.lower()}"


def hyps_files(run_dir: str | Path) -> dict[str, Path]:
    """The run's ``hyps_*.tsv`` files by Table 3 column (``asr_wer_en`` → ``hyps_asr_en.tsv``).

    Raises:
        ValueError: a ``hyps_*.tsv`` name is not a group's, or two files give the same column.
    """
    files: dict[str, Path] = {}
    for path in sorted(Path(run_dir).glob("hyps_*.tsv")):
        column = column_for_hyps_file(path.name)
        if column is None:
            raise RunDirError(f"{path}: name must be hyps_st_<src>-<tgt>.tsv or hyps_asr_<lang>.tsv")
        if column in files:
            raise RunDirError(f"{files[column]} and {path} both hold {column}")
        files[column] = path
    return files


# -- hypotheses TSVs ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SentenceTable:
    """One hypotheses TSV to write: a file name in the run directory and a row per sentence."""

    file_name: str
    ids: Sequence[str]
    references: Sequence[str]
    hypotheses: Sequence[str]
    scores: Sequence[float]
    sources: Sequence[str] | None = None


def write_hypotheses(
    path: str | Path,
    ids: Sequence[str],
    references: Sequence[str],
    hypotheses: Sequence[str],
    scores: Sequence[float],
    sources: Sequence[str] | None = None,
) -> None:
    """Write a hypotheses TSV (tabs and newlines in text become spaces: the format has no quoting)."""
    columns = HYPS_COLUMNS if sources is None else _HYPS_COLUMNS_WITH_SOURCE
    given = (ids, references, hypotheses, scores, ids if sources is None else sources)
    if len({len(column) for column in given}) != 1:
        raise RunDirError(f"{path}: ids, references, hypotheses, scores (and sources) differ in length")

    def clean(text: str) -> str:
        return " ".join(str(text).split())

    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write("\t".join(columns) + "\n")
        for i in range(len(ids)):
            row = {"id": ids[i], "reference": references[i], "hypothesis": hypotheses[i]}
            if sources is not None:
                row["source"] = sources[i]
            cells = [repr(float(scores[i])) if c == "score" else clean(row[c]) for c in columns]
            handle.write("\t".join(cells) + "\n")


def read_hypotheses(path: str | Path) -> dict[str, dict[str, str | float]]:
    """Read a hypotheses TSV: ``{id: {"reference", "hypothesis", "score", ["source"]}}`` in file order."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in HYPS_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise RunDirError(f"{path}: missing column(s) {missing}; expected {list(HYPS_COLUMNS)}")
        rows: dict[str, dict[str, str | float]] = {}
        for line_no, record in enumerate(reader, start=2):
            sentence_id = record["id"]
            if sentence_id in rows:
                raise RunDirError(f"{path} line {line_no}: duplicate id {sentence_id!r}")
            try:
                score = float(record["score"])
            except (TypeError, ValueError) as error:
                raise RunDirError(f"{path} line {line_no}: bad score {record['score']!r}") from error
            if not math.isfinite(score):
                raise RunDirError(f"{path} line {line_no}: score is not finite")
            rows[sentence_id] = {**record, "score": score}
    if not rows:
        raise RunDirError(f"{path}: no sentences")
    return rows


# -- run.json -------------------------------------------------------------------------------------
@dataclass
class RunInfo:
    """``run.json``: which model was evaluated on which tasks, and anything else worth keeping.

    ``extra`` holds the other keys (manifests, decoding settings, the model config); the file is
    flat: ``{"sfm": ..., "llm": ..., "adapter": ..., "tasks": [...], **extra}``.
    """

    sfm: str
    llm: str
    adapter: str
    tasks: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        reserved = sorted(set(self.extra) & {*NAME_KEYS, "tasks"})
        if reserved:
            raise RunDirError(f"{RUN_INFO_FILE}: extra keys {reserved} are fields of RunInfo")

    @property
    def names(self) -> dict[str, str]:
        """``{"sfm", "llm", "adapter"}``: what identifies the model (a row of the report)."""
        return {"sfm": self.sfm, "llm": self.llm, "adapter": self.adapter}

    def to_json(self) -> dict[str, Any]:
        return {**self.extra, **self.names, "tasks": list(self.tasks)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str | Path = RUN_INFO_FILE) -> RunInfo:
        """Parse ``run.json`` content; errors name ``source``."""
        for key in NAME_KEYS:
            if not isinstance(data.get(key), str):
                raise RunDirError(f"{source}: missing string key {key!r}")
        tasks = data.get("tasks", [])  # hand-written run dirs may leave it out
        if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
            raise RunDirError(f"{source}: 'tasks' must be a list of strings")
        extra = {k: v for k, v in data.items() if k not in (*NAME_KEYS, "tasks")}
        return cls(data["sfm"], data["llm"], data["adapter"], list(tasks), extra)

    def add(self, newer: RunInfo) -> RunInfo:
        """This run's info with a later evaluation's added: tasks united, newer keys win."""
        tasks = sorted(set(self.tasks) | set(newer.tasks))
        return RunInfo(newer.sfm, newer.llm, newer.adapter, tasks, {**self.extra, **newer.extra})


def write_run_info(run_dir: str | Path, info: RunInfo) -> None:
    _write_json(Path(run_dir) / RUN_INFO_FILE, info.to_json())


def read_run_info(run_dir: str | Path) -> RunInfo:
    """``run_dir``'s ``run.json``.

    Raises:
        FileNotFoundError: there is none (not an evaluated run directory).
        ValueError: it is not valid JSON or lacks a label.
    """
    run_file = Path(run_dir) / RUN_INFO_FILE
    if not run_file.is_file():
        raise FileNotFoundError(f"{run_file} not found: is {run_dir} an evaluated run directory?")
    return RunInfo.from_json(_read_json_object(run_file), run_file)


def check_run_dir(run_dir: str | Path, names: Mapping[str, str]) -> RunInfo | None:
    """The run info already in ``run_dir`` (None if none), checked to name the same model.

    Raises:
        ValueError: it holds a run of another SFM, LLM or adapter (mixing them would put two
            models' scores in one row of the report).
    """
    run_file = Path(run_dir) / RUN_INFO_FILE
    if not run_file.is_file():
        return None
    previous = read_run_info(run_dir)
    for key, value in previous.names.items():
        if value != names[key]:
            raise RunDirError(
                f"{run_file}: this directory holds a run with {key}={value!r}, not "
                f"{names[key]!r}; evaluate into another directory (--out)"
            )
    return previous


# -- metrics.json ---------------------------------------------------------------------------------
def write_metrics(run_dir: str | Path, metrics: Mapping[str, float]) -> None:
    _write_json(Path(run_dir) / METRICS_FILE, dict(metrics))


def read_metrics(run_dir: str | Path) -> dict[str, float]:
    """``run_dir``'s ``metrics.json`` (``{}`` when there is none); ValueError unless all numbers."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return {}
    data = _read_json_object(path)
    for key, value in data.items():
        if not is_number(value):
            raise RunDirError(f"{path}: {key!r} must be a number, not {value!r}")
    return {key: float(value) for key, value in data.items()}


# -- compression.json (the record: speechllm.compression) ----------------------------------------
def write_compression(run_dir: str | Path, compression: Compression) -> Path:
    """Write ``run_dir/compression.json``; returns its path."""
    path = Path(run_dir) / COMPRESSION_FILE
    _write_json(path, compression.to_json())
    return path


def read_compression(run_dir: str | Path) -> Compression | None:
    """``run_dir``'s ``compression.json`` (None when there is none; it is optional)."""
    path = Path(run_dir) / COMPRESSION_FILE
    if not path.is_file():
        return None
    return Compression.from_json(_read_json_object(path), path)


# -- the whole directory --------------------------------------------------------------------------
def update_run_dir(
    run_dir: str | Path,
    info: RunInfo,
    tables: Sequence[SentenceTable],
    metrics: Mapping[str, float],
    compression: Compression | None = None,
) -> dict[str, float]:
    """Write a run directory, or add an evaluation to the one there; returns all its metrics.

    An ASR and an ST evaluation of one model may share a directory: the second's TSVs are added
    (same-named ones replaced), its tasks and other ``run.json`` keys merged, its metrics added.
    ``compression`` None leaves ``compression.json`` alone.

    Raises:
        ValueError: the directory already holds a run of another SFM, LLM or adapter.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = check_run_dir(run_dir, info.names)
    all_metrics: dict[str, float] = {}
    if previous is not None:
        info = previous.add(info)
        all_metrics = read_metrics(run_dir)
    for t in tables:
        write_hypotheses(run_dir / t.file_name, t.ids, t.references, t.hypotheses, t.scores, t.sources)
    all_metrics.update(metrics)
    write_run_info(run_dir, info)
    write_metrics(run_dir, all_metrics)
    if compression is not None:
        write_compression(run_dir, compression)
    return all_metrics
