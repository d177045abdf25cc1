"""Fish Fillets NG real-speech set, built from a tiny fake unpacked-package tree (no network, no apt)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import load_manifest

from speechllm.cli import main
from speechllm.data.manifest_check import ManifestError
from speechllm.languages import check_language
from speechllm.prepare.fillets import GAME_DIR, PACKAGES, check_fillets_languages, prepare_fillets

# dialogs_<lang>.lua of one level, in the packages' format (English subtitle, then the translation).
LEVEL = {
    "en": 'dialogId("let-m-divna", "font_small", "What kind of strange ship is that?")\n'
    'dialogId("let-v-oko", "font_big", "Can you see that eye?")\n'
    'dialogId("let-x-vrz", "font_white", "")\n',
    "nl": 'dialogId("let-m-divna", "font_small", "What kind of strange ship is that?")\n'
    'dialogStr("Wat is dit voor raar schip?")\n\n'
    'dialogId("let-v-oko", "font_big", "Can you see that eye?")\n'
    'dialogStr("Zie je " .. "dat \\"oog\\"?")\n'
    'dialogId("let-x-vrz", "font_white", "")\ndialogStr("")\n'
    'dialogId("let-v-stil", "font_big", "Quiet.")\ndialogStr("Stil.")\n'
    'dialogId("let-v-kapot", "font_big", "Broken.")\ndialogStr("Kapot.")\n'
    'dialogId("let-v-leeg", "font_big", "Empty.")\ndialogStr("Leeg.")\n'
    'dialogId("let-v-zonder", "font_big", "Without a clip.")\ndialogStr("Zonder opname.")\n'
    'dialogId("text0", "font_white", "mplayer kufrik.ogg")\ndialogStr("mplayer kufrik.ogg")\n',
    "cs": 'dialogId("let-m-divna", "font_small", "What kind of strange ship is that?")\n'
    'dialogStr("Co je to za divnou loď?")\n',
}
# The shared jokes: script/share/bore_dialogs_nl.lua, audio in sound/share/borejokes/nl/.
BORE_NL = 'dialogId("bore-m-nuda", "font_small", "I am bored.")\ndialogStr("Ik verveel me.")\n'


def _clip(path: Path, seconds: float, rate: int = 22050, channels: int = 1, amplitude: float = 0.3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    tone = amplitude * np.sin(2 * np.pi * 220 * t).astype(np.float32)
    sf.write(path, np.stack([tone] * channels, axis=1), rate, format="OGG", subtype="VORBIS")


def write_fake_game(root: Path) -> Path:
    """An unpacked fillets-ng-data(-nl,-cs) tree with one level and the shared jokes."""
    game = root / GAME_DIR
    for lang, source in LEVEL.items():
        (game / "script/airplane").mkdir(parents=True, exist_ok=True)
        (game / f"script/airplane/dialogs_{lang}.lua").write_text(source, encoding="utf-8")
    (game / "script/share").mkdir(parents=True)
    (game / "script/share/bore_dialogs_nl.lua").write_text(BORE_NL, encoding="utf-8")
    sounds = game / "sound/airplane"
    _clip(sounds / "nl/let-m-divna.ogg", 1.0, channels=2)  # the Dutch voices are stereo
    _clip(sounds / "nl/let-v-oko.ogg", 0.8, channels=2)
    _clip(sounds / "nl/let-x-vrz.ogg", 0.3)  # a sound effect: no text
    _clip(sounds / "nl/let-v-stil.ogg", 0.5, amplitude=0.0)
    (sounds / "nl/let-v-kapot.ogg").write_bytes(b"OggS" + b"\0" * 64)
    sf.write(sounds / "nl/let-v-leeg.ogg", np.zeros(0, dtype=np.float32), 22050, format="OGG")
    _clip(sounds / "nl/let-v-extra.ogg", 0.4)  # no dialog line for it
    _clip(sounds / "cs/let-m-divna.ogg", 1.2, rate=44100)
    _clip(sounds / "en/let-m-divna.ogg", 0.9)
    _clip(sounds / "en/let-x-vrz.ogg", 0.3)
    _clip(game / "sound/share/borejokes/nl/bore-m-nuda.ogg", 0.7, channels=2)
    return root


def test_builds_eval_only_nl_cs_en_set_with_english_translations(tmp_path: Path) -> None:
    root = write_fake_game(tmp_path / "pkg")
    out = tmp_path / "out"
    prepare_fillets(out, languages=("nl", "cs", "en"), package_root=root)
    cuts = {cut.id: cut for cut in load_manifest(out / "fillets_cuts_test.jsonl.gz")}
    assert set(cuts) == {
        "fillets-nl-airplane-let-m-divna",
        "fillets-nl-airplane-let-v-oko",
        "fillets-nl-share-borejokes-bore-m-nuda",
        "fillets-cs-airplane-let-m-divna",
        "fillets-en-airplane-let-m-divna",
    }
    for cut in cuts.values():
        assert cut.supervisions[0].custom["split"] == "eval_only"
        assert cut.sampling_rate == 16000
    oko = cuts["fillets-nl-airplane-let-v-oko"].supervisions[0]
    assert (oko.text, oko.language, oko.speaker) == ('Zie je dat "oog"?', "nl", "nl-font_big")
    assert (oko.custom["translation"], oko.custom["tgt_lang"]) == ("Can you see that eye?", "en")
    czech = cuts["fillets-cs-airplane-let-m-divna"].supervisions[0]
    assert (czech.text, czech.custom["translation"]) == (
        "Co je to za divnou loď?",
        "What kind of strange ship is that?",
    )
    english = cuts["fillets-en-airplane-let-m-divna"].supervisions[0]
    assert english.text == "What kind of strange ship is that?" and "translation" not in english.custom
    # Stored at the native rate, resampled to 16 kHz (and down-mixed from stereo) on load.
    recording = load_manifest(out / "fillets_recordings_test.jsonl.gz")["fillets-cs-airplane-let-m-divna"]
    assert recording.sampling_rate == 44100
    audio = cuts["fillets-nl-airplane-let-m-divna"].load_audio()
    assert audio.shape[-1] == pytest.approx(16000, abs=2)


def test_skipped_lines_and_clips_are_listed_with_their_reason(tmp_path: Path) -> None:
    root = write_fake_game(tmp_path / "pkg")
    out = tmp_path / "out"
    prepare_fillets(out, languages=("nl",), package_root=root)
    rows = [line.split("\t") for line in (out / "fillets_skipped_test.tsv").read_text().splitlines()[1:]]
    reasons = {Path(audio).stem: reason.split(":")[0] for _, audio, reason in rows}
    assert reasons == {
        "let-x-vrz": "no text",
        "text0": "not speech (an on-screen command or address)",
        "let-v-stil": "silent",
        "let-v-kapot": "unreadable",
        "let-v-leeg": "empty",
        "let-v-zonder": "no audio",
        "let-v-extra": "no text",
    }
    where = {Path(audio).stem: where for where, audio, _ in rows}
    assert where["let-v-zonder"].endswith("script/airplane/dialogs_nl.lua:14")


def test_an_untranslated_language_or_broken_dialog_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no voices in 'de'"):
        check_fillets_languages(["nl", "de"])
    with pytest.raises(ValueError, match="unknown language code 'nl'"):
        check_language("nl")  # an evaluation-only language: never a training language
    root = write_fake_game(tmp_path / "pkg")
    broken = root / GAME_DIR / "script/airplane/dialogs_cs.lua"
    broken.write_text(LEVEL["cs"] + 'dialogId("let-v-oko", "font_big", "Can you see that eye?)\n')
    with pytest.raises(ManifestError, match=r"dialogs_cs\.lua:3: unterminated string"):
        prepare_fillets(tmp_path / "out", languages=("cs",), package_root=root)


def test_cli_reads_a_prepopulated_package_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    write_fake_game(cache / "root")
    (cache / "debs").mkdir()
    for package in PACKAGES.values():  # what fetch_debian_packages leaves after unpacking
        (cache / "debs" / f"{package}.unpacked").write_text(f"{package}_1.0.1-1.1_all.deb\n")
    out = tmp_path / "out"
    assert main(["prepare", "fillets", str(out), "--cache-dir", str(cache), "--languages", "cs"]) in (0, None)
    assert "test: 1 cuts" in capsys.readouterr().out
    cut = next(iter(load_manifest(out / "fillets_cuts_test.jsonl.gz")))
    assert cut.id == "fillets-cs-airplane-let-m-divna"
