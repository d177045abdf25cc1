"""A parallel multilingual synthetic speech corpus (en, de, es, fr, it) made with espeak-ng and,
on request, festival, flite and piper voices (:mod:`speechllm.prepare.voices`).

Its sentences come from real, varied text sources obtainable offline from Debian (fortunes,
translated gettext catalogs of GNOME packages, a few templates; see
:mod:`speechllm.prepare.text_sources`), deduplicated, cleared of the real-speech evaluation
transcripts, and assigned to exactly one split each, so train, dev and test share no sentence
in any language.

Each utterance gets a random (seeded) engine, voice, rate and pitch, recorded as the supervision's
``speaker``; audio is written as 16 kHz mono 16-bit wav. Supervisions follow the library's convention: English
sentences with a German translation and de/es/fr/it sentences with an English one carry
``custom = {"translation", "tgt_lang"}`` (the paper's ST directions); fortunes are ASR-only.
Cut ids are ``synthetic-<lang>-<hash of the sentence>``: one sentence has the same hash in all
its languages.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lhotse import Recording, RecordingSet, SupervisionSet

from speechllm.data.manifest_check import ManifestError
from speechllm.languages import check_languages
from speechllm.prepare.common import make_supervision, parallel_map, write_manifests
from speechllm.prepare.text_sources import TextItem, assign_splits, deduplicate, load_text_sources
from speechllm.prepare.voices import Voice, check_engines, pick_voice, speak_many

logger = logging.getLogger(__name__)

CORPUS = "synthetic"
SPLITS = ("train", "dev", "test")

DEFAULT_ENGINES = ("espeak-ng",)


CHUNK = 32  # clips per synthesis job: festival speaks a chunk's sentences in one process


def _synthesize_chunk(jobs: Sequence[tuple[str, Voice, str, str]]) -> list[Recording]:
    """``(text, voice, prosody seed, path)`` jobs → their recordings, in order; a clip already on
    disk (an interrupted run) is read, not spoken again."""
    todo = [job for job in jobs if not Path(job[3]).is_file()]
    spoken = iter(speak_many([(text, voice, random.Random(seed), path) for text, voice, seed, path in todo]))
    return [
        next(spoken)
        if job in todo
        else Recording.from_file(Path(job[3]).absolute(), recording_id=Path(job[3]).stem)
        for job in jobs
    ]


def utterance_id(item: TextItem, lang: str) -> str:
    """``synthetic-<lang>-<12 hex of the sentence key>``: stable, and shared across a sentence's languages."""
    return f"{CORPUS}-{lang}-{hashlib.sha1(item.key().encode('utf-8')).hexdigest()[:12]}"


def voice_for(uid: str, voices: Sequence[Voice], seed: int) -> tuple[Voice, str]:
    """The utterance's voice and the seed of its rate/pitch draws, from a generator seeded by the
    utterance id: stable across runs and independent of the other utterances."""
    rng = random.Random(f"{seed}:{uid}")
    return pick_voice(voices, rng), f"{seed}:{uid}:prosody"


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
    engines: Sequence[str] = DEFAULT_ENGINES,
    extra_train_text: Sequence[str] = (),
    extra_train_share: float = 0.5,
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
        engines: synthesis engines to draw each utterance's voice from (any of espeak-ng,
            festival, flite, piper; :mod:`speechllm.prepare.voices`); a language takes the
            engines that have a voice for it. The voice is recorded as the supervision's
            ``speaker``, ``"<engine>:<voice>"``.
        extra_train_text: training-only English text sources (``"wordnet"``: WordNet's usage
            examples, a far broader vocabulary than the quotations); they never enter dev or test,
            which stay the same sentences with or without them.
        extra_train_share: the share of the English training sentences drawn from them.

    Returns:
        ``{split: {"recordings", "supervisions", "cuts"}}``.
    """
    languages = check_languages(languages)
    voices = check_engines(engines, languages)
    output_dir = Path(output_dir)
    exclude = set(exclude_texts)
    if items is None:
        items, realspeech = load_text_sources(cache_dir or output_dir / "debian", languages, extra_train_text)
        exclude |= realspeech
    elif extra_train_text:
        raise ValueError("extra_train_text needs the Debian sources (items=None)")
    if not 0.0 <= extra_train_share <= 1.0:
        raise ValueError(f"extra_train_share must be in [0, 1], got {extra_train_share}")
    # One deduplication over both: an extra sentence never repeats a dev or test one.
    deduplicated = deduplicate(items, languages, exclude)
    pool = [item for item in deduplicated if item.source not in extra_train_text]
    train_only = [item for item in deduplicated if item.source in extra_train_text]
    counts = {"train": num_train, "dev": num_dev, "test": num_test}
    wanted = {split: n for split, n in counts.items() if (n if isinstance(n, int) else sum(n.values())) > 0}
    chosen = assign_splits(pool, languages, wanted, seed, train_only, extra_train_share)
    manifests: dict[str, dict[str, Any]] = {}
    for split, utterances in chosen.items():
        jobs = []
        for item, lang in utterances:
            uid = utterance_id(item, lang)
            voice, prosody_seed = voice_for(uid, voices[lang], seed)
            # one folder per engine: resuming with other engines never reuses another voice's clip
            path = output_dir / f"{CORPUS}_audio" / split / lang / voice.engine / f"{uid}.wav"
            jobs.append((item.texts[lang], voice, prosody_seed, str(path)))
        chunks = [jobs[start : start + CHUNK] for start in range(0, len(jobs), CHUNK)]
        recordings = [
            recording
            for chunk in parallel_map(
                _synthesize_chunk, chunks, num_jobs=num_jobs, description=f"synthesize {split}", unit="chunks"
            )
            for recording in chunk
        ]
        supervisions = []
        for (item, lang), recording, job in zip(utterances, recordings, jobs):
            translation, tgt_lang = translation_for(item, lang)
            supervisions.append(
                make_supervision(
                    recording.id,
                    recording,
                    item.texts[lang],
                    lang,
                    translation,
                    tgt_lang,
                    speaker=job[1].label,
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
