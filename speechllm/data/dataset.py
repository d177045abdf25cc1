"""A lhotse map-style dataset: a CutSet (one sampler batch) → a padded multitask batch.

The dataset knows nothing of sampling (lhotse samplers give it whole batches of cuts) and nothing
of the model beyond the prompt builder that tokenizes prompts and targets in the data workers.

Bad input never stops an epoch: a cut whose audio is unreadable, empty, or holds NaN/inf samples
is skipped, logged as a warning with a running count, listed in the batch's ``skipped`` field and
appended to the skip report (a TSV of ``cut_id<TAB>reason``). Each process (main or dataloader
worker) appends its own lines with one ``write`` per line in append mode, so workers never
interleave within a line. A batch whose every cut is skipped is returned as ``None``: Lightning's
training loop skips a ``None`` batch with a warning; other consumers must skip it too.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from lhotse import CutSet
from lhotse.cut import Cut
from torch import Tensor

from speechllm.audio import SAMPLE_RATE, load_mono_16k
from speechllm.data.batch import Batch
from speechllm.data.encoder_cache import UnreadableEntryError
from speechllm.errors import UsageError
from speechllm.languages import EVALUATION_LANGUAGE_NAMES, LANGUAGE_NAMES, TASKS
from speechllm.llms.prompts import PromptBuilder
from speechllm.masking import pad_audio, pad_ids

if TYPE_CHECKING:
    from speechllm.data.augment import AudioAugmenter
    from speechllm.data.encoder_cache import EncoderCache
    from speechllm.data.spec_augment import SpecAugment

log = logging.getLogger(__name__)

SKIP_REPORT_HEADER = "cut_id\treason\n"
# The training sampler tags each cut with its epoch (speechllm.data.samplers.ResumableSampler):
# augmentation draws a new seeded variant of a cut every epoch.
EPOCH_FIELD = "sampler_epoch"


class SkipReport:
    """Counts skipped cuts and appends ``cut_id<TAB>reason`` lines to an optional TSV file.

    Args:
        path: the report file (``data.skip_report``); ``None`` keeps counts and warnings only.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self.counts: Counter[str] = Counter()

    def start(self) -> None:
        """Create the file with its header unless it exists (a resumed run keeps appending)."""
        if self.path is not None and not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(SKIP_REPORT_HEADER)

    def add(self, cut_id: str, reason: str) -> None:
        kind = reason.split(" (")[0]
        self.counts[kind] += 1
        log.warning(
            "skipping cut %s: %s (%d skipped for %s in this process)", cut_id, reason, self.counts[kind], kind
        )
        if self.path is not None:
            line = f"{_one_line(cut_id)}\t{_one_line(reason)}\n"
            with open(self.path, "a", encoding="utf-8") as handle:  # one append per line: atomic
                handle.write(line)


def _one_line(text: str) -> str:
    return " ".join(str(text).replace("\t", " ").split())


class SpeechDataset(torch.utils.data.Dataset):
    """Loads, down-mixes and resamples audio (or cached encoder outputs); tokenizes prompts and targets.

    Args:
        prompts: the LLM's :class:`~speechllm.llms.prompts.PromptBuilder`.
        task: default task for cuts whose ``custom["task"]`` is unset (``"asr"`` or ``"st"``).
        train: sample instruction paraphrases and refuse evaluation-only languages (training), or
            use the fixed instruction and accept them (evaluation, validation).
        seed: seed of the paraphrase sampler.
        skip_report: where skipped cuts are listed (see the module docstring).
        encoder_cache: when given, batches carry ``encoder_hidden`` (B, T, C) float32 and
            ``encoder_lens`` (B,) from the cache instead of ``audio`` (the model then skips the
            encoder); ``audio_lens`` (B,) is still given, from the cuts' durations.
        augment: audio augmentation of every cut (training only), drawn per (cut, epoch); with
            ``encoder_cache`` the cache's augmented views are read instead (one per cut and
            epoch, seeded, among ``views``).
        views: views per cut in the cache for ``augment`` (the clean one included).
        spec_augment: masks on the cached encoder outputs (training only), per (cut, epoch).

    Returns a :class:`~speechllm.data.batch.Batch` per sampler batch (its fields and shapes are
    documented there), with ``skipped`` listing ``(cut_id, reason)`` of the batch's skipped cuts;
    ``None`` when all were skipped.
    """

    def __init__(
        self,
        prompts: PromptBuilder,
        task: str = "asr",
        train: bool = True,
        seed: int = 0,
        skip_report: SkipReport | str | Path | None = None,
        encoder_cache: EncoderCache | None = None,
        max_text_tokens: int | None = None,
        augment: AudioAugmenter | None = None,
        views: int = 1,
        spec_augment: SpecAugment | None = None,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
        self.prompts = prompts
        self.task = task
        self.train = train
        self.seed = seed
        self.report = skip_report if isinstance(skip_report, SkipReport) else SkipReport(skip_report)
        self.encoder_cache = encoder_cache
        self.max_text_tokens = max_text_tokens
        self.augment = augment
        self.views = views
        self.spec_augment = spec_augment

    @property
    def skipped(self) -> Counter[str]:
        """Skipped cuts per reason, in this process."""
        return self.report.counts

    def __getitem__(self, cuts: CutSet) -> Batch | None:
        rows: list[dict[str, Any]] = []
        skipped: list[tuple[str, str]] = []
        for cut in cuts:
            row, problem = self._example(cut)
            if row is None:
                self.report.add(cut.id, problem)
                skipped.append((cut.id, problem))
            else:
                rows.append(row)
        if not rows:
            return None
        batch = collate(rows)
        batch.skipped = skipped
        return batch

    def _example(self, cut: Cut) -> tuple[dict[str, Any] | None, str]:
        sup = cut.supervisions[0]
        custom = {**(cut.custom or {}), **(sup.custom or {})}
        task = custom.get("task", self.task)
        src_lang = sup.language or "en"
        tgt_lang = custom.get("tgt_lang") if task == "st" else None
        if task == "st":
            reference = custom.get("translation")
            if reference is None or tgt_lang is None:  # one such cut must not stop a run: skipped
                return None, "no translation (task st needs supervision custom 'translation' and 'tgt_lang')"
        else:
            reference = sup.text or ""
        answer, transcript = self._text_ids(reference), self._text_ids(sup.text or "")
        if answer is None or transcript is None:
            return None, f"text too long (over data.max_text_tokens={self.max_text_tokens} tokens)"
        problem = language_problem(src_lang, tgt_lang, self.train)
        if problem:
            return None, problem
        epoch = int(custom.get(EPOCH_FIELD, 0))
        if self.encoder_cache is not None:
            view, identity = 0, None
            if self.augment is not None and self.views > 1:  # one cached view per cut and epoch
                view = random.Random(f"view:{self.augment.seed}:{cut.id}:{epoch}").randrange(self.views)
                identity = self.augment.identity()
            try:
                hidden = self.encoder_cache.load(cut, view, identity)
            except UnreadableEntryError as err:  # one damaged entry must not stop the run
                return None, f"unreadable encoder-cache entry ({err})"
            if hidden is None:  # the cache lists this cut as unusable audio
                return None, self.encoder_cache.skip_reason(cut, view, identity)
            hidden = np.asarray(hidden, dtype=np.float32)
            if self.spec_augment is not None:
                hidden = self.spec_augment(hidden, cut.id, epoch)
            signal: dict[str, Any] = {
                "encoder_hidden": torch.from_numpy(hidden),
                "num_samples": round(cut.duration * SAMPLE_RATE),
            }
        else:
            if self.augment is not None:
                cut = self.augment(cut, epoch)
            audio, problem = load_mono_16k(cut)
            if audio is None:
                return None, problem
            signal = {"audio": audio}
        # The paraphrase is a function of (seed, cut id), not of a stateful generator: any rank, any
        # worker and a resumed run pick the same instruction for the same cut.
        rng = random.Random(f"{self.seed}:{cut.id}") if self.train else None
        prefix, suffix = self.prompts.prompt_ids(task, src_lang, tgt_lang, rng)
        return {
            "cut_id": cut.id,
            **signal,
            "prefix": prefix,
            "suffix": suffix,
            "target": answer + [self.prompts.stop_ids[0]],  # the loss covers the text and its end
            "transcript": transcript,
            "task": task,
            "src_lang": src_lang,
            "tgt_lang": tgt_lang,
            "reference": reference,
            "source_text": sup.text or "",
        }, ""

    def _text_ids(self, text: str) -> list[int] | None:
        """``text``'s token ids; None when over ``max_text_tokens`` (a text over 32 characters per
        allowed token is refused before it is tokenized at all)."""
        bound = self.max_text_tokens
        if bound is not None and len(text) > 32 * bound:
            return None
        ids = self.prompts.text_ids(text)
        return None if bound is not None and len(ids) > bound else ids


def language_problem(src_lang: str, tgt_lang: str | None, train: bool) -> str:
    """Why a cut in ``src_lang`` (→ ``tgt_lang``) cannot be used ("" when it can). Evaluation-only
    languages (:data:`~speechllm.languages.EVALUATION_LANGUAGE_NAMES`, real nl/cs speech) are read
    by evaluation and validation (``train`` False), never trained on; other codes are unknown."""
    for code in (src_lang, tgt_lang):
        if code is None or code in LANGUAGE_NAMES:
            continue
        if code in EVALUATION_LANGUAGE_NAMES:
            if not train:
                continue
            return f"evaluation-only language ({code!r}: real speech kept out of training)"
        supported = ", ".join(sorted(LANGUAGE_NAMES))
        if not train:
            supported += f"; evaluation only: {', '.join(sorted(EVALUATION_LANGUAGE_NAMES))}"
        return f"unknown language ({code!r}; supported: {supported})"
    return ""


def check_test_languages(cuts: Iterable[Cut], task: str, where: str) -> None:
    """Refuse a test set holding a language no model can be asked about, before any model loads.

    Raises:
        UsageError: naming ``where``, the first such cut and its language code.
    """
    for cut in cuts:
        sup = cut.supervisions[0]
        custom = {**(cut.custom or {}), **(sup.custom or {})}
        tgt_lang = custom.get("tgt_lang") if task == "st" else None
        problem = language_problem(sup.language or "en", tgt_lang, train=False)
        if problem:
            raise UsageError(f"{where}: cut {cut.id!r}: {problem}")


def collate(rows: list[dict[str, Any]]) -> Batch:
    """Pad a list of examples (see :meth:`SpeechDataset._example`) into a :class:`Batch`."""
    signal: dict[str, Tensor] = {}
    if rows and "encoder_hidden" in rows[0]:
        hidden = [r["encoder_hidden"] for r in rows]
        lens = torch.tensor([h.shape[0] for h in hidden], dtype=torch.long)
        padded = torch.zeros(len(rows), int(lens.max()), hidden[0].shape[1])
        for i, h in enumerate(hidden):
            padded[i, : h.shape[0]] = h
        signal["encoder_hidden"], signal["encoder_lens"] = padded, lens
        signal["audio_lens"] = torch.tensor([r["num_samples"] for r in rows], dtype=torch.long)
    else:
        signal["audio"], signal["audio_lens"] = pad_audio([r["audio"] for r in rows])
    ids: dict[str, Tensor] = {}
    for key in ("prefix", "suffix", "target", "transcript"):
        ids[f"{key}_ids"], ids[f"{key}_lens"] = (
            pad_ids([r[key] for r in rows])
            if rows
            else (torch.zeros(0, 1, dtype=torch.long), torch.zeros(0, dtype=torch.long))
        )
    return Batch(
        **signal,
        **ids,
        cut_ids=[r["cut_id"] for r in rows],
        task=[r["task"] for r in rows],
        src_lang=[r["src_lang"] for r in rows],
        tgt_lang=[r["tgt_lang"] for r in rows],
        reference=[r["reference"] for r in rows],
        source_text=[r["source_text"] for r in rows],
    )
