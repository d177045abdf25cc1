"""A lhotse map-style dataset: a CutSet (one sampler batch) → a padded multitask batch.

The dataset knows nothing of sampling (lhotse samplers give it whole batches of cuts) and nothing
of the model beyond the prompt builder that tokenizes prompts and targets in the data workers.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from typing import Any

import numpy as np
import torch
from lhotse import CutSet
from lhotse.cut import Cut

from speechllm.llms.prompts import PromptBuilder
from speechllm.masking import pad_audio, pad_ids

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
TASKS = ("asr", "st")


class SpeechDataset(torch.utils.data.Dataset):
    """Loads, down-mixes and resamples audio; tokenizes prompts and targets.

    Args:
        prompts: the LLM's :class:`~speechllm.llms.prompts.PromptBuilder`.
        task: default task for cuts whose ``custom["task"]`` is unset (``"asr"`` or ``"st"``).
        train: sample instruction paraphrases (training) or use the fixed one (evaluation).
        seed: seed of the paraphrase sampler.

    Returns batches with keys ``audio`` (B, S) float32, ``audio_lens`` (B,), ``prefix_ids``,
    ``suffix_ids``, ``target_ids``, ``transcript_ids`` (B, *) long with ``*_lens`` (B,), and lists
    ``cut_ids``, ``task``, ``src_lang``, ``tgt_lang``, ``reference`` (target text), ``source_text``.
    Cuts whose audio cannot be used are skipped and counted in :attr:`skipped`.
    """

    def __init__(self, prompts: PromptBuilder, task: str = "asr", train: bool = True, seed: int = 0) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
        self.prompts = prompts
        self.task = task
        self.train = train
        self.rng = random.Random(seed)
        self.skipped: Counter[str] = Counter()

    def __getitem__(self, cuts: CutSet) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        for cut in cuts:
            row = self._example(cut)
            if row is not None:
                rows.append(row)
        return collate(rows)

    def _example(self, cut: Cut) -> dict[str, Any] | None:
        audio, problem = load_mono_16k(cut)
        if audio is None:
            self.skipped[problem] += 1
            log.warning("skipping cut %s: %s", cut.id, problem)
            return None
        sup = cut.supervisions[0]
        custom = {**(cut.custom or {}), **(sup.custom or {})}
        task = custom.get("task", self.task)
        src_lang = sup.language or "en"
        tgt_lang = custom.get("tgt_lang") if task == "st" else None
        if task == "st":
            reference = custom.get("translation")
            if reference is None or tgt_lang is None:
                raise KeyError(
                    f"cut {cut.id}: task 'st' needs supervision custom 'translation' and 'tgt_lang'"
                )
        else:
            reference = sup.text or ""
        rng = self.rng if self.train else None
        prefix, suffix = self.prompts.prompt_ids(task, src_lang, tgt_lang, rng)
        return {
            "cut_id": cut.id,
            "audio": audio,
            "prefix": prefix,
            "suffix": suffix,
            "target": self.prompts.target_ids(reference),
            "transcript": self.prompts.text_ids(sup.text or ""),
            "task": task,
            "src_lang": src_lang,
            "tgt_lang": tgt_lang,
            "reference": reference,
            "source_text": sup.text or "",
        }


def load_mono_16k(cut: Cut) -> tuple[torch.Tensor | None, str]:
    """Load a cut as mono 16 kHz float32; returns (audio (S,), "") or (None, reason)."""
    try:
        if cut.sampling_rate != SAMPLE_RATE:
            cut = cut.resample(SAMPLE_RATE)
        samples = cut.load_audio()
    except Exception as err:  # corrupt or missing file: skip, never crash mid-epoch
        return None, f"unreadable audio ({type(err).__name__}: {err})"
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=0)
    if samples.size == 0:
        return None, "empty audio"
    if not np.isfinite(samples).all():
        return None, "non-finite samples"
    return torch.from_numpy(np.ascontiguousarray(samples)), ""


def collate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad a list of examples into a batch (see :class:`SpeechDataset`)."""
    audio, audio_lens = pad_audio([r["audio"] for r in rows])
    batch: dict[str, Any] = {"audio": audio, "audio_lens": audio_lens}
    for key in ("prefix", "suffix", "target", "transcript"):
        ids, lens = (
            pad_ids([r[key] for r in rows])
            if rows
            else (torch.zeros(0, 1, dtype=torch.long), torch.zeros(0, dtype=torch.long))
        )
        batch[f"{key}_ids"], batch[f"{key}_lens"] = ids, lens
    for key in ("cut_id", "task", "src_lang", "tgt_lang", "reference", "source_text"):
        batch[key + ("s" if key == "cut_id" else "")] = [r[key] for r in rows]
    return batch
