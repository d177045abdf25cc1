"""Text sources of the synthetic corpus (:mod:`speechllm.prepare.synthetic`), all offline from Debian.

Packages are fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x`` (never installed):

- English sentences for ASR: the ``fortunes`` / ``fortunes-min`` quotation files (BSD licence);
- on request, English training sentences of a broader vocabulary: WordNet 3.0's usage examples
  (``wordnet-base``, WordNet licence: "he ran a mile", "the oceans are teeming with life"), which
  cover everyday words the quotations never use (:func:`read_wordnet_examples`);
- parallel en/de/es/fr/it sentences for ST: translated gettext catalogs (``.mo``) of GNOME
  packages (GTK, Nautilus, Settings, Software, Shell, Evince, Totem; LGPL/GPL), aligned by msgid;
- a few parallel templates written for this library, as a supplement.

Sentences are filtered to what a synthesizer can read and a transcript can say (no markup,
format strings, digits or symbols; 4–30 words), deduplicated by normalized text in every
language, and any sentence of the real-speech evaluation set (Asterisk prompts) is removed.
A sentence and its translations belong to exactly one split, so train, dev and test share no
sentence in any language.
"""

from __future__ import annotations

import logging
import random
import re
import struct
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from speechllm.data.manifest_check import ManifestError
from speechllm.prepare.debian import fetch_debian_packages

logger = logging.getLogger(__name__)

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
WORDNET_PACKAGE = "wordnet-base"
WORDNET_DATA_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
REALSPEECH_TRANSCRIPT_PACKAGES = tuple(f"asterisk-core-sounds-{lang}" for lang in ("en", "es", "fr", "it"))

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


def read_wordnet_examples(wordnet_dir: str | Path) -> list[str]:
    """Speakable usage examples of WordNet's synsets, in file order, each once.

    A synset line of ``data.{noun,verb,adj,adv}`` ends with ``| gloss; "example"; "example"``;
    the quoted examples are sentences a person would say, the gloss a dictionary definition
    (not kept). The licence header's lines start with two spaces.
    """
    wordnet_dir = Path(wordnet_dir)
    sentences: dict[str, None] = {}
    for name in WORDNET_DATA_FILES:
        path = wordnet_dir / name
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue
            for quoted in re.findall(r'"([^"]+)"', line.split("|", 1)[1]):
                text = speakable(quoted.strip())
                if text is not None and "\ufffd" not in text:
                    text = text[0].upper() + text[1:]
                    sentences[text if text[-1] in ".!?" else text + "."] = None
    return list(sentences)


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


# Training-only English text sources (``extra_train_text``): name → Debian package.
EXTRA_TRAIN_TEXT = {"wordnet": WORDNET_PACKAGE}


def load_text_sources(
    cache_dir: str | Path, languages: Sequence[str], extra_train_text: Sequence[str] = ()
) -> tuple[list[TextItem], set[str]]:
    """Fetch the Debian text sources; return (items, real-speech transcripts to exclude).

    ``extra_train_text`` adds training-only English sources (names of :data:`EXTRA_TRAIN_TEXT`);
    their items come last, with ``source`` ``"<name>"``.

    Raises:
        DebianPackageError: apt-get cannot download them (with what to do instead).
        ValueError: an unknown extra source.
    """
    from speechllm.prepare.realspeech import realspeech_texts  # realspeech imports nothing from here

    unknown = sorted(set(extra_train_text) - set(EXTRA_TRAIN_TEXT))
    if unknown:
        raise ValueError(f"extra_train_text: unknown source(s) {unknown}; known: {sorted(EXTRA_TRAIN_TEXT)}")
    english = "en" in languages
    packages = list(CATALOG_PACKAGES) + list(REALSPEECH_TRANSCRIPT_PACKAGES)
    if english:
        packages += list(FORTUNE_PACKAGES) + [EXTRA_TRAIN_TEXT[name] for name in extra_train_text]
    root = fetch_debian_packages(packages, cache_dir)
    items: list[TextItem] = []
    if english:
        fortunes_dir = root / "usr/share/games/fortunes"
        for name in FORTUNE_FILES:
            if (fortunes_dir / name).is_file():
                items += [
                    TextItem({"en": text}, f"fortunes:{name}") for text in read_fortunes(fortunes_dir / name)
                ]
    items += catalog_items(root / "usr/share/locale", languages)
    items += template_items(languages)
    if english and "wordnet" in extra_train_text:
        items += [
            TextItem({"en": text}, "wordnet") for text in read_wordnet_examples(root / "usr/share/wordnet")
        ]
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
    items: Sequence[TextItem],
    languages: Sequence[str],
    counts: Mapping[str, int | Mapping[str, int]],
    seed: int = 0,
    train_only: Sequence[TextItem] = (),
    train_only_share: float = 0.5,
) -> dict[str, list[tuple[TextItem, str]]]:
    """Pick ``counts[split]`` sentences per language for each split; a sentence goes to one split only.

    ``counts[split]`` is one count for every language or ``{lang: count}`` (a language it leaves
    out gets none). Train is filled last, so one language's train count does not change what the
    others get.

    Items are shuffled with ``seed``; test is filled first (so it is the same whatever the size
    of train). An item taken for a split serves every language that still needs sentences there.

    ``train_only`` items (extra training text) never enter dev or test, so those sets are the same
    with or without them: a language's training sentences are then ``train_only_share`` of them
    from ``train_only`` (shuffled with ``seed`` apart) and the rest from ``items``, each side
    topping up the other where it runs out.

    Returns:
        ``{split: [(item, lang), ...]}``.
    """
    if not 0.0 <= train_only_share <= 1.0:
        raise ValueError(f"train_only_share must be in [0, 1], got {train_only_share}")
    pool = sorted(items, key=TextItem.key)
    random.Random(seed).shuffle(pool)
    taken = [False] * len(pool)
    chosen: dict[str, list[tuple[TextItem, str]]] = {}
    for split in ("test", "dev", "train"):
        if split not in counts:
            continue
        count = counts[split]
        need = {lang: count if isinstance(count, int) else int(count.get(lang, 0)) for lang in languages}
        chosen[split] = []
        if split == "train" and train_only:
            extra = sorted(train_only, key=TextItem.key)
            random.Random(f"{seed}:train_only").shuffle(extra)
            extra_taken = [False] * len(extra)
            for lang in languages:
                available = sum(
                    1 for index, item in enumerate(pool) if not taken[index] and lang in item.texts
                )
                extra_lang = sum(
                    1 for index, item in enumerate(extra) if not extra_taken[index] and lang in item.texts
                )
                wanted = min(extra_lang, max(round(train_only_share * need[lang]), need[lang] - available))
                chosen[split] += _fill(extra, extra_taken, {lang: wanted})
                need[lang] -= wanted
        chosen[split] += _fill(pool, taken, need)
        short = {lang: n for lang, n in need.items() if n > 0}
        if short:
            logger.warning("synthetic %s: not enough sentences, missing %s", split, short)
    return chosen


def _fill(pool: Sequence[TextItem], taken: list[bool], need: dict[str, int]) -> list[tuple[TextItem, str]]:
    """Take items of ``pool`` in order for the languages that still ``need`` sentences (both updated)."""
    chosen = []
    for index, item in enumerate(pool):
        if not any(need.values()):
            break
        langs = [lang for lang in item.texts if need.get(lang, 0) > 0]
        if taken[index] or not langs:
            continue
        taken[index] = True
        for lang in langs:
            need[lang] -= 1
            chosen.append((item, lang))
    return chosen
