"""Greedy decoding of test batches into sentence records, and the adapter's length tally.

:func:`decode_batch` decodes the rows of a :class:`~speechllm.data.batch.Batch` into
:class:`DecodedSentence` records with
:meth:`SpeechLLM.generate_detailed <speechllm.model.SpeechLLM.generate_detailed>`;
:func:`group_decoded` groups the sentences by ASR language / ST direction for scoring
(:mod:`speechllm.evaluation.scoring`).
:func:`count_adapter_lengths` measures the adapter's compression over the same forwards (Table 1).
Used by :func:`speechllm.evaluation.evaluate`, the metric callbacks and the Whisper baseline.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from speechllm.data.batch import Batch
from speechllm.errors import UsageError
from speechllm.rundir import Compression

log = logging.getLogger(__name__)


def group_label(task: str, src_lang: str, tgt_lang: str | None) -> str:
    """``en`` for ASR in English, ``en-de`` for ST English → German."""
    if task == "asr":
        return src_lang
    if tgt_lang is None:
        raise UsageError(f"an ST sentence in {src_lang!r} has no target language")
    return f"{src_lang}-{tgt_lang}"


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
    capped: list[bool] = field(default_factory=list)  # stopped at its token limit, not by a stop token
    prompts: list[str] = field(default_factory=list)  # the instruction each was decoded with ("": unknown)

    @property
    def label(self) -> str:
        return group_label(self.task, self.src_lang, self.tgt_lang)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class DecodedSentence:
    """One decoded sentence, as decoding, the Whisper baseline and the metric callbacks give it.

    Attributes:
        task: ``"asr"`` or ``"st"``.
        src_lang / tgt_lang: language codes (``tgt_lang`` None for ASR).
        cut_id: the cut's id (unique per task within a test set).
        reference: the target text (transcript for ASR, translation for ST).
        hypothesis: what was decoded.
        source: the source transcript (COMET's source; the reference again for ASR).
        capped: decoding stopped at the clip's token limit, not at a stop token (a runaway).
        prompt: the instruction it was decoded with ("" where there was none: the Whisper baseline).
        num_tokens: the new tokens it took (0 where not counted).
    """

    task: str
    src_lang: str
    tgt_lang: str | None
    cut_id: str
    reference: str
    hypothesis: str
    source: str
    capped: bool = False
    prompt: str = ""
    num_tokens: int = 0

    @property
    def group(self) -> str:
        """Its test group: ``asr_en``, ``st_en-de``."""
        return f"{self.task}_{group_label(self.task, self.src_lang, self.tgt_lang)}"


def decode_batch(
    model: Any,
    batch: Batch,
    max_new_tokens: int = 200,
    task: str | None = None,
    decoder: str = "llm",
    on_clip_done: Callable[[int], None] | None = None,
    **decoding: Any,
) -> list[DecodedSentence]:
    """Decode the rows of a :class:`~speechllm.data.batch.Batch` (greedy by default).

    A batch may mix tasks (muxed ASR and ST manifests); ``generate`` takes one task per call, so
    rows are decoded task by task. With ``task`` given, only rows of that task are decoded.

    Args:
        model: a :class:`~speechllm.model.SpeechLLM` (on the batch's device).
        batch: ``audio`` (B, S) and ``audio_lens`` (B,) (or cached ``encoder_hidden`` (B, T, C) and
            ``encoder_lens`` (B,)), and the lists ``cut_ids``, ``task``, ``src_lang``,
            ``tgt_lang``, ``reference``, ``source_text``.
        decoder: ``llm`` or ``prealign`` (the adapter alone), passed to ``model.generate_detailed``.
        on_clip_done: called with the number of clips that just finished (a progress bar).
        decoding: more ``model.generate_detailed`` options (``num_beams``, ``length_penalty``,
            ``no_repeat_ngram_size``, ``repetition_penalty``, ``max_new_tokens_per_second``,
            ``chunk_seconds``).
    """
    out: list[DecodedSentence] = []
    tasks = [task] if task is not None else sorted(set(batch.task))
    # With data.encoder_cache, batches carry encoder outputs instead of audio.
    cached = batch.encoder_hidden is not None
    signal = batch.encoder_hidden if cached else batch.audio
    signal_lens = batch.encoder_lens if cached else batch.audio_lens
    assert signal is not None and signal_lens is not None, "a batch carries audio or encoder outputs"
    for current in tasks:
        rows = [i for i, t in enumerate(batch.task) if t == current]
        if not rows:
            continue
        index = torch.tensor(rows, device=signal.device)
        lens = signal_lens.index_select(0, index)
        # Only as long as the longest selected row: less padding through the encoder.
        selected = signal.index_select(0, index)[:, : int(lens.max())]
        names = ("encoder_hidden", "encoder_lens") if cached else ("audio", "audio_lens")
        inputs = dict(zip(names, (selected, lens)))
        decoded = model.generate_detailed(
            **inputs,
            task=current,
            src_lang=[batch.src_lang[i] for i in rows],
            tgt_lang=[batch.tgt_lang[i] for i in rows] if current == "st" else None,
            max_new_tokens=max_new_tokens,
            decoder=decoder,
            on_clip_done=on_clip_done,
            **decoding,
        )
        for i, text, capped, tokens in zip(rows, decoded.texts, decoded.capped, decoded.num_tokens):
            tgt = batch.tgt_lang[i] if current == "st" else None
            src, cut_id, source = batch.src_lang[i], batch.cut_ids[i], batch.source_text[i]
            prompt = instruction_text(model, current, src, tgt)
            out.append(
                DecodedSentence(
                    current, src, tgt, cut_id, batch.reference[i], text, source, capped, prompt, int(tokens)
                )
            )
    return out


def instruction_text(model: Any, task: str, src_lang: str, tgt_lang: str | None) -> str:
    """The fixed evaluation instruction of a clip (what a prompt-copying output repeats); "" for a
    model without the library's prompt builder."""
    prompts = getattr(getattr(model, "llm", None), "prompts", None)
    if prompts is None or not hasattr(prompts, "instruction"):
        return ""
    return prompts.instruction(task, src_lang, tgt_lang, None)


def group_decoded(
    decoded: Sequence[DecodedSentence], where: str = "the test set"
) -> dict[str, SentenceRecords]:
    """Group decoded sentences by ``<task>_<label>`` (``asr_en``, ``st_en-de``); ids must be unique."""
    groups: dict[str, SentenceRecords] = {}
    seen: set[tuple[str, str]] = set()
    for sentence in decoded:
        if (sentence.task, sentence.cut_id) in seen:
            raise UsageError(f"{where}: cut id {sentence.cut_id!r} appears twice for task {sentence.task!r}")
        seen.add((sentence.task, sentence.cut_id))
        records = groups.setdefault(
            sentence.group, SentenceRecords(sentence.task, sentence.src_lang, sentence.tgt_lang)
        )
        records.ids.append(sentence.cut_id)
        records.references.append(sentence.reference)
        records.hypotheses.append(sentence.hypothesis)
        records.sources.append(sentence.source)
        records.capped.append(sentence.capped)
        records.prompts.append(sentence.prompt)
    return groups


def warn_capped(decoded: Sequence[DecodedSentence], where: str) -> int:
    """How many hypotheses stopped at their token limit; a warning line says so when any did."""
    capped = sum(sentence.capped for sentence in decoded)
    if capped:
        log.warning(
            "%d of %d hypotheses (%s) stopped at their token limit, not at a stop token (a model "
            "that does not stop, or max_new_tokens / max_new_tokens_per_second set too low)",
            capped,
            len(decoded),
            where,
        )
    return capped


@dataclass
class LengthTally:
    """Encoder frames in and adapter outputs out, summed over utterances (for Table 1).

    ``read_frames``: the vectors the LLM reads after a pre-alignment readout that merges runs
    (``model.prealign.readout``: compress, mix); 0 when the model has none.
    """

    utterances: int = 0
    in_frames: float = 0.0
    out_frames: float = 0.0
    read_frames: float = 0.0

    def compression(self, encoder_frame_rate_hz: float, adapter: str | None = None) -> Compression | None:
        """The ``compression.json`` of what was counted (None if nothing was)."""
        if self.utterances == 0 or self.out_frames == 0 or self.in_frames == 0:
            return None
        return Compression(
            encoder_frame_rate_hz=float(encoder_frame_rate_hz),
            mean_in_len=self.in_frames / self.utterances,
            mean_out_len=self.out_frames / self.utterances,
            num_utterances=self.utterances,
            mean_read_len=self.read_frames / self.utterances if self.read_frames else None,
            adapter=adapter,
            split="eval",
        )


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
    if getattr(model, "prealign", None) is not None:
        handles.append(model.prealign.register_forward_hook(read_hook))
    try:
        yield tally
    finally:
        for handle in handles:
            handle.remove()
