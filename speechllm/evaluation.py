"""Evaluate a trained model on test manifests: greedy decoding → scores → a run directory.

:func:`evaluate` decodes every cut of one or more lhotse manifests with
:meth:`SpeechLLM.generate <speechllm.model.SpeechLLM.generate>` (greedy, the fixed evaluation
instruction: the same prompt layout as training, without paraphrase sampling), groups the
sentences by ASR language or ST direction, scores them and writes a run directory in the format
that ``speechllm report`` reads (``docs/evaluation.md``, :mod:`speechllm.metrics.report`):

- ``run.json``: ``sfm``, ``llm``, ``adapter`` (derived from the model config, see
  :func:`run_names`), ``tasks``, the manifests, decoding settings and the model config;
- ``hyps_asr_<lang>.tsv``: per-sentence WER in percent;
- ``hyps_st_<src>-<tgt>.tsv``: per-sentence COMET × 100, with the source transcript (only when a
  COMET model is given: the report reads these files as Table 3's COMET columns);
- ``bleu_st_<src>-<tgt>.tsv``: per-sentence BLEU (always for ST; the report ignores these files);
- ``metrics.json``: ``asr_wer_<lang>`` (corpus WER), ``asr_mean_sentence_wer_<lang>`` (mean of the
  TSV's scores), ``st_bleu_<pair>``, ``st_chrf_<pair>`` (corpus, sacrebleu) and ``st_comet_<pair>``
  (mean of the TSV's scores), plus ``num_sentences_<task>_<group>``;
- ``compression.json``: mean encoder frames and adapter outputs per utterance (Table 1).

An ASR and an ST evaluation of the same model may share one directory: the second adds its files
and metrics to the first's (their SFM, LLM and adapter must agree).

The same scoring and writing code serves the Lightning callbacks
(:mod:`speechllm.lightning.metric_callbacks`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from speechllm.languages import TASKS
from speechllm.metrics.bleu import corpus_bleu, corpus_chrf, sentence_bleus
from speechllm.metrics.report import write_hypotheses
from speechllm.metrics.wer import corpus_wer, sentence_wers

log = logging.getLogger(__name__)


# -- naming ---------------------------------------------------------------------------------------
def run_names(
    model_config: dict[str, Any] | None,
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


def group_label(task: str, src_lang: str, tgt_lang: str | None) -> str:
    """``en`` for ASR in English, ``en-de`` for ST English → German."""
    if task == "asr":
        return src_lang
    if tgt_lang is None:
        raise ValueError(f"an ST sentence in {src_lang!r} has no target language")
    return f"{src_lang}-{tgt_lang}"


# -- decoding -------------------------------------------------------------------------------------
@dataclass
class SentenceRecords:
    """Decoded sentences of one test group (an ASR language or an ST direction), in decode order."""

    task: str
    src_lang: str
    tgt_lang: str | None
    ids: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    hypotheses: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return group_label(self.task, self.src_lang, self.tgt_lang)

    def __len__(self) -> int:
        return len(self.ids)


# One decoded sentence: (task, src_lang, tgt_lang, cut id, reference, hypothesis, source text).
Decoded = tuple[str, str, "str | None", str, str, str, str]


def decode_batch(
    model: Any,
    batch: dict[str, Any],
    max_new_tokens: int = 200,
    task: str | None = None,
    decoder: str = "llm",
) -> list[Decoded]:
    """Greedy-decode the rows of a :class:`~speechllm.data.dataset.SpeechDataset` batch.

    A batch may mix tasks (muxed ASR and ST manifests); ``generate`` takes one task per call, so
    rows are decoded task by task. With ``task`` given, only rows of that task are decoded.

    Args:
        model: a :class:`~speechllm.model.SpeechLLM` (on the batch's device).
        batch: ``audio`` (B, S) and ``audio_lens`` (B,) (or cached ``encoder_hidden`` (B, T, C) and
            ``encoder_lens`` (B,)), and the lists ``cut_ids``, ``task``,
            ``src_lang``, ``tgt_lang``, ``reference``, ``source_text``.
        decoder: ``llm`` or ``alignment`` (the adapter alone), passed to ``model.generate``.
    """
    out: list[Decoded] = []
    tasks = [task] if task is not None else sorted(set(batch["task"]))
    # With data.encoder_cache, batches carry encoder outputs instead of audio.
    key, lens_key = (
        ("encoder_hidden", "encoder_lens") if "encoder_hidden" in batch else ("audio", "audio_lens")
    )
    for current in tasks:
        rows = [i for i, t in enumerate(batch["task"]) if t == current]
        if not rows:
            continue
        index = torch.tensor(rows, device=batch[key].device)
        lens = batch[lens_key].index_select(0, index)
        # Only as long as the longest selected row: less padding through the encoder.
        inputs = {key: batch[key].index_select(0, index)[:, : int(lens.max())], lens_key: lens}
        texts = model.generate(
            **inputs,
            task=current,
            src_lang=[batch["src_lang"][i] for i in rows],
            tgt_lang=[batch["tgt_lang"][i] for i in rows] if current == "st" else None,
            max_new_tokens=max_new_tokens,
            decoder=decoder,
        )
        for i, text in zip(rows, texts):
            out.append(
                (
                    current,
                    batch["src_lang"][i],
                    batch["tgt_lang"][i] if current == "st" else None,
                    batch["cut_ids"][i],
                    batch["reference"][i],
                    text,
                    batch["source_text"][i],
                )
            )
    return out


def group_decoded(decoded: Sequence[Decoded], where: str = "the test set") -> dict[str, SentenceRecords]:
    """Group decoded sentences by ``<task>_<label>`` (``asr_en``, ``st_en-de``); ids must be unique."""
    groups: dict[str, SentenceRecords] = {}
    seen: set[tuple[str, str]] = set()
    for task, src, tgt, cut_id, reference, hypothesis, source in decoded:
        if (task, cut_id) in seen:
            raise ValueError(f"{where}: cut id {cut_id!r} appears twice for task {task!r}")
        seen.add((task, cut_id))
        key = f"{task}_{group_label(task, src, tgt)}"
        records = groups.setdefault(key, SentenceRecords(task, src, tgt))
        records.ids.append(cut_id)
        records.references.append(reference)
        records.hypotheses.append(hypothesis)
        records.sources.append(source)
    return groups


# -- scoring --------------------------------------------------------------------------------------
@dataclass
class GroupScores:
    """Scores of one group: corpus metrics (``metrics.json`` entries) and per-sentence TSVs."""

    records: SentenceRecords
    metrics: dict[str, float]
    sentence_scores: dict[str, list[float]]  # TSV file name -> one score per sentence


def score_group(records: SentenceRecords, comet: Any = None) -> GroupScores:
    """WER (ASR) or BLEU/chrF and, given a :class:`~speechllm.metrics.comet.CometScorer`, COMET (ST)."""
    label = records.label
    count = {f"num_sentences_{records.task}_{label}": float(len(records))}
    if records.task == "asr":
        wers = sentence_wers(records.references, records.hypotheses)
        try:
            wer = corpus_wer(records.references, records.hypotheses)
        except ValueError:  # every reference empty: only the per-sentence convention applies
            wer = sum(wers) / len(wers)
        metrics = {f"asr_wer_{label}": wer, f"asr_mean_sentence_wer_{label}": sum(wers) / len(wers)}
        return GroupScores(records, {**metrics, **count}, {f"hyps_asr_{label}.tsv": wers})
    metrics = {
        f"st_bleu_{label}": corpus_bleu(records.references, records.hypotheses),
        f"st_chrf_{label}": corpus_chrf(records.references, records.hypotheses),
    }
    files = {f"bleu_st_{label}.tsv": sentence_bleus(records.references, records.hypotheses)}
    if comet is not None:
        # The source of an ST sentence is its transcript (the supervision text), as in COMET's
        # (source, hypothesis, reference) triples; COMET is reported × 100 like the paper.
        scores, _ = comet.score(records.sources, records.hypotheses, records.references)
        scaled = [100.0 * s for s in scores]
        metrics[f"st_comet_{label}"] = sum(scaled) / len(scaled)
        files[f"hyps_st_{label}.tsv"] = scaled
    return GroupScores(records, {**metrics, **count}, files)


def score_groups(groups: dict[str, SentenceRecords], comet: Any = None) -> list[GroupScores]:
    """:func:`score_group` for each group, in sorted group order."""
    return [score_group(groups[key], comet) for key in sorted(groups)]


# -- run directories ------------------------------------------------------------------------------
def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from speechllm.io import atomic_write

    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def check_run_dir(out_dir: str | Path, names: dict[str, Any]) -> dict[str, Any] | None:
    """The ``run.json`` already in ``out_dir`` (None if none), checked to name the same model.

    Raises:
        ValueError: it holds a run of another SFM, LLM or adapter (mixing them would put two
            models' scores in one row of the report).
    """
    run_file = Path(out_dir) / "run.json"
    if not run_file.is_file():
        return None
    previous = _read_json_object(run_file)
    for key in ("sfm", "llm", "adapter"):
        if previous.get(key) != names[key]:
            raise ValueError(
                f"{run_file}: this directory holds a run with {key}={previous.get(key)!r}, not "
                f"{names[key]!r}; evaluate into another directory (--out)"
            )
    return previous


def write_run_dir(
    out_dir: str | Path,
    info: dict[str, Any],
    scored: Sequence[GroupScores],
    compression: dict[str, float] | None = None,
) -> dict[str, float]:
    """Write (or add to) a run directory; returns the full ``metrics.json`` content.

    Args:
        info: ``run.json`` entries; must hold ``sfm``, ``llm``, ``adapter`` and ``tasks`` (a list).
        scored: the groups to write (their TSVs replace same-named files).
        compression: ``compression.json`` content, or None to leave it alone.

    Raises:
        ValueError: the directory already holds a run of another SFM, LLM or adapter.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_file, metrics_file = out_dir / "run.json", out_dir / "metrics.json"
    info = dict(info)
    metrics: dict[str, float] = {}
    previous = check_run_dir(out_dir, info)
    if previous is not None:
        info["tasks"] = sorted(set(previous.get("tasks", [])) | set(info["tasks"]))
        info = {**previous, **info}
        if metrics_file.is_file():
            metrics = _read_json_object(metrics_file)
    for group in scored:
        records = group.records
        for name, scores in group.sentence_scores.items():
            write_hypotheses(
                out_dir / name,
                records.ids,
                records.references,
                records.hypotheses,
                scores,
                sources=records.sources if records.task == "st" else None,
            )
        metrics.update(group.metrics)
    _write_json(run_file, info)
    _write_json(metrics_file, metrics)
    if compression is not None:
        _write_json(out_dir / "compression.json", compression)
    return metrics


# -- compression ----------------------------------------------------------------------------------
@dataclass
class LengthTally:
    """Encoder frames in and adapter outputs out, summed over utterances (for Table 1).

    ``read_frames``: the vectors the LLM reads after a pre-alignment readout that merges runs
    (``model.alignment.readout``: compress, mix); 0 when the model has none.
    """

    utterances: int = 0
    in_frames: float = 0.0
    out_frames: float = 0.0
    read_frames: float = 0.0

    def as_json(self, encoder_frame_rate_hz: float) -> dict[str, float] | None:
        if self.utterances == 0 or self.out_frames == 0:
            return None
        return {
            "encoder_frame_rate_hz": float(encoder_frame_rate_hz),
            "mean_in_len": self.in_frames / self.utterances,
            "mean_out_len": self.out_frames / self.utterances,
            "utterances": float(self.utterances),
            **({"mean_read_len": self.read_frames / self.utterances} if self.read_frames else {}),
        }


@contextlib.contextmanager
def count_adapter_lengths(model: Any) -> Iterator[LengthTally]:
    """Tally the adapter's input and output lengths over every forward inside the block.

    A forward hook reads ``lens`` (B,) going in and ``AdapterOutput.lens`` (B,) coming out, so
    any adapter is measured without adapter-specific code and without a second encoder pass.
    """
    tally = LengthTally()

    def hook(module: Any, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
        in_lens = args[1] if len(args) > 1 else kwargs["lens"]
        tally.utterances += int(in_lens.numel())
        tally.in_frames += float(in_lens.sum())
        tally.out_frames += float(output.lens.sum())

    def read_hook(module: Any, args: tuple, output: Any) -> None:
        tally.read_frames += float(output.lens.sum())

    handles = [model.adapter.register_forward_hook(hook, with_kwargs=True)]
    if getattr(model, "alignment", None) is not None:
        handles.append(model.alignment.register_forward_hook(read_hook))
    try:
        yield tally
    finally:
        for handle in handles:
            handle.remove()


# -- evaluate -------------------------------------------------------------------------------------
def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def evaluate(
    model: Any,
    manifests: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    task: str = "asr",
    out_dir: str | Path | None = None,
    batch_size: int | None = 8,
    max_duration: float | None = None,
    max_new_tokens: int = 200,
    comet_model: str | os.PathLike[str] | None = None,
    comet_batch_size: int = 16,
    device: str | torch.device | None = "auto",
    bf16: bool = False,
    num_workers: int = 0,
    sfm: str | None = None,
    llm: str | None = None,
    adapter: str | None = None,
    imports: Sequence[str] = (),
    decoder: str = "llm",
) -> dict[str, float]:
    """Decode ``manifests`` with ``model``, score, and write a run directory; returns its metrics.

    Args:
        model: a :meth:`SpeechLLM.save_pretrained <speechllm.model.SpeechLLM.save_pretrained>`
            directory, or a :class:`~speechllm.model.SpeechLLM`.
        manifests: lhotse CutSet manifest(s); every cut is used for ``task``.
        task: ``"asr"`` (reference: the supervision text) or ``"st"`` (reference: the supervision's
            ``custom["translation"]``, target language ``custom["tgt_lang"]``).
        out_dir: the run directory; default ``<model dir>/eval`` (``eval`` for an in-memory model).
        batch_size, max_duration: at most this many cuts / seconds of audio per batch (either or both).
        max_new_tokens: greedy decoding limit (the paper: 200).
        comet_model: a COMET hub name, model directory or ``model.ckpt`` (ST only; loaded once).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, or ``"auto"`` (CUDA when available).
        bf16: decode under bfloat16 autocast (GPU speed; the paper trains in bf16).
        sfm, llm, adapter: labels for ``run.json`` instead of those derived by :func:`run_names`.
        imports: modules to import before loading ``model`` (those registering user components,
            like a training config's ``imports:``).
        decoder: ``"llm"`` (the model), or ``"alignment"``: the adapter decoded alone by its
            pre-alignment head (CTC greedy, no LLM; ASR only). Recorded in ``run.json``.

    Returns:
        The run directory's ``metrics.json`` content (including earlier evaluations in it).
    """
    from lhotse.dataset import SimpleCutSampler
    from torch.utils.data import DataLoader

    from speechllm.config import ManifestConfig, import_user_modules
    from speechllm.data.datamodule import load_cuts
    from speechllm.data.dataset import SpeechDataset
    from speechllm.model import SpeechLLM

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    if batch_size is None and max_duration is None:
        raise ValueError("give batch_size, max_duration or both")
    manifest_paths = [manifests] if isinstance(manifests, (str, os.PathLike)) else list(manifests)
    if not manifest_paths:
        raise ValueError("no manifests to evaluate")
    model_dir = None if isinstance(model, SpeechLLM) else Path(model)
    if model_dir is not None:
        # Registers the built-in components, and the user's (a custom adapter's module).
        import_user_modules(list(imports))
        model = SpeechLLM.from_pretrained(model_dir)
    out_dir = Path(out_dir) if out_dir is not None else (model_dir or Path(".")) / "eval"
    names = run_names(model.config, sfm=sfm, llm=llm, adapter=adapter)
    check_run_dir(out_dir, names)  # before decoding, not after
    run_device = _resolve_device(device)
    model = model.to(run_device).eval()

    comet = None
    if comet_model is not None and task == "st":
        from speechllm.metrics.comet import CometScorer

        comet = CometScorer(comet_model, batch_size=comet_batch_size, device=run_device)

    decoded: list[Decoded] = []
    skipped = 0
    autocast = torch.autocast(run_device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with count_adapter_lengths(model) as tally, autocast:
        for path in manifest_paths:
            # train=False: evaluation-only cuts (the real-speech set) are what a test set may hold.
            cuts = load_cuts(ManifestConfig(path=str(path), task=task), train=False)
            sampler = SimpleCutSampler(cuts, max_duration=max_duration, max_cuts=batch_size, shuffle=False)
            dataset = SpeechDataset(model.llm.prompts, task=task, train=False)
            loader = DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=num_workers)
            decoded_before = len(decoded)
            for batch in loader:
                if batch is None or not batch["cut_ids"]:  # every cut of the batch was unusable
                    continue
                batch = {k: v.to(run_device) if torch.is_tensor(v) else v for k, v in batch.items()}
                decoded += decode_batch(model, batch, max_new_tokens, task=task, decoder=decoder)
            # Unusable audio is skipped by the dataset (in its worker processes, so its own counter
            # is not visible here): count what did not come back. It changes the test set.
            skipped += sum(1 for _ in cuts) - (len(decoded) - decoded_before)
    if skipped:
        log.warning("%d cut(s) had unusable audio and were not evaluated (see the warnings above)", skipped)
    if not decoded:
        raise ValueError(f"no usable cuts in {', '.join(str(p) for p in manifest_paths)}")
    groups = group_decoded(decoded, where=", ".join(str(p) for p in manifest_paths))
    scored = score_groups(groups, comet)

    info = {
        **names,
        "tasks": [task],
        "model_dir": None if model_dir is None else str(model_dir),
        f"{task}_manifests": [str(p) for p in manifest_paths],
        f"{task}_skipped_cuts": skipped,
        "max_new_tokens": max_new_tokens,
        "decoder": decoder,
        "bf16": bf16,
        "comet_model": None if comet_model is None else str(comet_model),
        "model_config": model.config,
    }
    encoder_rate = getattr(model.encoder, "frame_rate_hz", None)
    compression = tally.as_json(encoder_rate) if encoder_rate else None
    metrics = write_run_dir(out_dir, info, scored, compression)
    log.info("wrote run directory %s", out_dir)
    return metrics
