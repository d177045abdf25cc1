"""A tiny, dependency-free "spoken digits" corpus of tone words, for CI and the tiny recipe.

Each utterance says 2–6 digit words; each word is a 0.15–0.3 s tone whose pitch identifies the
digit, with small random pitch and timing jitter, so the mapping audio → text is learnable. It is
an engineering fixture, not speech: real speech comes from :mod:`speechllm.prepare.synthetic`.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

from speechllm.audio import SAMPLE_RATE
from speechllm.io import atomic_write
from speechllm.prepare.common import write_manifest

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GERMAN = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
BASE_HZ = 220.0


def synthesize(digits: list[int], rng: random.Random) -> np.ndarray:
    """Tone words separated by short silences: (S,) float32 at 16 kHz."""
    pieces = [np.zeros(int(0.1 * SAMPLE_RATE), dtype=np.float32)]
    for digit in digits:
        seconds = rng.uniform(0.15, 0.3)
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        freq = BASE_HZ * 2 ** (digit / 4) * rng.uniform(0.98, 1.02)
        envelope = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)
        pieces.append((0.3 * envelope * np.sin(2 * np.pi * freq * t)).astype(np.float32))
        pieces.append(np.zeros(int(rng.uniform(0.05, 0.12) * SAMPLE_RATE), dtype=np.float32))
    return np.concatenate(pieces)


def prepare_tones(
    output_dir: str | Path, num_train: int = 200, num_dev: int = 20, num_test: int = 20, seed: int = 0
) -> dict[str, CutSet]:
    """Write ``tones_cuts_{train,dev,test}.jsonl.gz`` and the wavs; returns the CutSets.

    Supervisions: ``text`` = English digit words, ``language`` = "en", ``custom`` =
    {"translation": German digit words, "tgt_lang": "de"}, so the corpus serves ASR and ST.
    Splits share no digit sequence.
    """
    output_dir = Path(output_dir)
    (output_dir / "wav").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    seen: set[tuple[int, ...]] = set()
    result: dict[str, CutSet] = {}
    for split, count in (("train", num_train), ("dev", num_dev), ("test", num_test)):
        recordings, supervisions = [], []
        while len(recordings) < count:
            digits = tuple(rng.randrange(10) for _ in range(rng.randint(2, 6)))
            if digits in seen:
                continue
            seen.add(digits)
            rec_id = f"tones-{split}-{len(recordings):05d}"
            path = output_dir / "wav" / f"{rec_id}.wav"
            with atomic_write(path, keep_suffixes=True) as tmp:
                sf.write(tmp, synthesize(list(digits), rng), SAMPLE_RATE)
            recording = Recording.from_file(path.absolute(), recording_id=rec_id)
            recordings.append(recording)
            supervisions.append(
                SupervisionSegment(
                    id=rec_id,
                    recording_id=rec_id,
                    start=0.0,
                    duration=recording.duration,
                    language="en",
                    text=" ".join(WORDS[d] for d in digits),
                    custom={"translation": " ".join(GERMAN[d] for d in digits), "tgt_lang": "de"},
                )
            )
        cuts = CutSet.from_manifests(
            RecordingSet.from_recordings(recordings), SupervisionSet.from_segments(supervisions)
        )
        write_manifest(cuts, output_dir / f"tones_cuts_{split}.jsonl.gz")
        result[split] = cuts
    return result
