"""The paper's Table 1 (compression) and Table 3 (CoVoST 2 results), shipped with the package.

The TSVs under ``speechllm/paper/`` are verbatim copies of the paper's tables; a ``*`` after a
Table 3 value marks a difference from the Base adapter (same SFM and LLM) that is **not**
statistically significant. Component names are normalized with :func:`canonical_sfm`,
:func:`canonical_llm` and :func:`canonical_adapter`, so a run configured with ``seamless`` /
``llama`` / ``wlq_former`` finds the paper's ``SeamlessM4T`` / ``Llama 3.1`` / ``WLQ-former``.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

TABLE1_FILE = "table1_compression.tsv"
TABLE3_FILE = "table3_covost2.tsv"

# Table 3 metric columns in the paper's order (also the column keys of our reports).
ST_DIRECTIONS = ("en-de", "de-en", "es-en", "fr-en", "it-en")
ASR_LANGUAGES = ("en", "es", "fr", "it", "de")

_SFM_NAMES = {"whisper": "Whisper", "seamless": "SeamlessM4T", "seamlessm4t": "SeamlessM4T"}
_LLM_NAMES = {"llama": "Llama 3.1", "llama 3.1": "Llama 3.1", "llama3.1": "Llama 3.1", "mistral": "Mistral"}
_ADAPTER_NAMES = {
    "base": "Base",
    "conv": "Conv-based",
    "conv-based": "Conv-based",
    "cif": "CIF-based",
    "cif-based": "CIF-based",
    "ctc": "CTC-based",
    "ctc-based": "CTC-based",
    "wlq_former": "WLQ-former",
    "wlq-former": "WLQ-former",
    "wlqformer": "WLQ-former",
}


def _canonical(name: str, table: dict[str, str]) -> str:
    """The paper's spelling of ``name``; names the paper does not use are returned unchanged."""
    return table.get(name.strip().lower().replace("_", "-"), table.get(name.strip().lower(), name))


def canonical_sfm(name: str) -> str:
    """``whisper`` → ``Whisper``, ``seamless`` / ``Seamless`` → ``SeamlessM4T``."""
    return _canonical(name, _SFM_NAMES)


def canonical_llm(name: str) -> str:
    """``llama`` → ``Llama 3.1``, ``mistral`` → ``Mistral``."""
    return _canonical(name, _LLM_NAMES)


def canonical_adapter(name: str) -> str:
    """``base`` → ``Base``, ``conv`` → ``Conv-based``, ``wlq_former`` → ``WLQ-former``, …"""
    return _canonical(name, _ADAPTER_NAMES)


def sfm_family(name: str) -> str:
    """The paper's SFM whose frame rate ``name`` shares: ``Whisper tiny.en``, ``whisper-base`` →
    ``Whisper`` (every Whisper size runs at 50 Hz), ``seamless…`` → ``SeamlessM4T``.

    Table 1 depends only on the encoder's frame rate and the adapter, so a smaller model of the
    same family is compared with the paper's row; Table 3's quality is not (see :func:`paper_result`).
    """
    canonical = canonical_sfm(name)
    lowered = canonical.strip().lower()
    for prefix, family in (("whisper", "Whisper"), ("seamless", "SeamlessM4T")):
        if lowered.startswith(prefix):
            return family
    return canonical


@dataclass(frozen=True)
class PaperRow:
    """One row of Table 3: scores by column (``st_comet_en-de``, ``asr_wer_avg``, …)."""

    sfm: str
    llm: str
    adapter: str
    scores: dict[str, float]
    not_significant: frozenset[str]


@dataclass(frozen=True)
class PaperCompression:
    """One row of Table 1: output frames per second and compression ratio ``ratio``:1."""

    sfm: str
    adapter: str
    compression_ratio: float
    sampling_rate_hz: float


def _read_tsv(name: str) -> list[dict[str, str]]:
    try:
        package_root = resources.files("speechllm")
    except (NotADirectoryError, TypeError):
        # speechllm imported as a namespace package (no __init__.py, e.g. from a source tree):
        # importlib.resources cannot anchor there, so use this file's location.
        package_root = Path(__file__).resolve().parents[1]
    text = package_root.joinpath("paper").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text), delimiter="\t"))


@functools.cache
def paper_table3() -> tuple[PaperRow, ...]:
    """Table 3 rows (20: 2 SFMs × 2 LLMs × 5 adapters), in the paper's order."""
    rows = []
    for line_no, record in enumerate(_read_tsv(TABLE3_FILE), start=2):
        scores: dict[str, float] = {}
        starred = set()
        for column, cell in record.items():
            if column in ("sfm", "llm", "adapter"):
                continue
            value = cell.strip()
            if value.endswith("*"):
                starred.add(column)
                value = value[:-1]
            try:
                scores[column] = float(value)
            except ValueError as error:
                raise ValueError(
                    f"{TABLE3_FILE} line {line_no}, column {column}: bad value {cell!r}"
                ) from error
        rows.append(
            PaperRow(
                sfm=canonical_sfm(record["sfm"]),
                llm=canonical_llm(record["llm"]),
                adapter=canonical_adapter(record["adapter"]),
                scores=scores,
                not_significant=frozenset(starred),
            )
        )
    return tuple(rows)


@functools.cache
def paper_table1() -> tuple[PaperCompression, ...]:
    """Table 1 rows (10: 2 SFMs × 5 adapters); ``"3:1"`` is parsed to ``3.0``."""
    rows = []
    for record in _read_tsv(TABLE1_FILE):
        ratio_in, ratio_out = record["compression_ratio"].split(":")
        rows.append(
            PaperCompression(
                sfm=canonical_sfm(record["sfm"]),
                adapter=canonical_adapter(record["adapter"]),
                compression_ratio=float(ratio_in) / float(ratio_out),
                sampling_rate_hz=float(record["sampling_rate_hz"]),
            )
        )
    return tuple(rows)


def paper_result(sfm: str, llm: str, adapter: str, metric: str) -> float | None:
    """The paper's Table 3 value for a configuration, or None if the paper has no such cell.

    Args:
        sfm, llm, adapter: names in any spelling :func:`canonical_sfm` & co. accept.
        metric: a Table 3 column, e.g. ``"st_comet_en-de"``, ``"asr_wer_avg"``.
    """
    key = (canonical_sfm(sfm), canonical_llm(llm), canonical_adapter(adapter))
    for row in paper_table3():
        if (row.sfm, row.llm, row.adapter) == key:
            return row.scores.get(metric)
    return None


def paper_compression(sfm: str, adapter: str) -> PaperCompression | None:
    """The paper's Table 1 row for an SFM (any size of its family, :func:`sfm_family`) and adapter,
    or None."""
    key = (sfm_family(sfm), canonical_adapter(adapter))
    for row in paper_table1():
        if (row.sfm, row.adapter) == key:
            return row
    return None
