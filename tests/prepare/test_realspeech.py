"""Real-speech evaluation set: transcript parser on a fixture in the Asterisk packages' format."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import load_manifest

from speechllm.data.manifest_check import ManifestError
from speechllm.prepare.realspeech import (
    VOICE_DIRS,
    parse_transcripts,
    prepare_realspeech,
    unique_transcripts,
    usable_transcript,
)

# Lines in the format of core-sounds-<lang>.txt (copied in style from the packages: comments,
# sub-directories, bracketed non-speech, an empty transcript, a byte-order mark in Italian).
TRANSCRIPTS = {
    "en": "; Core Asterisk Sounds in English\n\n"
    "auth-thankyou: Thank you.\n"
    "conf-hasjoin: You are currently joining the conference.\n"
    "digits/7: seven\n"
    "beep: [this is a simple beep tone]\n"
    "silence/1: (1 second of silence)\n",
    "es": "; Core Asterisk Sounds in Spanish\n\n"
    "auth-thankyou: Gracias\n"
    "conf-hasjoin: Ya esta en la conferencia.\n"
    "digits/7: siete\n"
    "digits/0: cero\n"
    "digits/0: diez\n"
    "dir-welcome:\n",
    "it": "\ufeff; Core Asterisk Sounds in Italian\n"
    "auth-thankyou: Grazie.\n"
    "conf-full: La conferenza ? piena.\n"
    "vm-login: Posta vocale. Casella di posta?\n"
    "only-in-italian: Solo in italiano.\n",
}


def write_fake_packages(root: Path) -> Path:
    """An unpacked-package tree: gzipped transcripts + 8 kHz prompts for every named prompt."""
    for lang, content in TRANSCRIPTS.items():
        doc = root / "usr/share/doc" / f"asterisk-core-sounds-{lang}"
        doc.mkdir(parents=True, exist_ok=True)
        (doc / f"core-sounds-{lang}.txt.gz").write_bytes(gzip.compress(content.encode("utf-8")))
        for number, (_, name, text) in enumerate(parse_transcripts(doc / f"core-sounds-{lang}.txt.gz")):
            wav = root / "usr/share/asterisk/sounds" / VOICE_DIRS[lang] / f"{name}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            seconds = 0.5 + 0.05 * len(text) + 0.01 * number
            sf.write(
                wav,
                (0.1 * np.random.default_rng(number).standard_normal(int(8000 * seconds))).astype(np.float32),
                8000,
            )
    return root


def test_parser_reads_names_texts_and_lines(tmp_path: Path) -> None:
    root = write_fake_packages(tmp_path)
    entries = parse_transcripts(root / "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
    assert entries[0] == (3, "auth-thankyou", "Thank you.")
    assert (5, "digits/7", "seven") in entries
    italian = parse_transcripts(root / "usr/share/doc/asterisk-core-sounds-it/core-sounds-it.txt.gz")
    assert italian[0] == (2, "auth-thankyou", "Grazie.")  # byte-order mark and comment skipped
    spanish, conflicts = unique_transcripts(
        parse_transcripts(root / "usr/share/doc/asterisk-core-sounds-es/core-sounds-es.txt.gz")
    )
    assert conflicts == {"digits/0": [6, 7]} and "digits/0" not in spanish
    assert spanish["dir-welcome"] == (8, "")


def test_parser_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "core-sounds-xx.txt"
    bad.write_text("; header\nok: fine\nthis line has no colon\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"core-sounds-xx\.txt:3: expected 'name: text'"):
        parse_transcripts(bad)
    bad.write_bytes(b"ok: fine\nbad: caf\xe9\n")
    with pytest.raises(ManifestError, match=r"core-sounds-xx\.txt:2: not valid UTF-8"):
        parse_transcripts(bad)


@pytest.mark.parametrize(
    ("name", "text", "usable"),
    [
        ("auth-thankyou", "Thank you.", True),
        ("vm-login", "Posta vocale. Casella di posta?", True),
        ("beep", "[this is a simple beep tone]", False),
        ("silence/1", "(1 second of silence)", False),
        ("silence/2", "zwei Sekunden", False),
        ("conf-full", "La conferenza ? piena.", False),
        ("at-tone-time-exactly", "Al segnale acustico, il tempo sar? esattamente..", False),
        ("letters/dash", "dash [-]", False),
        ("dir-welcome", "", False),
    ],
)
def test_only_spoken_transcripts_are_usable(name: str, text: str, usable: bool) -> None:
    assert (usable_transcript(name, text) is None) == usable


def test_prepare_builds_eval_only_set_with_parallel_subset(tmp_path: Path) -> None:
    root = write_fake_packages(tmp_path / "pkg")
    # A transcript line whose audio the package does not ship is reported, not fatal.
    (root / "usr/share/asterisk/sounds" / VOICE_DIRS["es"] / "digits/7.wav").unlink()
    out = tmp_path / "out"
    prepare_realspeech(out, languages=("en", "es", "it"), package_root=root)
    cuts = {cut.id: cut for cut in load_manifest(out / "realspeech_cuts_test.jsonl.gz")}
    assert set(cuts) == {
        "realspeech-en-auth-thankyou",
        "realspeech-en-conf-hasjoin",
        "realspeech-en-digits_7",
        "realspeech-es-auth-thankyou",
        "realspeech-es-conf-hasjoin",
        "realspeech-it-auth-thankyou",
        "realspeech-it-vm-login",
        "realspeech-it-only-in-italian",
    }
    for cut in cuts.values():
        assert cut.supervisions[0].custom["split"] == "eval_only"
        assert cut.sampling_rate == 16000
    es = cuts["realspeech-es-conf-hasjoin"].supervisions[0]
    assert (es.text, es.language) == ("Ya esta en la conferencia.", "es")
    assert (es.custom["translation"], es.custom["tgt_lang"]) == (
        "You are currently joining the conference.",
        "en",
    )
    assert (
        "translation" not in cuts["realspeech-it-only-in-italian"].supervisions[0].custom
    )  # no English prompt
    assert "translation" not in cuts["realspeech-en-digits_7"].supervisions[0].custom
    # Stored at the native 8 kHz, resampled to 16 kHz by the cut on load.
    recording = load_manifest(out / "realspeech_recordings_test.jsonl.gz")["realspeech-en-auth-thankyou"]
    assert recording.sampling_rate == 8000
    cut = cuts["realspeech-en-auth-thankyou"]
    assert cut.load_audio().shape[1] == pytest.approx(2 * recording.num_samples, abs=2)
    report = (out / "realspeech_skipped_test.tsv").read_text()
    for reason in ("missing", "non-speech", "repeated", "lost", "no transcript", "annotated"):
        assert reason in report


@pytest.mark.assets
def test_builds_from_the_debian_packages(tmp_path: Path) -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("needs apt-get and dpkg-deb (a Debian/Ubuntu machine with access to a mirror)")
    result = prepare_realspeech(tmp_path / "out", cache_dir=tmp_path / "cache", max_duration=30.0, num_jobs=2)
    cuts = result["test"]["cuts"]
    english = {
        cut.id.split("-", 2)[2]: cut.supervisions[0].text
        for cut in cuts
        if cut.supervisions[0].language == "en"
    }
    for lang in ("es", "fr", "it"):
        parallel = [
            c
            for c in cuts
            if c.supervisions[0].language == lang and "translation" in c.supervisions[0].custom
        ]
        assert len(parallel) >= 400  # the design counts ~450 prompts shared by all four languages
        for cut in parallel[:50]:
            assert cut.supervisions[0].custom["translation"] == english[cut.id.split("-", 2)[2]]
    assert all(cut.duration <= 30.0 and cut.sampling_rate == 16000 for cut in cuts)
