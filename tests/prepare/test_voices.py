"""Synthesis engines: each writes 16 kHz mono clips, the voice is recorded, draws are seeded."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import soundfile as sf
from lhotse import load_manifest

from speechllm.cli import build_parser
from speechllm.prepare.synthetic import prepare_synthetic
from speechllm.prepare.text_sources import TextItem
from speechllm.prepare.voices import ENGINES, Voice, check_engines, pick_voice, speak, speak_many

INSTALL_HINT = "run scripts/install_system_deps.sh (and pip install 'speechllm[voices]' for piper)"


def installed(engine: str, lang: str = "en") -> tuple[str, ...]:
    return ENGINES[engine].voices(lang)


@pytest.mark.parametrize(("engine", "lang"), [(name, "en") for name in ENGINES] + [("festival", "it")])
def test_every_voice_of_an_engine_writes_16k_mono_speech(engine: str, lang: str, tmp_path: Path) -> None:
    voices = installed(engine, lang)
    if not voices:
        pytest.skip(f"{engine} has no {lang} voice installed: {INSTALL_HINT}")
    text = "Show hidden files in the folder." if lang == "en" else "Mostra i file nascosti, perché è così."
    rng = random.Random(0)
    for name in voices:
        path = tmp_path / f"{name}.wav"
        recording = speak(text, Voice(engine, name, lang), rng, path)
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), name
        assert recording.sampling_rate == 16000 and recording.num_channels == 1
        # a short sentence is spoken, not a click or a minute of silence
        assert 0.8 < recording.duration < 8.0, (name, recording.duration)
        samples = recording.load_audio()[0]
        assert abs(samples).max() > 0.05, name


def test_prosody_draws_are_reproducible_and_change_the_audio(tmp_path: Path) -> None:
    if not installed("flite"):
        pytest.skip(f"flite not installed: {INSTALL_HINT}")
    voice = Voice("flite", "slt", "en")
    text = "The same sentence, spoken three times."
    a = speak(text, voice, random.Random(1), tmp_path / "a.wav").load_audio()
    b = speak(text, voice, random.Random(1), tmp_path / "b.wav").load_audio()
    c = speak(text, voice, random.Random(2), tmp_path / "c.wav").load_audio()
    assert a.shape == b.shape and (a == b).all()
    assert a.shape != c.shape  # another duration stretch: another length


def test_each_engine_gets_an_equal_share_of_utterances() -> None:
    voices = [Voice("espeak-ng", f"v{i}", "en") for i in range(7)] + [Voice("piper", "joe", "en")]
    rng = random.Random(0)
    picks = [pick_voice(voices, rng).engine for _ in range(2000)]
    assert 0.45 < picks.count("piper") / len(picks) < 0.55


def test_unknown_or_missing_engines_are_refused_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown synthesis engine.*'mbrola'.*known: espeak-ng"):
        check_engines(["mbrola"], ["en"])
    monkeypatch.setattr("shutil.which", lambda name: None)  # nothing on PATH: no engine installed
    with pytest.raises(RuntimeError, match="flite has no voice installed.*apt-get install flite"):
        check_engines(["flite"], ["en"])


def test_a_language_no_chosen_engine_speaks_is_named() -> None:
    if not installed("flite"):
        pytest.skip(f"flite not installed: {INSTALL_HINT}")
    with pytest.raises(RuntimeError, match=r"no synthesis engine of \['flite'\] speaks \['de'\]"):
        check_engines(["flite"], ["en", "de"])


def test_corpus_records_each_utterance_voice_and_draws_from_every_engine(tmp_path: Path) -> None:
    engines = [name for name in ("espeak-ng", "flite") if installed(name)]
    if len(engines) < 2:
        pytest.skip(f"espeak-ng and flite needed: {INSTALL_HINT}")
    items = [
        TextItem(texts={"en": f"This is test sentence number {n} of the corpus."}, source="test")
        for n in range(16)
    ]
    prepare_synthetic(
        tmp_path, languages=["en"], num_train=12, num_dev=2, num_test=2, items=items, engines=engines
    )
    supervisions = load_manifest(tmp_path / "synthetic_supervisions_train.jsonl.gz")
    recordings = load_manifest(tmp_path / "synthetic_recordings_train.jsonl.gz")
    used = {sup.speaker.split(":")[0] for sup in supervisions}
    assert used == set(engines)
    for sup in supervisions:
        engine, _, voice = sup.speaker.partition(":")
        assert voice in ENGINES[engine].voices("en")
        audio = Path(recordings[sup.recording_id].sources[0].source)
        assert audio.parent.name == engine  # one folder per engine (resuming never mixes voices)
        assert sf.info(audio).samplerate == 16000
    # the same seed draws the same voices again
    again = tmp_path / "again"
    prepare_synthetic(
        again, languages=["en"], num_train=12, num_dev=2, num_test=2, items=items, engines=engines
    )
    redo = load_manifest(again / "synthetic_supervisions_train.jsonl.gz")
    assert [s.speaker for s in redo] == [s.speaker for s in supervisions]


def test_cli_engine_choices_are_the_library_engines() -> None:
    args = build_parser().parse_args(["prepare", "synthetic", "out", "--engines", "flite", "piper"])
    assert args.engines == ["flite", "piper"]
    synthetic = build_parser()._subparsers._group_actions[0].choices["prepare"]
    engines_flag = next(
        action
        for action in synthetic._subparsers._group_actions[0].choices["synthetic"]._actions
        if action.dest == "engines"
    )
    assert list(engines_flag.choices) == list(ENGINES)


def test_festival_speaks_many_sentences_in_one_process_with_quotes_and_accents(tmp_path: Path) -> None:
    if not installed("festival") or not installed("festival", "it"):
        pytest.skip(f"festival with English and Italian voices needed: {INSTALL_HINT}")
    rng = random.Random(0)
    jobs = [
        ('She said "hello" and left.', Voice("festival", "kal_diphone", "en"), rng, tmp_path / "a.wav"),
        ("Perché è così difficile?", Voice("festival", "lp_diphone", "it"), rng, tmp_path / "b.wav"),
        ("A backslash \\ is read too.", Voice("festival", "kal_diphone", "en"), rng, tmp_path / "c.wav"),
        ("Flite speaks this one.", Voice("flite", "kal", "en"), rng, tmp_path / "d.wav"),
    ]
    recordings = speak_many(jobs)
    assert [Path(r.sources[0].source).name for r in recordings] == ["a.wav", "b.wav", "c.wav", "d.wav"]
    for recording in recordings:
        assert recording.sampling_rate == 16000 and recording.duration > 0.8
