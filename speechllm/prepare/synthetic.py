"""A parallel multilingual synthetic speech corpus (en, de, es, fr, it) made with espeak-ng.

Text comes from real, varied sources obtainable offline from Debian (``apt-get download``, unpacked
with ``dpkg-deb -x``, never installed):

- English sentences for ASR: the ``fortunes`` / ``fortunes-min`` quotation files (BSD licence);
- parallel en/de/es/fr/it sentences for ST: translated gettext catalogs (``.mo``) of GNOME
  packages (GTK, Nautilus, Settings, Software, Shell, Evince, Totem; LGPL/GPL), aligned by msgid;
- a few parallel templates written for this library, as a supplement.

Sentences are filtered to what a synthesizer can read and a transcript can say (no markup,
format strings, digits or symbols; 4–30 words), deduplicated by normalized text in every
language, and any sentence of the real-speech evaluation set (Asterisk prompts) is removed.
A sentence and its translations belong to exactly one split, so train, dev and test share no
sentence in any language.

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
import re
import shutil
import struct
import subprocess
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from lhotse import Recording, RecordingSet, SupervisionSet
from lhotse.augmentation import Resample

from speechllm.audio import SAMPLE_RATE
from speechllm.data.manifest import ManifestError
from speechllm.languages import check_languages
from speechllm.prepare.common import make_supervision, write_manifests
from speechllm.prepare.debian import fetch_debian_packages

logger = logging.getLogger(__name__)

CORPUS = "synthetic"
SPLITS = ("train", "dev", "test")

FORTUNE_PACKAGES = ("fortunes-min", "fortunes")
# Files of the fortunes package with mostly plain prose (no ASCII art, no offensive/ethnic jokes).
FORTUNE_FILES = (
    "fortunes",
    "wisdom",
    "literature",
    "science",
    "education",
    "computers",
    "people",
    "humorists",
    "pets",
    "food",
    "kids",
    "sports",
    "work",
    "love",
    "platitudes",
    "miscellaneous",
    "cookie",
    "goedel",
    "magic",
    "pratchett",
    "law",
    "medicine",
    "paradoxum",
    "tao",
    "news",
    "riddles",
)
CATALOG_PACKAGES = (
    "libgtk-3-common",
    "gnome-control-center-data",
    "nautilus-data",
    "gnome-software-common",
    "gnome-shell-common",
    "evince-common",
    "totem-common",
)
REALSPEECH_TRANSCRIPT_PACKAGES = tuple(f"asterisk-core-sounds-{lang}" for lang in ("en", "es", "fr", "it"))

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

MIN_WORDS, MAX_WORDS = 4, 30
# Text a synthesizer reads as written: letters, spaces and sentence punctuation only.
_UNSPEAKABLE = re.compile(r"[0-9%{}<>\\/@$|=_#*&+~^\[\]()\t\n]|https?:|\.\w")


@dataclass(frozen=True)
class TextItem:
    """One sentence in one or more languages (``texts[lang]``), from ``source``."""

    texts: dict[str, str]
    source: str

    def key(self) -> str:
        """Identity of the sentence: its normalized English text, else its first language's."""
        lang = "en" if "en" in self.texts else sorted(self.texts)[0]
        return normalize_text(self.texts[lang])


# ----------------------------------------------------------------------------- text


def normalize_text(text: str) -> str:
    """Lower-case, punctuation removed, whitespace collapsed: the form two sentences are compared in."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(char if char.isalnum() or char.isspace() else " " for char in text)
    return " ".join(text.split())


def speakable(text: str) -> str | None:
    """The sentence cleaned for synthesis, or None if it is not a sentence espeak-ng reads as written.

    Removes a single gettext mnemonic underscore (``_Open``) and typographic apostrophes.
    """
    if text.count("_") == 1:
        text = text.replace("_", "")
    text = text.replace("\u2019", "'").replace("\u2026", "...")
    text = " ".join(text.split())
    if not text or _UNSPEAKABLE.search(text):
        return None
    words = text.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return None
    if sum(char.isalpha() for char in text) < 0.7 * len(text.replace(" ", "")):
        return None
    return text


def read_fortunes(path: str | Path) -> list[str]:
    """Speakable entries of a fortune file (entries separated by ``%`` lines; attributions dropped)."""
    raw = Path(path).read_bytes().decode("utf-8", errors="replace")
    sentences = []
    for entry in re.split(r"^%\s*$", raw, flags=re.MULTILINE):
        # "\t\t-- Mark Twain" lines are attributions, not part of the quotation.
        lines = [line for line in entry.splitlines() if not line.strip().startswith("--")]
        text = speakable(" ".join(lines))
        if text is not None and "\ufffd" not in text and "\b" not in text:
            sentences.append(text)
    return sentences


def read_mo(path: str | Path) -> dict[str, str]:
    """Read a gettext ``.mo`` catalog into ``{msgid: msgstr}`` (singular, translated entries only).

    Entries with a context (``ctxt\\x04msgid``) are keyed by the msgid alone; plural entries and
    the header are skipped.

    Raises:
        ManifestError: not a .mo file.
    """
    data = Path(path).read_bytes()
    if len(data) < 20:
        raise ManifestError(f"{path}: too short for a .mo file")
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0x950412DE:
        order = "<"
    elif magic == 0xDE120495:
        order = ">"
    else:
        raise ManifestError(f"{path}: not a gettext .mo file (magic {magic:#x})")
    _, count, originals_at, translations_at = struct.unpack(order + "4I", data[4:20])
    catalog: dict[str, str] = {}
    for index in range(count):
        length, offset = struct.unpack(
            order + "2I", data[originals_at + 8 * index : originals_at + 8 * index + 8]
        )
        msgid = data[offset : offset + length]
        length, offset = struct.unpack(
            order + "2I", data[translations_at + 8 * index : translations_at + 8 * index + 8]
        )
        msgstr = data[offset : offset + length]
        if not msgid or b"\x00" in msgid or not msgstr:  # header, plural forms, untranslated
            continue
        try:
            original = msgid.decode("utf-8").split("\x04")[-1]
            translation = msgstr.decode("utf-8")
        except UnicodeDecodeError:
            continue  # all GNOME catalogs are UTF-8; a legacy one is not worth guessing
        catalog.setdefault(original, translation)
    return catalog


def catalog_items(locale_dir: str | Path, languages: Sequence[str]) -> list[TextItem]:
    """Parallel sentences from every gettext domain found under ``<locale_dir>/<lang>/LC_MESSAGES``.

    An English msgid becomes an item when it and its translations in all other ``languages``
    are speakable and really translated (not copied).
    """
    locale_dir = Path(locale_dir)
    others = [lang for lang in languages if lang != "en"]
    if not others:
        return []
    domains = sorted(path.stem for path in (locale_dir / others[0] / "LC_MESSAGES").glob("*.mo"))
    items = []
    for domain in domains:
        catalogs = {}
        for lang in others:
            path = locale_dir / lang / "LC_MESSAGES" / f"{domain}.mo"
            catalogs[lang] = read_mo(path) if path.is_file() else {}
        for msgid in catalogs[others[0]]:
            english = speakable(msgid)
            if english is None:
                continue
            texts = {"en": english}
            for lang in others:
                translated = speakable(catalogs[lang].get(msgid, ""))
                if translated is None or normalize_text(translated) == normalize_text(english):
                    break
                texts[lang] = translated
            else:
                items.append(TextItem(texts, f"gettext:{domain}"))
    return items


# Parallel templates (a supplement: a few dozen sentences). Fillers carry their own articles and
# prepositions so each language's grammar stays right.
_TEMPLATES: tuple[dict[str, str], ...] = (
    {
        "en": "Please open {obj} {day}.",
        "de": "Bitte öffne {obj} {day}.",
        "es": "Por favor, abre {obj} {day}.",
        "fr": "Ouvre {obj} {day}, s'il te plaît.",
        "it": "Per favore, apri {obj} {day}.",
    },
    {
        "en": "I will call you {day}.",
        "de": "Ich rufe dich {day} an.",
        "es": "Te llamaré {day}.",
        "fr": "Je t'appellerai {day}.",
        "it": "Ti chiamerò {day}.",
    },
    {
        "en": "Where did you put {obj}?",
        "de": "Wo hast du {obj} hingelegt?",
        "es": "¿Dónde pusiste {obj}?",
        "fr": "Où as-tu mis {obj} ?",
        "it": "Dove hai messo {obj}?",
    },
    {
        "en": "We need {num} more chairs for the meeting.",
        "de": "Wir brauchen noch {num} Stühle für die Besprechung.",
        "es": "Necesitamos {num} sillas más para la reunión.",
        "fr": "Il nous faut encore {num} chaises pour la réunion.",
        "it": "Ci servono altre {num} sedie per la riunione.",
    },
)
_FILLERS: dict[str, tuple[dict[str, str], ...]] = {
    "obj": (
        {
            "en": "the window",
            "de": "das Fenster",
            "es": "la ventana",
            "fr": "la fenêtre",
            "it": "la finestra",
        },
        {"en": "the door", "de": "die Tür", "es": "la puerta", "fr": "la porte", "it": "la porta"},
        {"en": "the book", "de": "das Buch", "es": "el libro", "fr": "le livre", "it": "il libro"},
        {"en": "the box", "de": "die Kiste", "es": "la caja", "fr": "la boîte", "it": "la scatola"},
    ),
    "day": (
        {"en": "on Monday", "de": "am Montag", "es": "el lunes", "fr": "lundi", "it": "lunedì"},
        {"en": "on Friday", "de": "am Freitag", "es": "el viernes", "fr": "vendredi", "it": "venerdì"},
        {
            "en": "tomorrow morning",
            "de": "morgen früh",
            "es": "mañana por la mañana",
            "fr": "demain matin",
            "it": "domani mattina",
        },
        {"en": "this evening", "de": "heute Abend", "es": "esta tarde", "fr": "ce soir", "it": "stasera"},
    ),
    "num": (
        {"en": "two", "de": "zwei", "es": "dos", "fr": "deux", "it": "due"},
        {"en": "three", "de": "drei", "es": "tres", "fr": "trois", "it": "tre"},
        {"en": "five", "de": "fünf", "es": "cinco", "fr": "cinq", "it": "cinque"},
        {"en": "twelve", "de": "zwölf", "es": "doce", "fr": "douze", "it": "dodici"},
    ),
}


def template_items(languages: Sequence[str]) -> list[TextItem]:
    """Every filling of the parallel templates, in ``languages``."""
    items = []
    for template in _TEMPLATES:
        slots = [name for name in _FILLERS if "{" + name + "}" in template["en"]]
        fillings: list[dict[str, dict[str, str]]] = [{}]
        for slot in slots:
            fillings = [{**filling, slot: value} for filling in fillings for value in _FILLERS[slot]]
        for filling in fillings:
            texts = {
                lang: template[lang].format(**{s: v[lang] for s, v in filling.items()}) for lang in languages
            }
            items.append(TextItem(texts, "template"))
    return items


def load_text_sources(cache_dir: str | Path, languages: Sequence[str]) -> tuple[list[TextItem], set[str]]:
    """Fetch the Debian text sources; return (items, real-speech transcripts to exclude).

    Raises:
        DebianPackageError: apt-get cannot download them (with what to do instead).
    """
    from speechllm.prepare.realspeech import realspeech_texts  # realspeech imports nothing from here

    packages = list(CATALOG_PACKAGES) + list(REALSPEECH_TRANSCRIPT_PACKAGES)
    if "en" in languages:
        packages += list(FORTUNE_PACKAGES)
    root = fetch_debian_packages(packages, cache_dir)
    items: list[TextItem] = []
    if "en" in languages:
        fortunes_dir = root / "usr/share/games/fortunes"
        for name in FORTUNE_FILES:
            if (fortunes_dir / name).is_file():
                items += [
                    TextItem({"en": text}, f"fortunes:{name}") for text in read_fortunes(fortunes_dir / name)
                ]
    items += catalog_items(root / "usr/share/locale", languages)
    items += template_items(languages)
    return items, realspeech_texts(root)


def deduplicate(
    items: Iterable[TextItem], languages: Sequence[str], exclude_texts: Iterable[str] = ()
) -> list[TextItem]:
    """Keep items whose normalized text is new in every language and not excluded.

    Checking every language (not only the key) keeps two English sentences that share a
    German translation from landing in different splits.
    """
    seen: dict[str, set[str]] = {}
    excluded = {normalize_text(text) for text in exclude_texts}
    kept = []
    for item in items:
        if not any(lang in languages for lang in item.texts):
            continue
        # Every language of the item counts, translations included: a target sentence repeated
        # across splits would leak as much as a source sentence.
        normalized = {lang: normalize_text(text) for lang, text in item.texts.items()}
        if any(norm in excluded or norm in seen.get(lang, ()) for lang, norm in normalized.items()):
            continue
        for lang, norm in normalized.items():
            seen.setdefault(lang, set()).add(norm)
        kept.append(item)
    return kept


def assign_splits(
    items: Sequence[TextItem], languages: Sequence[str], counts: dict[str, int], seed: int = 0
) -> dict[str, list[tuple[TextItem, str]]]:
    """Pick ``counts[split]`` sentences per language for each split; a sentence goes to one split only.

    Items are shuffled with ``seed``; test is filled first (so it is the same whatever the size
    of train). An item taken for a split serves every language that still needs sentences there.

    Returns:
        ``{split: [(item, lang), ...]}``.
    """
    pool = sorted(items, key=TextItem.key)
    random.Random(seed).shuffle(pool)
    taken = [False] * len(pool)
    chosen: dict[str, list[tuple[TextItem, str]]] = {}
    for split in ("test", "dev", "train"):
        if split not in counts:
            continue
        need = {lang: counts[split] for lang in languages}
        chosen[split] = []
        for index, item in enumerate(pool):
            if not any(need.values()):
                break
            langs = [lang for lang in item.texts if need.get(lang, 0) > 0]
            if taken[index] or not langs:
                continue
            taken[index] = True
            for lang in langs:
                need[lang] -= 1
                chosen[split].append((item, lang))
        short = {lang: n for lang, n in need.items() if n > 0}
        if short:
            logger.warning("synthetic %s: not enough sentences, missing %s", split, short)
    return chosen


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
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(mono, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
    return Recording.from_file(path, recording_id=path.stem)


def _synthesize_job(job: tuple[str, str, int, int, str]) -> Recording:
    text, voice, rate, pitch, path = job
    if Path(path).is_file():  # resuming an interrupted run
        return Recording.from_file(path, recording_id=Path(path).stem)
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
    num_train: int = 2000,
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
            warning, if the sources run out).
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
    chosen = assign_splits(pool, languages, {split: n for split, n in counts.items() if n > 0}, seed)
    manifests: dict[str, dict[str, Any]] = {}
    for split, utterances in chosen.items():
        jobs = []
        for item, lang in utterances:
            uid = utterance_id(item, lang)
            voice, rate, pitch = pick_voice(uid, lang, seed)
            path = output_dir / f"{CORPUS}_audio" / split / lang / f"{uid}.wav"
            jobs.append((item.texts[lang], voice, rate, pitch, str(path)))
        if num_jobs > 1:
            with ProcessPoolExecutor(num_jobs) as pool_executor:
                recordings = list(
                    pool_executor.map(_synthesize_job, jobs, chunksize=max(1, len(jobs) // (4 * num_jobs)))
                )
        else:
            recordings = [_synthesize_job(job) for job in jobs]
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
