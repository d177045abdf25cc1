"""Batches filled by LLM input tokens (``data.max_llm_tokens``) instead of audio seconds.

The adapters feed the LLM at very different rates (Table 1: 2–50 Hz on Whisper), so a batch of
200 s of audio is a different LLM load for each of them. Here a clip's size is what the LLM reads
for it::

    prompt tokens (prefix + suffix) + adapter outputs for its duration + target tokens (+ stop)

and a batch's padded LLM input, ``clips × longest clip``, stays within ``data.max_llm_tokens``.
lhotse's samplers close a batch when one more clip *as long as the longest so far* would not
fit, so a longer last clip can overshoot; :class:`TokenCutSampler` and
:class:`TokenBucketingSampler` move such clips to the next batch, so no batch is over the
budget and every clip is still used once per epoch. A clip alone over the budget is skipped and
reported (:class:`TokenBudgetFilter`), never put in a batch of its own.

The adapter's output length is ``ceil(seconds × rate_hz)``, with the rate from
``data.llm_rate_hz`` or :func:`adapter_rate_hz` (exact for Base, Conv and the WLQ-former; Table 1's
measured mean for CIF and CTC, whose lengths depend on the speech). See docs/data.md.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.dataset import DynamicBucketingSampler, DynamicCutSampler
from lhotse.dataset.sampling.base import TokenConstraint

from speechllm.data.dataset import SkipReport
from speechllm.llms.prompts import PromptBuilder
from speechllm.metrics.paper import paper_compression

log = logging.getLogger(__name__)

WHISPER_WINDOW_S = 30.0  # pad_to_30s: every clip reaches the adapter as 30 s of frames


class LLMLength:
    """A cut → the number of LLM input positions it takes (prompt + adapter outputs + target).

    The prompt paraphrase and the target text are chosen as :class:`~speechllm.data.dataset.SpeechDataset`
    chooses them (same seed, same cut id), so the count is the dataset's exact row length.
    Results are cached by cut id (samplers measure a cut more than once).

    Args:
        prompts: the LLM's prompt builder.
        rate_hz: adapter outputs per second of audio.
        task: task of cuts without ``custom["task"]``.
        train: sample paraphrases as training does (else the fixed instruction).
        seed: the dataset's paraphrase seed.
        fixed_seconds: every clip's encoder input length when the encoder pads (Whisper's 30 s).
    """

    def __init__(
        self,
        prompts: PromptBuilder,
        rate_hz: float,
        task: str = "asr",
        train: bool = True,
        seed: int = 0,
        fixed_seconds: float | None = None,
    ) -> None:
        if not rate_hz > 0:
            raise ValueError(f"data.llm_rate_hz must be > 0, got {rate_hz}")
        self.prompts, self.rate_hz, self.task = prompts, float(rate_hz), task
        self.train, self.seed, self.fixed_seconds = train, seed, fixed_seconds
        self._cache: dict[str, int] = {}

    @classmethod
    def for_data(
        cls,
        data: Any,
        prompts: PromptBuilder,
        rate_hz: float | None,
        encoder: Any,
        task: str,
        train: bool,
        seed: int,
    ) -> LLMLength:
        """The length ``data`` (a DataConfig with ``max_llm_tokens``) batches with: its
        ``llm_rate_hz`` or else ``rate_hz``; 30 s per clip when ``encoder`` pads (Whisper)."""
        rate = getattr(data, "llm_rate_hz", None) or rate_hz
        if rate is None:
            raise ValueError(
                "data.max_llm_tokens needs the adapter's output rate: set data.llm_rate_hz (adapter "
                "outputs per second of audio) or pass llm_rate_hz to SpeechDataModule"
            )
        fixed = WHISPER_WINDOW_S if getattr(encoder, "pad_to_30s", False) else None
        return cls(prompts, float(rate), task=task, train=train, seed=seed, fixed_seconds=fixed)

    def audio_tokens(self, seconds: float) -> int:
        """Adapter outputs for a clip of ``seconds`` (at least one)."""
        seconds = self.fixed_seconds if self.fixed_seconds is not None else seconds
        return max(1, math.ceil(seconds * self.rate_hz - 1e-9))

    def __call__(self, cut: Cut) -> int:
        cached = self._cache.get(cut.id)
        if cached is not None:
            return cached
        sup = cut.supervisions[0] if cut.supervisions else None
        custom = {**(cut.custom or {}), **((sup.custom or {}) if sup is not None else {})}
        task = custom.get("task", self.task)
        text = (sup.text if sup is not None else None) or ""
        tgt_lang = custom.get("tgt_lang") if task == "st" else None
        if task == "st":
            text = custom.get("translation") or ""
        if task == "st" and not tgt_lang:  # the dataset skips it; count it as an ASR row
            task = "asr"
        rng = random.Random(f"{self.seed}:{cut.id}") if self.train else None
        src_lang = (sup.language if sup is not None else None) or "en"
        try:
            prefix, suffix = self.prompts.prompt_ids(task, src_lang, tgt_lang, rng)
        except (KeyError, ValueError):  # an unknown language: the dataset skips the cut
            prefix, suffix = [], []
        target = len(self.prompts.text_ids(text)) + 1  # + the stop id
        length = len(prefix) + len(suffix) + self.audio_tokens(cut.duration) + target
        self._cache[cut.id] = length
        return length


@dataclass
class LLMTokenConstraint(TokenConstraint):
    """lhotse's token constraint (``clips × longest ≤ max_tokens``) measured by :class:`LLMLength`.

    Also what the bucketing sampler sorts clips by, so buckets hold clips of similar LLM length.
    """

    length: Any = field(default=None, repr=False)  # an LLMLength (any cut → int callable)

    def measure_length(self, example: Cut) -> float:
        return self.length(example)


def fill_batch(cuts: list[Cut], length: Callable[[Cut], int], budget: int) -> tuple[list[Cut], list[Cut]]:
    """The longest prefix of ``cuts`` whose ``clips × longest`` fits ``budget`` (at least one clip),
    and the rest."""
    longest = 0
    for index, cut in enumerate(cuts):
        size = length(cut)
        if index and (index + 1) * max(longest, size) > budget:
            return cuts[:index], cuts[index:]
        longest = max(longest, size)
    return cuts, []


class _WithinBudget:
    """Mixin over a lhotse sampler with an :class:`LLMTokenConstraint`: clips that would put a batch
    over the budget are carried into the next one (and batches at the end of the epoch).

    It works on the batches before lhotse deals them out to ranks, so every rank sees the same
    sequence and gets the same number of batches.
    """

    constraint: LLMTokenConstraint

    def __iter__(self) -> Any:
        self._carry: list[Cut] = []
        self._exhausted = False
        return super().__iter__()  # type: ignore[misc]

    def _next_batch(self) -> CutSet:
        cuts = list(self._carry)
        if not self._exhausted:
            try:
                cuts += list(super()._next_batch())  # type: ignore[misc]
            except StopIteration:
                self._exhausted = True
        if not cuts:
            raise StopIteration
        batch, self._carry = fill_batch(cuts, self.constraint.length, int(self.constraint.max_tokens))
        return CutSet.from_cuts(batch)


class TokenCutSampler(_WithinBudget, DynamicCutSampler):
    """lhotse's ``DynamicCutSampler`` filled by LLM tokens, never over the budget."""


class TokenBucketingSampler(_WithinBudget, DynamicBucketingSampler):
    """lhotse's ``DynamicBucketingSampler`` (buckets by LLM length) filled by LLM tokens, never over
    the budget."""


class TokenBudgetFilter:
    """Keeps cuts whose own LLM length fits ``max_tokens``; reports the others once per process."""

    def __init__(self, length: LLMLength, max_tokens: int, report: SkipReport) -> None:
        self.length, self.max_tokens, self.report = length, max_tokens, report
        self._seen: set[str] = set()

    def __call__(self, cut: Cut) -> bool:
        tokens = self.length(cut)
        if tokens <= self.max_tokens:
            return True
        if cut.id not in self._seen:
            self._seen.add(cut.id)
            self.report.add(
                cut.id, f"{tokens} LLM input tokens, more than data.max_llm_tokens={self.max_tokens}"
            )
        return False


def adapter_rate_hz(
    adapter: dict[str, Any], encoder: dict[str, Any], frame_rate_hz: float
) -> tuple[float, str]:
    """The adapter's outputs per second of audio, and where that number comes from.

    Base: the encoder's rate. Conv: a quarter of it (two stride-2 convolutions). WLQ-former: one output per
    window (queries × frame_rate / window). CIF and CTC depend on the speech: the paper's Table 1
    ratio for the encoder, applied to this encoder's rate. Unknown adapters: the encoder's rate
    (no compression: an upper bound). Set ``data.llm_rate_hz`` to use a measured rate instead
    (``compression.json`` of a trained run).
    """
    name = str(adapter.get("name", "base"))
    if name == "base":
        return frame_rate_hz, "the encoder's frame rate (Base adapter: no compression)"
    if name == "conv":
        return frame_rate_hz / 4, "Conv adapter: two stride-2 convolutions"
    if name == "wlq_former":
        from speechllm.adapters.wlq_former import default_window

        window = default_window(adapter.get("window"), frame_rate_hz)
        queries = int(adapter.get("queries_per_window", 1))
        return frame_rate_hz * queries / window, f"WLQ-former: {queries} queries per {window}-frame window"
    row = paper_compression(str(encoder.get("name", "whisper")), name)
    if row is not None:
        return (
            frame_rate_hz / row.compression_ratio,
            f"Table 1's {row.compression_ratio:g}:1 ({row.sfm}, {row.adapter})",
        )
    log.warning("data.max_llm_tokens: no known rate for adapter %r; counting the encoder's frame rate", name)
    return frame_rate_hz, f"the encoder's frame rate (adapter {name!r} unknown: no compression assumed)"


def configured_rate_hz(data: Any, model: Any, frame_rate_hz: float) -> float | None:
    """The rate ``data.max_llm_tokens`` counts with: ``data.llm_rate_hz``, else :func:`adapter_rate_hz`
    (logged with its source); None when batches go by seconds."""
    if data.get("max_llm_tokens") is None:
        return None
    if data.get("llm_rate_hz") is not None:
        return float(data.llm_rate_hz)
    rate, source = adapter_rate_hz(dict(model.adapter), dict(model.encoder), frame_rate_hz)
    log.info("data.max_llm_tokens: counting %.2f adapter outputs per second of audio (%s)", rate, source)
    return rate
