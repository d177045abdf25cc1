"""The listening check's decoding: the same clips again, with another clip's audio and with silence.

:class:`ClipSample` keeps the first ``max_clips`` clips of a decoded test set (their audio, or
cached encoder outputs, on the CPU, and what the model said with them);
:func:`listening_check` decodes them twice more, with each clip's signal replaced by another
clip's (a seeded derangement, :func:`derangement`) and by silence of the same length (audio
only: an encoder cache holds no silence), and scores the three decodings with
:func:`speechllm.metrics.listening.listening_scores`. Used by ``speechllm evaluate
--listening-check`` (:func:`speechllm.evaluation.evaluate`) and the training callback
:class:`speechllm.lightning.listening_callback.ListeningCheck`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from speechllm.data.batch import Batch
from speechllm.evaluation.decoding import DecodedSentence
from speechllm.metrics.listening import DEFAULT_LISTENING_CLIPS, listening_scores, listening_verdict

log = logging.getLogger(__name__)


@dataclass
class Clip:
    """One clip of the check: its own signal and what the model said with it."""

    task: str
    src_lang: str
    tgt_lang: str | None
    reference: str
    hypothesis: str
    signal: Tensor  # (S,) audio samples or (T, C) encoder outputs, unpadded, on the CPU


@dataclass
class ClipSample:
    """The first ``max_clips`` clips of a test set, kept as they are decoded."""

    max_clips: int = DEFAULT_LISTENING_CLIPS
    clips: list[Clip] = field(default_factory=list)
    cached: bool | None = None  # encoder outputs instead of audio

    def add(self, batch: Batch, decoded: Sequence[DecodedSentence]) -> None:
        """Keep the batch's decoded clips (``decoded``: :func:`~speechllm.evaluation.decoding.decode_batch`'s
        sentences of ``batch``) until ``max_clips`` are kept."""
        cached = batch.encoder_hidden is not None
        signal = batch.encoder_hidden if cached else batch.audio
        lens = batch.encoder_lens if cached else batch.audio_lens
        assert signal is not None and lens is not None, "a batch carries audio or encoder outputs"
        self.cached = cached
        rows = {cut_id: i for i, cut_id in enumerate(batch.cut_ids)}
        for sentence in decoded:
            if len(self.clips) >= self.max_clips:
                return
            i = rows[sentence.cut_id]
            own = signal[i, : int(lens[i])].detach().to("cpu", copy=True)
            self.clips.append(
                Clip(
                    sentence.task,
                    sentence.src_lang,
                    sentence.tgt_lang,
                    sentence.reference,
                    sentence.hypothesis,
                    own,
                )
            )


def derangement(n: int, seed: int) -> list[int]:
    """A seeded permutation of ``range(n)`` with no fixed point (Sattolo's algorithm: one cycle).

    ``n < 2`` has none: ``ValueError``.
    """
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 clips, got {n}")
    order = list(range(n))
    rng = random.Random(seed)
    for i in range(n - 1, 0, -1):
        j = rng.randrange(i)  # j < i: no element stays where it is
        order[i], order[j] = order[j], order[i]
    return order


def _pad(signals: Sequence[Tensor], device: torch.device) -> tuple[Tensor, Tensor]:
    """(B, S) or (B, T, C) zero-padded, and the lengths (B,)."""
    lens = torch.tensor([s.shape[0] for s in signals], device=device)
    padded = torch.nn.utils.rnn.pad_sequence(list(signals), batch_first=True)
    return padded.to(device), lens


def decode_signals(
    model: Any,
    clips: Sequence[Clip],
    signals: Sequence[Tensor],
    cached: bool,
    batch_size: int,
    device: torch.device,
    **decoding: Any,
) -> list[str]:
    """Decode each clip's task and languages with ``signals[i]`` in place of its own; texts in order."""
    texts: list[str] = [""] * len(clips)
    for task in sorted({clip.task for clip in clips}):
        rows = [i for i, clip in enumerate(clips) if clip.task == task]
        for start in range(0, len(rows), batch_size):
            part = rows[start : start + batch_size]
            padded, lens = _pad([signals[i] for i in part], device)
            names = ("encoder_hidden", "encoder_lens") if cached else ("audio", "audio_lens")
            generation = model.generate_detailed(
                **dict(zip(names, (padded, lens))),
                task=task,
                src_lang=[clips[i].src_lang for i in part],
                tgt_lang=[clips[i].tgt_lang for i in part] if task == "st" else None,
                **decoding,
            )
            for i, text in zip(part, generation.texts):
                texts[i] = text
    return texts


@torch.no_grad()
def listening_check(
    model: Any,
    sample: ClipSample,
    device: torch.device,
    batch_size: int = 8,
    seed: int = 0,
    **decoding: Any,
) -> dict[str, Any] | None:
    """Decode the sample with swapped audio and with silence; the scores and settings (None with
    fewer than two clips: nothing to swap).

    Args:
        decoding: ``model.generate_detailed`` options (``max_new_tokens``, ``decoder``, beams...),
            the same as the first decoding's.
    """
    clips = sample.clips
    if len(clips) < 2:
        return None
    cached = bool(sample.cached)
    order = derangement(len(clips), seed)
    swapped = decode_signals(
        model, clips, [clips[j].signal for j in order], cached, batch_size, device, **decoding
    )
    silence = None
    if not cached:
        quiet = [torch.zeros_like(clip.signal) for clip in clips]
        silence = decode_signals(model, clips, quiet, cached, batch_size, device, **decoding)
    record = listening_scores([c.reference for c in clips], [c.hypothesis for c in clips], swapped, silence)
    return {**record, "seed": seed, "signal": "encoder outputs" if cached else "audio"}


def checked_listening(
    model: Any,
    sample: ClipSample | None,
    device: torch.device,
    batch_size: int,
    seed: int,
    generation: dict[str, Any],
    decoder: str,
) -> dict[str, Any] | None:
    """The listening check's record (None when not asked for or with fewer than 2 clips); the
    verdict goes to the log, as a warning when the model is flagged."""
    if sample is None:
        return None
    record = listening_check(model, sample, device, batch_size, seed, decoder=decoder, **generation)
    if record is None:
        log.warning("listening check: fewer than 2 clips decoded, nothing to swap")
        return None
    flagged, words = listening_verdict(record)
    (log.warning if flagged else log.info)("listening check: %s", words)
    return record
