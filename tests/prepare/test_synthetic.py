"""Synthetic corpus: text sources (.mo catalogs, fortunes), sentence-disjoint splits, espeak-ng audio."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
import soundfile as sf
from lhotse import load_manifest

from speechllm.cli import build_parser
from speechllm.cli.prepare import _train_counts
from speechllm.data.manifest_check import ManifestError
from speechllm.prepare.synthetic import prepare_synthetic
from speechllm.prepare.text_sources import (
    TextItem,
    assign_splits,
    catalog_items,
    deduplicate,
    normalize_text,
    read_fortunes,
    read_mo,
    read_wordnet_examples,
    template_items,
)

LANGS = ("en", "de", "es", "fr", "it")
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (run scripts/install_system_deps.sh)"
)


def write_mo(path: Path, catalog: dict[str, str]) -> None:
    """A little-endian GNU .mo file (header entry first, ids sorted), as msgfmt writes it."""
    entries = sorted({"": "Content-Type: text/plain; charset=UTF-8\n", **catalog}.items())
    ids = [key.encode() for key, _ in entries]
    strs = [value.encode() for _, value in entries]
    count = len(entries)
    originals_at = 28
    translations_at = originals_at + 8 * count
    data_at = translations_at + 8 * count
    table_o, table_t, blob = b"", b"", b""
    for raw in ids:
        table_o += struct.pack("<2I", len(raw), data_at + len(blob))
        blob += raw + b"\x00"
    for raw in strs:
        table_t += struct.pack("<2I", len(raw), data_at + len(blob))
        blob += raw + b"\x00"
    header = struct.pack("<7I", 0x950412DE, 0, count, originals_at, translations_at, 0, data_at)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + table_o + table_t + blob)


GOOD = "Show hidden files in the folder"
TRANSLATIONS = {
    "de": "Verborgene Dateien im Ordner anzeigen",
    "es": "Mostrar los archivos ocultos en la carpeta",
    "fr": "Afficher les fichiers cachés du dossier",
    "it": "Mostra i file nascosti nella cartella",
}


def test_mo_catalogs_align_english_with_every_translation(tmp_path: Path) -> None:
    locale = tmp_path / "locale"
    for lang, translated in TRANSLATIONS.items():
        catalog = {
            GOOD: translated,
            "_Open the selected file now": {"de": "Die gewählte Datei jetzt _öffnen"}.get(
                lang, f"[{lang}] open"
            ),
            "Copied %d files to the folder": "x %d",  # format string: not speakable
            "Untranslated message stays English": "Untranslated message stays English",
            "menu\x04Close the current window": f"close ({lang})",
        }
        write_mo(locale / lang / "LC_MESSAGES" / "app.mo", catalog)
    de = read_mo(locale / "de" / "LC_MESSAGES" / "app.mo")
    assert de[GOOD] == TRANSLATIONS["de"]
    assert de["Close the current window"] == "close (de)"  # context stripped from the msgid
    items = catalog_items(locale, LANGS)
    assert [item.texts for item in items] == [{"en": GOOD, **TRANSLATIONS}]
    assert items[0].source == "gettext:app"
    # With German only, the mnemonic underscore is removed from both sides.
    german = {item.texts["en"]: item.texts["de"] for item in catalog_items(locale, ("en", "de"))}
    assert german["Open the selected file now"] == "Die gewählte Datei jetzt öffnen"


def test_read_mo_rejects_other_files(tmp_path: Path) -> None:
    bogus = tmp_path / "x.mo"
    bogus.write_bytes(b"\x00" * 40)
    with pytest.raises(ManifestError, match=r"x\.mo: not a gettext \.mo file"):
        read_mo(bogus)


def test_fortunes_parser_keeps_speakable_quotations_without_attribution(tmp_path: Path) -> None:
    path = tmp_path / "wisdom"
    path.write_text(
        "A journey of a thousand miles begins with a single step.\n\t\t-- Lao Tzu\n%\n"
        "Too short.\n%\n"
        "Call 555-1234 for details about the offer.\n%\n"
        "Never put off till tomorrow\nwhat you can do the day after tomorrow.\n%\n",
        encoding="utf-8",
    )
    assert read_fortunes(path) == [
        "A journey of a thousand miles begins with a single step.",
        "Never put off till tomorrow what you can do the day after tomorrow.",
    ]


def test_splits_share_no_sentence_in_any_language() -> None:
    items = template_items(LANGS)
    items += [TextItem({"en": f"English only sentence number {word} here"}, "test") for word in "abcdefghij"]
    # Same German text as a template sentence: must not be kept as a separate sentence.
    items.append(TextItem({"en": "Some other English wording entirely", "de": items[0].texts["de"]}, "test"))
    pool = deduplicate(items, LANGS, exclude_texts=[items[1].texts["fr"]])
    assert items[1] not in pool and items[-1] not in pool and items[0] in pool
    chosen = assign_splits(pool, LANGS, {"train": 8, "dev": 3, "test": 3}, seed=1)
    seen: dict[str, dict[str, str]] = {lang: {} for lang in LANGS}
    for split, utterances in chosen.items():
        for lang in LANGS:
            assert (
                sum(1 for _, used in utterances if used == lang) == {"train": 8, "dev": 3, "test": 3}[split]
            )
        for item, _ in utterances:
            for lang, text in item.texts.items():  # translations count too
                assert seen[lang].setdefault(normalize_text(text), split) == split
    # Test does not depend on how many training sentences are asked for.
    again = assign_splits(pool, LANGS, {"train": 2, "dev": 3, "test": 3}, seed=1)
    assert again["test"] == chosen["test"]


def test_per_language_train_counts_leave_the_other_languages_picks_unchanged() -> None:
    pool = deduplicate(template_items(LANGS), LANGS)
    full = assign_splits(pool, LANGS, {"train": 8, "dev": 3, "test": 3}, seed=1)
    fewer = {lang: (8 if lang == "en" else 2) for lang in LANGS}
    mixed = assign_splits(pool, LANGS, {"train": fewer, "dev": 3, "test": 3}, seed=1)

    def picks(chosen, lang):
        return [item for item, used in chosen["train"] if used == lang]

    assert picks(mixed, "en") == picks(full, "en")
    for lang in LANGS:
        assert len(picks(mixed, lang)) == fewer[lang]
    assert mixed["dev"] == full["dev"] and mixed["test"] == full["test"]


def test_wordnet_reader_keeps_speakable_usage_examples_not_glosses(tmp_path: Path) -> None:
    header = '  1 This software and database is being provided to you, "AS IS" by Princeton\n'
    (tmp_path / "data.noun").write_text(
        header
        + '00001740 03 n 01 mile 0 000 | a unit; "he ran a mile"; "the oceans are teeming with life"\n'
        + '00002000 03 n 01 page 0 000 | a leaf; "see page 12 of it"; "he ran a mile"; "a good page"\n',
        encoding="utf-8",
    )
    (tmp_path / "data.verb").write_text(
        '00003000 29 v 01 breathe 0 000 | draw air; "I can breathe better when the air is clean!"\n',
        encoding="utf-8",
    )
    assert read_wordnet_examples(tmp_path) == [
        # glosses, the licence header, digits and examples under four words are left out; each once
        "He ran a mile.",
        "The oceans are teeming with life.",
        "I can breathe better when the air is clean!",
    ]


def extra_items(count: int) -> list[TextItem]:
    return [
        TextItem({"en": f"extra training sentence number {index} spoken"}, "wordnet")
        for index in range(count)
    ]


def test_train_only_items_fill_their_share_of_train_and_never_dev_or_test() -> None:
    pool = deduplicate(template_items(LANGS), LANGS)
    counts = {"train": 10, "dev": 3, "test": 3}
    plain = assign_splits(pool, LANGS, counts, seed=1)
    mixed = assign_splits(pool, LANGS, counts, seed=1, train_only=extra_items(50), train_only_share=0.3)
    assert mixed["test"] == plain["test"] and mixed["dev"] == plain["dev"]
    english = [item for item, lang in mixed["train"] if lang == "en"]
    assert len(english) == 10 and sum(item.source == "wordnet" for item in english) == 3
    # the other languages' training sentences are untouched by an English-only extra source
    assert [pair for pair in mixed["train"] if pair[1] == "de"] == [
        pair for pair in plain["train"] if pair[1] == "de"
    ]
    # a short extra source is topped up from the pool, and the other way round
    few = assign_splits(pool, LANGS, counts, seed=1, train_only=extra_items(2), train_only_share=0.9)
    assert sum(lang == "en" for _, lang in few["train"]) == 10
    assert sum(item.source == "wordnet" for item, _ in few["train"]) == 2
    small_pool = deduplicate(template_items(LANGS), LANGS)[:8]
    topped = assign_splits(
        small_pool, ["en"], {"train": 20, "test": 2}, seed=1, train_only=extra_items(50), train_only_share=0.1
    )
    assert len(topped["train"]) == 20 and sum(item.source == "wordnet" for item, _ in topped["train"]) == 14
    with pytest.raises(ValueError, match="train_only_share"):
        assign_splits(pool, LANGS, counts, train_only=extra_items(5), train_only_share=1.5)


def test_extra_train_text_names_the_unknown_source_and_needs_the_debian_sources(tmp_path: Path) -> None:
    from speechllm.prepare.text_sources import load_text_sources

    with pytest.raises(ValueError, match="'gutenberg'.*known: \\['wordnet'\\]"):
        load_text_sources(tmp_path, ["en"], extra_train_text=["gutenberg"])
    with pytest.raises(ValueError, match="Debian sources"):
        prepare_synthetic(tmp_path, ["en"], items=extra_items(3), extra_train_text=["wordnet"])
    with pytest.raises(ValueError, match="extra_train_share must be in"):
        prepare_synthetic(tmp_path, ["en"], items=extra_items(3), extra_train_share=2.0)


def test_cli_train_counts_take_a_default_and_per_language_values() -> None:
    parser = build_parser()
    args = parser.parse_args(["prepare", "synthetic", "out", "--num-train", "600", "en=6000"])
    assert _train_counts(args.num_train, args.languages) == {
        lang: (6000 if lang == "en" else 600) for lang in args.languages
    }
    args = parser.parse_args(["prepare", "synthetic", "out", "--num-train", "7"])
    assert _train_counts(args.num_train, args.languages) == 7
    args = parser.parse_args(["prepare", "synthetic", "out"])  # no --num-train: the documented 2000
    assert _train_counts(args.num_train, args.languages) == 2000
    for bad in ("xx=5", "en=many", "-3"):
        with pytest.raises(SystemExit):
            parser.parse_args(["prepare", "synthetic", "out", "--num-train", bad])
    for share in ("1.5", "-0.1", "nan"):
        with pytest.raises(SystemExit):
            parser.parse_args(
                ["prepare", "synthetic", "out", "--extra-train-text", "wordnet", "--extra-train-share", share]
            )


@needs_espeak
@pytest.mark.assets
def test_corpus_has_16k_audio_growing_with_text_and_disjoint_splits(tmp_path: Path) -> None:
    base = {
        "en": "The dog runs fast.",
        "de": "Der Hund läuft schnell.",
        "es": "El perro corre rápido.",
        "fr": "Le chien court vite.",
        "it": "Il cane corre veloce.",
    }
    # 1, 2 and 4 repetitions: lengths grow faster than the random speaking rates (130-200 wpm) vary.
    items = [
        TextItem({lang: " ".join([text] * reps) for lang, text in base.items()}, "test") for reps in (1, 2, 4)
    ]
    out = tmp_path / "synthetic"
    prepare_synthetic(out, languages=LANGS, num_train=1, num_dev=1, num_test=1, num_jobs=2, items=items)
    sentences: dict[str, dict[str, str]] = {}
    for split in ("train", "dev", "test"):
        cuts = load_manifest(out / f"synthetic_cuts_{split}.jsonl.gz")
        for lang in LANGS:
            lang_cuts = [cut for cut in cuts if cut.supervisions[0].language == lang]
            assert len(lang_cuts) == 1
        for cut in cuts:
            supervision = cut.supervisions[0]
            audio_path = cut.recording.sources[0].source
            info = sf.info(audio_path)
            assert (info.samplerate, info.channels) == (16000, 1)
            assert supervision.custom["tgt_lang"] == ("de" if supervision.language == "en" else "en")
            key = cut.id.rsplit("-", 1)[1]  # same hash for a sentence in all its languages
            assert sentences.setdefault(key, {}).setdefault("split", split) == split
            sentences[key][supervision.language] = f"{len(supervision.text)}:{cut.duration}"
    for lang in LANGS:
        by_length = sorted(
            (int(entry[lang].split(":")[0]), float(entry[lang].split(":")[1])) for entry in sentences.values()
        )
        durations = [duration for _, duration in by_length]
        assert durations == sorted(durations) and durations[-1] > 2 * durations[0], (lang, by_length)


@needs_espeak
@pytest.mark.assets
def test_cli_builds_from_debian_text_sources(tmp_path: Path) -> None:
    if shutil.which("apt-get") is None:
        pytest.skip("needs apt-get (a Debian/Ubuntu machine with access to a mirror)")
    parser = build_parser()
    out = tmp_path / "out"
    args = parser.parse_args(
        ["prepare", "synthetic", str(out), "--languages", "en", "it", "--num-train", "2", "en=3", "--num-dev",
         "1", "--num-test", "1", "--num-jobs", "2", "--extra-train-text", "wordnet",
         "--extra-train-share", "0.5"]
    )  # fmt: skip
    args.func(args)
    cuts = load_manifest(out / "synthetic_cuts_train.jsonl.gz")
    assert sorted(cut.supervisions[0].language for cut in cuts) == ["en", "en", "en", "it", "it"]
    # round(0.5 × 3) English training sentences are WordNet's examples; dev and test are not
    examples = set(read_wordnet_examples(out / "debian" / "root" / "usr/share/wordnet"))
    assert len(examples) > 30000
    assert sum(cut.supervisions[0].text in examples for cut in cuts) == 2
    for split in ("dev", "test"):
        held_out = load_manifest(out / f"synthetic_cuts_{split}.jsonl.gz")
        assert not any(cut.supervisions[0].text in examples for cut in held_out)
    from speechllm.prepare.realspeech import realspeech_texts

    forbidden = {normalize_text(text) for text in realspeech_texts(out / "debian" / "root")}
    assert len(forbidden) > 1000
    assert not any(normalize_text(cut.supervisions[0].text) in forbidden for cut in cuts)
