"""A parallel multilingual synthetic speech corpus (en, de, es, fr, it) made with espeak-ng.

Its sentences come from real, varied text sources obtainable offline from Debian (fortunes,
translated gettext catalogs of GNOME packages, a few templates; see
:mod:`speechllm.prepare.text_sources`), deduplicated, cleared of the real-speech evaluation
transcripts, and assigned to exactly one split each, so train, dev and test share no sentence
in any language.

Each utterance gets a random (seeded) espeak-ng voice, voice variant, rate and pitch; audio is
written as 16 kHz mono 16-bit wav. Supervisions follow the library's convention: English
sentences with a German translation and de/es/fr/it sentences with an English one carry
``custom = {"translation", "tgt_lang"}`` (the paper's ST directions); fortunes are ASR-only.
Cut ids are ``synthetic-<lang>-<hash of the sentence>``: one sentence has the same hash in all
its languages.
"""

from __future__ import annotations

import hashlib
import logging
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from lhotse import Recording, RecordingSet, SupervisionSet
from lhotse.augmentation import Resample

from speechllm.audio import SAMPLE_RATE
from speechllm.data.manifest_check import ManifestError
from speechllm.io import atomic_write
from speechllm.languages import check_languages
from speechllm.prepare.common import make_supervision, parallel_map, write_manifests
from speechllm.prepare.text_sources import TextItem, assign_splits, deduplicate, load_text_sources

logger = logging.getLogger(__name__)

CORPUS = "synthetic"
SPLITS = ("train", "dev", "test")

# espeak-ng's own voices per language (mbrola voices need extra packages and are left out), and
# voice variants that change timbre without changing the speaking rate much.
ESPEAK_VOICES: dict[str, tuple[str, ...]] = {
    "en": ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029"),
    "de": ("de",),
    "es": ("es", "es-419"),
    "fr": ("fr-fr", "fr-be", "fr-ch"),
    "it": ("it",),
}
ESPEAK_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4")
RATE_RANGE = (130, 200)  # words per minute (espeak-ng default: 175)
PITCH_RANGE = (25, 75)  # 0-99 (default: 50)


# ----------------------------------------------------------------------------- synthesis


def check_espeak() -> str:
    """Path of espeak-ng, or a RuntimeError saying how to install it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise RuntimeError(
            "espeak-ng not found: run scripts/install_system_deps.sh (or: apt-get install espeak-ng)"
        )
    return path


def synthesize(text: str, voice: str, rate: int, pitch: int, path: str | Path) -> Recording:
    """Speak ``text`` with espeak-ng and write ``path`` as 16 kHz mono 16-bit wav.

    Args:
        text: the sentence (UTF-8, passed on stdin so no text is taken for an option).
        voice: espeak-ng voice, optionally with a variant (``"en-us+f3"``).
        rate: words per minute; pitch: 0–99.

    Returns:
        The lhotse Recording of the written file (id = file stem).
    """
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        raw_path = Path(tmp) / "raw.wav"
        result = subprocess.run(
            [check_espeak(), "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", str(raw_path), "--stdin"],
            input=text.encode("utf-8"),
            capture_output=True,
            check=False,
        )
        if result.returncode != 0 or not raw_path.is_file():
            raise RuntimeError(
                f"espeak-ng -v {voice} failed on {text!r}: {result.stderr.decode(errors='replace')}"
            )
        samples, rate_hz = sf.read(raw_path, dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if rate_hz != SAMPLE_RATE:
        mono = Resample(rate_hz, SAMPLE_RATE)(mono[None])[0]
    with atomic_write(path, keep_suffixes=True) as tmp:  # a killed run leaves no half-written clip
        sf.write(tmp, np.clip(mono, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
    return Recording.from_file(path.absolute(), recording_id=path.stem)


def _synthesize_job(job: tuple[str, str, int, int, str]) -> Recording:
    text, voice, rate, pitch, path = job
    if Path(path).is_file():  # resuming an interrupted run
        return Recording.from_file(Path(path).absolute(), recording_id=Path(path).stem)
    return synthesize(text, voice, rate, pitch, path)


def utterance_id(item: TextItem, lang: str) -> str:
    """``synthetic-<lang>-<12 hex of the sentence key>``: stable, and shared across a sentence's languages."""
    return f"{CORPUS}-{lang}-{hashlib.sha1(item.key().encode('utf-8')).hexdigest()[:12]}"


def pick_voice(uid: str, lang: str, seed: int) -> tuple[str, int, int]:
    """(voice, rate, pitch) drawn from a generator seeded by the utterance id: stable across runs."""
    rng = random.Random(f"{seed}:{uid}")
    voice = rng.choice(ESPEAK_VOICES[lang])
    variant = rng.choice(ESPEAK_VARIANTS)
    return (f"{voice}+{variant}" if variant else voice), rng.randint(*RATE_RANGE), rng.randint(*PITCH_RANGE)


def translation_for(item: TextItem, lang: str) -> tuple[str | None, str | None]:
    """The paper's ST direction for a sentence: en→de, and de/es/fr/it→en; None when absent."""
    target = "de" if lang == "en" else "en"
    if target in item.texts:
        return item.texts[target], target
    return None, None


def prepare_synthetic(
    output_dir: str | Path,
    languages: Sequence[str] = ("en", "de", "es", "fr", "it"),
    num_train: int | Mapping[str, int] = 2000,
    num_dev: int = 100,
    num_test: int = 100,
    num_jobs: int = 1,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    items: Sequence[TextItem] | None = None,
    exclude_texts: Iterable[str] = (),
) -> dict[str, dict[str, Any]]:
    """Synthesize the corpus and write ``synthetic_{recordings,supervisions,cuts}_<split>.jsonl.gz``.

    Args:
        output_dir: manifests go here, audio under ``<output_dir>/synthetic_audio/<split>/<lang>/``.
        languages: any of en, de, es, fr, it.
        num_train, num_dev, num_test: sentences per language in each split (fewer, with a
            warning, if the sources run out); ``num_train`` may be ``{lang: count}`` (the demo
            trains English ASR on thousands and ST on a few hundred per language).
        num_jobs: synthesis processes.
        cache_dir: where the Debian text sources are fetched (default ``<output_dir>/debian``).
        seed: drives the split assignment and the voices.
        items: use these sentences instead of the Debian sources (tests, user text).
        exclude_texts: sentences never to use (the real-speech transcripts are always excluded
            when the Debian sources are used).

    Returns:
        ``{split: {"recordings", "supervisions", "cuts"}}``.
    """
    languages = check_languages(languages)
    check_espeak()
    output_dir = Path(output_dir)
    exclude = set(exclude_texts)
    if items is None:
        items, realspeech = load_text_sources(cache_dir or output_dir / "debian", languages)
        exclude |= realspeech
    pool = deduplicate(items, languages, exclude)
    counts = {"train": num_train, "dev": num_dev, "test": num_test}
    wanted = {split: n for split, n in counts.items() if (n if isinstance(n, int) else sum(n.values())) > 0}
    chosen = assign_splits(pool, languages, wanted, seed)
    manifests: dict[str, dict[str, Any]] = {}
    for split, utterances in chosen.items():
        jobs = []
        for item, lang in utterances:
            uid = utterance_id(item, lang)
            voice, rate, pitch = pick_voice(uid, lang, seed)
            path = output_dir / f"{CORPUS}_audio" / split / lang / f"{uid}.wav"
            jobs.append((item.texts[lang], voice, rate, pitch, str(path)))
        recordings = parallel_map(
            _synthesize_job, jobs, num_jobs=num_jobs, description=f"synthesize {split}", unit="clips"
        )
        supervisions = []
        for (item, lang), recording, job in zip(utterances, recordings, jobs):
            translation, tgt_lang = translation_for(item, lang)
            supervisions.append(
                make_supervision(
                    recording.id, recording, item.texts[lang], lang, translation, tgt_lang, speaker=job[1]
                )
            )
        if not supervisions:
            raise ManifestError(f"synthetic {split}: no sentences available for {list(languages)}")
        manifests[split] = write_manifests(
            RecordingSet.from_recordings(recordings),
            SupervisionSet.from_segments(supervisions),
            output_dir,
            CORPUS,
            split,
        )
        logger.info("synthetic %s: %d utterances", split, len(supervisions))
    return manifests
