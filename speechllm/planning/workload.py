"""What a configuration feeds the model: clip durations, batches, and the LLM's sequence per adapter.

Durations come from the config's training manifests when they are on disk, else from a
CoVoST2-like distribution (:data:`COVOST2`): the paper's CoVoST2 training audio, 1035 hours in
the five languages (en 430 h, fr 264 h, de 184 h, es 113 h, it 44 h; Wang et al. 2020, table 2),
about 5.1 s per clip on average. The distribution's shape (log-normal, σ = 0.4) is an assumption.
Batches follow the data module: clips of about one duration (a bucket) up to ``data.max_duration``
seconds per GPU batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speechllm.metrics.paper import paper_compression
from speechllm.planning.meta_model import MetaSpeechLLM
from speechllm.planning.step import StepShape, encoder_frames, static_audio_tokens

SAMPLE_RATE = 16000
# Chat template, system prompt and instruction around the audio (about what Llama 3.1's and
# Mistral's templates give for the library's default prompt); targets at ~3.5 tokens per second
# of speech (about 2.7 words/s × 1.3 tokens/word), plus the stop token. Both are assumptions.
PROMPT_TOKENS = 40
TARGET_TOKENS_PER_SECOND = 3.5


@dataclass(frozen=True)
class Durations:
    """Training clip durations: quantiles in seconds, their mean, and the epoch's hours.

    Attributes:
        source: where they come from (manifest paths, or ``CoVoST2-like``).
        quantiles: seconds at the 10th, 50th and 99th percentiles.
        mean_seconds: mean clip duration.
        hours: audio hours of one epoch.
    """

    source: str
    quantiles: tuple[float, float, float]
    mean_seconds: float
    hours: float


COVOST2 = Durations("CoVoST2-like (1035 h, log-normal around 5.1 s)", (2.8, 4.7, 11.9), 5.1, 1035.0)


def manifest_durations(paths: Sequence[str | Path]) -> Durations | None:
    """Durations of the cuts in ``paths`` (lhotse manifests), or None when one is missing."""
    if not paths or not all(Path(p).is_file() for p in paths):
        return None
    from lhotse import load_manifest_lazy

    seconds = sorted(float(cut.duration) for path in paths for cut in load_manifest_lazy(path))
    if not seconds:
        return None

    def at(q: float) -> float:
        return seconds[min(len(seconds) - 1, int(q * len(seconds)))]

    names = ", ".join(Path(p).name for p in paths)
    return Durations(names, (at(0.1), at(0.5), at(0.99)), sum(seconds) / len(seconds), sum(seconds) / 3600)


def audio_tokens(model: MetaSpeechLLM, adapter: str, frames: int, rate_hz: float | None = None) -> int:
    """The adapter's output length for ``frames`` encoder frames.

    Base, Conv and WLQ-former run on ``meta`` (exact: the clip length decides theirs); for CIF and
    CTC the trained outputs decide it, so it comes from ``rate_hz`` when given, else from Table 1's
    compression ratio for the encoder.

    Raises:
        ValueError: an adapter without a Table 1 row and no ``rate_hz``.
    """
    exact = static_audio_tokens(model, frames)
    if exact is not None:
        return exact
    if rate_hz is not None:
        return max(1, math.ceil(frames * rate_hz / model.frame_rate_hz))
    paper = paper_compression(model.encoder_name, adapter)
    if paper is None:
        raise ValueError(
            f"adapter {adapter!r} has no Table 1 compression ratio: give its output rate (--rate HZ)"
        )
    return max(1, math.ceil(frames / paper.compression_ratio))


def step_shape(
    model: MetaSpeechLLM,
    adapter: str,
    seconds: float,
    max_duration: float,
    rate_hz: float | None = None,
    batch: int | None = None,
) -> StepShape:
    """The batch of clips of ``seconds`` that ``max_duration`` seconds of audio per GPU hold
    (or ``batch`` clips), with the LLM's sequence: prompt + audio tokens + target tokens."""
    samples = int(round(seconds * SAMPLE_RATE))
    clips = batch if batch is not None else max(1, int(max_duration // seconds))
    return StepShape(
        batch=clips,
        samples=samples,
        audio_tokens=audio_tokens(model, adapter, encoder_frames(model, samples), rate_hz),
        prompt_tokens=PROMPT_TOKENS,
        target_tokens=math.ceil(seconds * TARGET_TOKENS_PER_SECOND) + 1,
    )


def uniform_batch(prompts: Any, batch: int, samples: int, target: Sequence[int]) -> dict[str, Any]:
    """A real batch of ``batch`` equal clips (``samples`` of quiet noise, the ASR prompt, ``target``
    ids ending with the stop id, the transcript without it): the static shapes a plan assumes, for
    checking a plan against a real step. Keys as :meth:`SpeechLLM.forward` reads them."""
    import torch

    prefix, suffix = prompts.prompt_ids("asr", "en", None)
    inputs: dict[str, Any] = {
        "audio": torch.randn(batch, samples) * 0.1,
        "audio_lens": torch.full((batch,), samples),
    }
    rows = {"prefix": prefix, "suffix": suffix, "target": target, "transcript": target[:-1]}
    for name, ids in rows.items():
        inputs[f"{name}_ids"] = torch.tensor([list(ids)] * batch)
        inputs[f"{name}_lens"] = torch.full((batch,), len(ids))
    return inputs
