"""Scoring decoded test groups (WER, BLEU/chrF, COMET) and writing them as a run directory.

:func:`score_groups` scores the groups :func:`~speechllm.evaluation.decoding.group_decoded` made;
:func:`write_run_dir` hands the scores to :func:`speechllm.rundir.update_run_dir`, the owner of
the file format, with the ``run.json`` labels :func:`run_names` derives from the model config.
Used by :func:`speechllm.evaluation.evaluate`, the metric callbacks and the Whisper baseline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speechllm.evaluation.decoding import SentenceRecords
from speechllm.metrics.bleu import corpus_bleu, corpus_chrf, sentence_bleus
from speechllm.metrics.degenerate import count_degenerate
from speechllm.metrics.normalizers import PAPER, get_normalizer
from speechllm.metrics.wer import corpus_wer, sentence_wers
from speechllm.rundir import (
    Compression,
    RunInfo,
    SentenceTable,
    bleu_file_name,
    hyps_file_name,
    update_run_dir,
)


@dataclass
class GroupScores:
    """Scores of one group: corpus metrics (``metrics.json`` entries) and per-sentence TSVs."""

    records: SentenceRecords
    metrics: dict[str, float]
    sentence_scores: dict[str, list[float]]  # TSV file name -> one score per sentence

    def tables(self) -> list[SentenceTable]:
        """The group's hypotheses TSVs; ST rows carry their source transcript."""
        records = self.records
        sources = records.sources if records.task == "st" else None
        return [
            SentenceTable(name, records.ids, records.references, records.hypotheses, scores, sources)
            for name, scores in self.sentence_scores.items()
        ]


def _wer_pair(records: SentenceRecords, normalize: Any) -> tuple[float, list[float]]:
    """(corpus WER, per-sentence WERs) under one normalizer."""
    wers = sentence_wers(records.references, records.hypotheses, normalize)
    try:
        return corpus_wer(records.references, records.hypotheses, normalize), wers
    except ValueError:  # every reference empty: only the per-sentence convention applies
        return sum(wers) / len(wers), wers


def score_group(records: SentenceRecords, comet: Any = None, normalizer: str = PAPER) -> GroupScores:
    """WER (ASR) or BLEU/chrF and, given a :class:`~speechllm.metrics.comet.CometScorer`, COMET (ST).

    ASR is always scored under the paper's normalizer (``asr_wer_<lang>``, Table 3's column and
    the hypotheses TSV); another ``normalizer`` (:mod:`speechllm.metrics.normalizers`) adds
    ``asr_wer_<normalizer>_<lang>`` and ``asr_mean_sentence_wer_<normalizer>_<lang>``. Every group
    also gets its degenerate-output counts (:mod:`speechllm.metrics.degenerate`).
    """
    label = records.label
    group = f"{records.task}_{label}"
    prompts = records.prompts if len(records.prompts) == len(records) and any(records.prompts) else None
    count = {
        f"num_sentences_{group}": float(len(records)),
        # capped: stopped by the token limit (speechllm.search.token_limits), not a stop token
        **count_degenerate(records.hypotheses, prompts, records.capped).as_metrics(group),
    }
    if records.task == "asr":
        wer, wers = _wer_pair(records, True)
        metrics = {f"asr_wer_{label}": wer, f"asr_mean_sentence_wer_{label}": sum(wers) / len(wers)}
        if normalizer != PAPER:
            other, others = _wer_pair(records, get_normalizer(normalizer))
            metrics[f"asr_wer_{normalizer}_{label}"] = other
            metrics[f"asr_mean_sentence_wer_{normalizer}_{label}"] = sum(others) / len(others)
        return GroupScores(records, {**metrics, **count}, {hyps_file_name("asr", label): wers})
    metrics = {
        f"st_bleu_{label}": corpus_bleu(records.references, records.hypotheses),
        f"st_chrf_{label}": corpus_chrf(records.references, records.hypotheses),
    }
    files = {bleu_file_name(label): sentence_bleus(records.references, records.hypotheses)}
    if comet is not None:
        # The source of an ST sentence is its transcript (the supervision text), as in COMET's
        # (source, hypothesis, reference) triples; COMET is reported × 100 like the paper.
        scores, _ = comet.score(records.sources, records.hypotheses, records.references)
        scaled = [100.0 * s for s in scores]
        metrics[f"st_comet_{label}"] = sum(scaled) / len(scaled)
        files[hyps_file_name("st", label)] = scaled
    return GroupScores(records, {**metrics, **count}, files)


def score_groups(
    groups: dict[str, SentenceRecords], comet: Any = None, normalizer: str = PAPER
) -> list[GroupScores]:
    """:func:`score_group` for each group, in sorted group order."""
    return [score_group(groups[key], comet, normalizer) for key in sorted(groups)]


def run_names(
    model_config: Mapping[str, Any] | None,
    sfm: str | None = None,
    llm: str | None = None,
    adapter: str | None = None,
) -> dict[str, str]:
    """The run's ``sfm`` / ``llm`` / ``adapter`` labels, from the model config unless given.

    - sfm: the encoder's registry name (``whisper``, ``seamless``, or a user encoder's name);
    - llm: ``llama`` or ``mistral`` when the LLM path contains that word (case-insensitive),
      otherwise the path's last component (the registry name when there is no path);
    - adapter: the adapter's registry name (``base``, ``conv``, ``cif``, ``ctc``, ``wlq_former``).

    ``speechllm report`` maps these to the paper's names (``seamless`` → ``SeamlessM4T``).
    """
    config = model_config or {}
    encoder_cfg, llm_cfg, adapter_cfg = (dict(config.get(k) or {}) for k in ("encoder", "llm", "adapter"))
    if llm is None:
        path = str(llm_cfg.get("path") or "")
        lowered = path.lower()
        if "llama" in lowered:
            llm = "llama"
        elif "mistral" in lowered:
            llm = "mistral"
        elif path:
            llm = Path(path.rstrip("/\\")).name or path
        else:
            llm = str(llm_cfg.get("name", "unknown"))
    return {
        "sfm": sfm if sfm is not None else str(encoder_cfg.get("name", "unknown")),
        "llm": llm,
        "adapter": adapter if adapter is not None else str(adapter_cfg.get("name", "unknown")),
    }


def write_run_dir(
    out_dir: str | Path,
    info: RunInfo,
    scored: Sequence[GroupScores],
    compression: Compression | None = None,
) -> dict[str, float]:
    """Write (or add to) a run directory; returns the full ``metrics.json`` content.

    Args:
        info: the ``run.json`` of this evaluation.
        scored: the groups to write (their TSVs replace same-named files).
        compression: the ``compression.json`` content, or None to leave it alone.

    Raises:
        ValueError: the directory already holds a run of another SFM, LLM or adapter.
    """
    tables = [table for group in scored for table in group.tables()]
    metrics = {key: value for group in scored for key, value in group.metrics.items()}
    return update_run_dir(out_dir, info, tables, metrics, compression)
