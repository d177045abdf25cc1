"""Real recorded speech for evaluation only: Debian's Asterisk core sound prompts.

Sources (CC-BY-SA-3.0; recorded by Allison Smith (en, es), June Wallack (fr), Carlo (it)):

- audio: ``asterisk-core-sounds-{en,es,fr,it}-wav`` → ``usr/share/asterisk/sounds/<voice>/<name>.wav``
  (8 kHz, 16-bit, mono);
- transcripts: ``asterisk-core-sounds-{en,es,fr,it}`` →
  ``usr/share/doc/asterisk-core-sounds-<lang>/core-sounds-<lang>.txt.gz``, one ``name: text``
  line per prompt (``;`` starts a comment; ``name`` may have a subdirectory, ``digits/1``).

Packages are fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x`` (no install).
The recordings manifest keeps the native 8 kHz; the cuts manifest resamples to 16 kHz on load
(lhotse ``Resample`` transform), so no converted copy of the audio is written.

Prompts are left out (and listed in ``realspeech_skipped_test.tsv``) when their transcript is not
what is spoken: empty, non-speech (tones, silence), annotated with ``[...]`` or ``(...)``, or
with characters lost to a bad encoding (the Italian file has ``?`` for accented letters).

Every supervision has ``custom["split"] = "eval_only"``: this set must never be trained on. A
prompt of es/fr/it whose name also has a usable English prompt carries that English transcript
as its translation (``tgt_lang = "en"``): the parallel es/fr/it→en ST subset.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lhotse import Recording, SupervisionSegment

from speechllm.audio import SAMPLE_RATE
from speechllm.data.manifest_check import ManifestError
from speechllm.languages import check_languages
from speechllm.prepare.common import SkipReport, make_supervision, probe_recordings, write_evaluation_set
from speechllm.prepare.debian import fetch_debian_packages

logger = logging.getLogger(__name__)

CORPUS = "realspeech"
SPLIT = "test"
EVAL_ONLY = {"split": "eval_only"}
LANGUAGES = ("en", "es", "fr", "it")
# Voice directory of each language's package (upstream names: <locale>_<gender>_<speaker>).
VOICE_DIRS = {
    "en": "en_US_f_Allison",
    "es": "es_MX_f_Allison",
    "fr": "fr_CA_f_June",
    "it": "it_IT_m_Carlo",
}

_ANNOTATION = re.compile(r"[\[\]()]")
# A "?" followed by a lower-case word, or standing alone mid-sentence, replaced an accented letter
# ("sar? esattamente", "La conferenza ? piena"); a real question mark ends a sentence.
_LOST_CHARACTER = re.compile(r"\?\s*[a-zà-ÿ]|\s\?\s+\S|\ufffd")
_NON_SPEECH_PREFIXES = ("silence/",)


def audio_packages(languages: Sequence[str]) -> list[str]:
    """Debian packages with the prompts' audio."""
    return [f"asterisk-core-sounds-{lang}-wav" for lang in languages]


def transcript_packages(languages: Sequence[str]) -> list[str]:
    """Debian packages with the prompts' transcripts (tiny: ~25 kB each)."""
    return [f"asterisk-core-sounds-{lang}" for lang in languages]


def transcript_path(root: Path, lang: str) -> Path:
    return root / "usr/share/doc" / f"asterisk-core-sounds-{lang}" / f"core-sounds-{lang}.txt.gz"


def parse_transcripts(path: str | Path) -> list[tuple[int, str, str]]:
    """Parse a ``core-sounds-<lang>.txt[.gz]`` file into ``(line, prompt name, text)`` entries.

    Texts are returned as written (whitespace collapsed); ``usable_transcript`` says which are
    really spoken, ``unique_transcripts`` resolves repeated names.

    Raises:
        ManifestError: missing file, non-UTF-8 text, or a line that is not ``name: text``
            (naming the file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: transcript file not found")
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    try:
        content = data.decode("utf-8-sig")  # the Italian file starts with a byte-order mark
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ManifestError(f"{path}:{line}: not valid UTF-8 ({err.reason})") from None
    entries = []
    for number, line in enumerate(content.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(";"):
            continue
        name, colon, text = stripped.partition(":")
        name = name.strip()
        if not colon or not name or " " in name:
            raise ManifestError(f"{path}:{number}: expected 'name: text', got {stripped[:60]!r}")
        entries.append((number, name, " ".join(text.split())))
    return entries


def unique_transcripts(
    entries: list[tuple[int, str, str]],
) -> tuple[dict[str, tuple[int, str]], dict[str, list[int]]]:
    """Split parsed entries into ``{name: (line, text)}`` and ``{name: lines}`` of conflicting repeats.

    A name listed twice with the same text is kept once; with different texts (the Spanish file
    has ``digits/0: cero`` and ``digits/0: diez``) nobody can tell which one the audio says, so
    the name goes to the conflicts.
    """
    first: dict[str, tuple[int, str]] = {}
    conflicts: dict[str, list[int]] = {}
    for number, name, text in entries:
        if name not in first:
            first[name] = (number, text)
        elif first[name][1] != text:
            conflicts.setdefault(name, [first[name][0]]).append(number)
    for name in conflicts:
        del first[name]
    return first, conflicts


def usable_transcript(name: str, text: str) -> str | None:
    """Why a prompt's transcript is not what is spoken, or None if it is usable."""
    if not text:
        return "no transcript"
    if name.startswith(_NON_SPEECH_PREFIXES):
        return "non-speech prompt"
    if _ANNOTATION.search(text):
        return "annotated transcript (brackets or parentheses)"
    if _LOST_CHARACTER.search(text):
        return "characters lost to a bad encoding"
    if not any(char.isalpha() or char.isdigit() for char in text):
        return "no words"
    return None


def prompt_id(lang: str, name: str) -> str:
    """Stable cut id: ``realspeech-<lang>-<name with / as _>``."""
    return f"{CORPUS}-{lang}-{name.replace('/', '_')}"


def _package_root(
    languages: Sequence[str],
    output_dir: str | Path | None,
    cache_dir: str | Path | None,
    package_root: str | Path | None,
) -> Path:
    """The unpacked root of the prompt packages: ``package_root`` as given, else fetched.

    Args:
        languages: whose audio and transcript packages to fetch.
        output_dir: the default cache's parent (``<output_dir>/debian``).
        cache_dir: where packages are downloaded and unpacked.
        package_root: an already unpacked root; skips downloading.

    Returns:
        The directory holding ``usr/share/...``.

    Raises:
        ValueError: none of ``cache_dir``, ``package_root`` or ``output_dir`` given.
    """
    if package_root is not None:
        return Path(package_root)
    if cache_dir is None:
        if output_dir is None:
            raise ValueError("give cache_dir, package_root or output_dir (packages are fetched there)")
        cache_dir = Path(output_dir) / "debian"
    return fetch_debian_packages(transcript_packages(languages) + audio_packages(languages), cache_dir)


def _usable_transcripts(
    root: Path, languages: Sequence[str], skips: SkipReport
) -> dict[str, dict[str, tuple[str, str]]]:
    """Each language's prompts whose transcript is what is spoken; the others go to ``skips``.

    Args:
        root: the unpacked package root.
        languages: whose transcript files to read.
        skips: collects conflicting repeats and unusable transcripts (with ``file:line``).

    Returns:
        ``{lang: {name: (file:line, text)}}``.
    """
    usable: dict[str, dict[str, tuple[str, str]]] = {}
    for lang in languages:
        path = transcript_path(root, lang)
        usable[lang] = {}
        prompts, conflicts = unique_transcripts(parse_transcripts(path))
        for name, lines in conflicts.items():
            for number in lines:
                skips.add(f"{path}:{number}", name, "transcript: prompt name repeated with different texts")
        for name, (number, text) in prompts.items():
            reason = usable_transcript(name, text)
            if reason is not None:
                skips.add(f"{path}:{number}", name, f"transcript: {reason}")
            else:
                usable[lang][name] = (f"{path}:{number}", text)
    return usable


def _audio_entries(
    root: Path, usable: dict[str, dict[str, tuple[str, str]]], skips: SkipReport
) -> list[tuple[str, Path, str]]:
    """The ``(recording_id, wav path, file:line)`` of each usable prompt whose audio is shipped.

    Args:
        root: the unpacked package root.
        usable: ``{lang: {name: (file:line, text)}}`` from ``_usable_transcripts``.
        skips: collects the transcribed prompts without audio.

    Returns:
        Entries for ``probe_recordings``, by language, then prompt name.

    Raises:
        ManifestError: a language's prompt directory is missing.
    """
    entries = []
    for lang, prompts in usable.items():
        sounds = root / "usr/share/asterisk/sounds" / VOICE_DIRS[lang]
        if not sounds.is_dir():
            raise ManifestError(f"{sounds}: prompt directory of asterisk-core-sounds-{lang}-wav not found")
        for name, (where, _) in sorted(prompts.items()):
            audio = sounds / f"{name}.wav"
            if not audio.is_file():
                # The transcript lists a few prompts that the package does not ship.
                skips.add(where, str(audio), "missing: transcript without audio in the package")
                continue
            entries.append((prompt_id(lang, name), audio, where))
    return entries


def _build_supervisions(
    usable: dict[str, dict[str, tuple[str, str]]],
    recordings: dict[str, Recording],
    max_duration: float | None,
    skips: SkipReport,
) -> list[SupervisionSegment]:
    """One eval-only supervision per probed prompt, with the English text as es/fr/it translation.

    Args:
        usable: ``{lang: {name: (file:line, text)}}`` from ``_usable_transcripts``.
        recordings: probed recordings by id; those over ``max_duration`` are removed from it.
        max_duration: leave out longer prompts (None keeps all).
        skips: collects the prompts left out for their duration.

    Returns:
        The supervisions, by language, then prompt name.
    """
    english = usable.get("en", {})
    supervisions = []
    for lang, prompts in usable.items():
        for name, (where, text) in sorted(prompts.items()):
            recording = recordings.get(prompt_id(lang, name))
            if recording is None:
                continue
            if max_duration is not None and recording.duration > max_duration:
                skips.add(where, name, f"duration: {recording.duration:.2f} s > {max_duration} s")
                del recordings[recording.id]
                continue
            translation = english[name][1] if lang != "en" and name in english else None
            supervisions.append(
                make_supervision(
                    prompt_id(lang, name),
                    recording,
                    text,
                    lang,
                    translation=translation,
                    tgt_lang="en" if translation is not None else None,
                    speaker=VOICE_DIRS[lang],
                    extra_custom=EVAL_ONLY,
                )
            )
    return supervisions


def prepare_realspeech(
    output_dir: str | Path | None = None,
    languages: Sequence[str] = LANGUAGES,
    cache_dir: str | Path | None = None,
    package_root: str | Path | None = None,
    max_duration: float | None = None,
    num_jobs: int = 1,
) -> dict[str, dict[str, Any]]:
    """Build the evaluation-only real-speech set.

    Args:
        output_dir: where ``realspeech_{recordings,supervisions,cuts}_test.jsonl.gz`` go.
        languages: among en, es, fr, it. ST translations need ``"en"`` among them.
        cache_dir: where packages are downloaded and unpacked (default ``<output_dir>/debian``).
        package_root: an already unpacked root (with ``usr/share/...``); skips downloading.
        max_duration: leave out longer prompts (a few demo prompts last over a minute; Whisper
            sees at most 30 s).
        num_jobs: processes reading wav headers.

    Returns:
        ``{"test": {"recordings", "supervisions", "cuts"}}``; cuts resample to 16 kHz on load.
    """
    languages = check_languages(languages)
    for lang in languages:
        if lang not in VOICE_DIRS:
            raise ValueError(f"no Asterisk prompts for {lang!r}; available: {', '.join(VOICE_DIRS)}")
    root = _package_root(languages, output_dir, cache_dir, package_root)
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)

    skips = SkipReport()
    usable = _usable_transcripts(root, languages, skips)
    recordings = probe_recordings(_audio_entries(root, usable, skips), skips, num_jobs)
    supervisions = _build_supervisions(usable, recordings, max_duration, skips)
    empty = f"{root}: no usable prompts for {list(languages)}"
    found = list(recordings.values())
    manifests = write_evaluation_set(found, supervisions, skips, output_dir, CORPUS, SAMPLE_RATE, empty)
    logger.info(
        "realspeech: %d prompts (%d with an English translation)",
        len(supervisions),
        sum(1 for s in supervisions if s.custom and "translation" in s.custom),
    )
    return {SPLIT: manifests}


def realspeech_texts(root: str | Path, languages: Sequence[str] = LANGUAGES) -> set[str]:
    """Every transcript of the real-speech prompts (any usability), for excluding from training text."""
    texts = set()
    for lang in languages:
        path = transcript_path(Path(root), lang)
        texts.update(text for _, _, text in parse_transcripts(path) if text)
    return texts
