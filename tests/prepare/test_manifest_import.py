"""Generic import (TSV, JSONL, kaldi data dir) and the shared manifest writer."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import load_manifest

from speechllm.cli import build_parser
from speechllm.data.manifest_check import ManifestError, check_cut, check_cut_manifest
from speechllm.prepare.manifest_import import import_kaldi_dir, import_manifest, import_table


def _wav(path: Path, seconds: float, sampling_rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    sf.write(path, (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), sampling_rate)
    return path


def test_tsv_with_translations_and_default_languages(tmp_path: Path) -> None:
    _wav(tmp_path / "audio" / "a.wav", 1.0)
    _wav(tmp_path / "audio" / "b.wav", 2.0, sampling_rate=8000)
    table = tmp_path / "data.tsv"
    table.write_text(
        "audio\ttext\ttranslation\tsrc_lang\n"
        "audio/a.wav\tHello  world\tHallo Welt\t\n"
        "audio/b.wav\tBuongiorno\t\tit\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    import_table(table, out, corpus="mine", split="dev", language="en", tgt_lang="de")
    cuts = load_manifest(out / "mine_cuts_dev.jsonl.gz")
    by_id = {cut.id: cut for cut in cuts}
    first = by_id["audio_a"].supervisions[0]
    assert (first.text, first.language, first.custom) == (
        "Hello world",
        "en",
        {"translation": "Hallo Welt", "tgt_lang": "de"},
    )
    second = by_id["audio_b"].supervisions[0]
    assert (second.text, second.language, second.custom) == ("Buongiorno", "it", None)  # ASR-only: no custom
    assert by_id["audio_b"].duration == pytest.approx(2.0)
    assert load_manifest(out / "mine_recordings_dev.jsonl.gz")["audio_b"].sampling_rate == 8000


def test_jsonl_with_ids_and_resampling(tmp_path: Path) -> None:
    _wav(tmp_path / "x.wav", 1.0, sampling_rate=8000)
    table = tmp_path / "data.jsonl"
    row = {
        "id": "utt1",
        "path": str(tmp_path / "x.wav"),
        "text": "Bonjour",
        "src_lang": "fr",
        "translation": "Hello",
        "tgt_lang": "en",
    }
    table.write_text(json.dumps(row) + "\n", encoding="utf-8")
    result = import_table(table, None, resample_to=16000)
    (cut,) = result["train"]["cuts"]
    assert cut.id == "utt1" and cut.sampling_rate == 16000
    assert cut.load_audio().shape == (1, 16000)
    assert cut.supervisions[0].custom == {"translation": "Hello", "tgt_lang": "en"}


def test_missing_audio_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    _wav(tmp_path / "a.wav", 1.0)
    table = tmp_path / "data.tsv"
    table.write_text("audio\ttext\na.wav\tfirst\nnowhere.wav\tsecond\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"data\.tsv:3: audio file not found: .*nowhere\.wav"):
        import_table(table, None, language="en")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"audio\ttext\na.wav\tok\nb.wav\t\xe9t\xe9\n", r"data\.tsv:3: not valid UTF-8"),
        (b"audio\ttext\na.wav\tone\na.wav\ttwo\n", r"data\.tsv:3: duplicate id 'a' \(first at line 2\)"),
        (b"audio\ttext\na.wav\t\n", r"data\.tsv:2: empty or missing 'text'"),
        (b"audio\ttext\ttranslation\na.wav\tone\tuno\n", r"data\.tsv:2: tgt_lang: '' is not"),
        (b"audio\ttext\tsrc_lang\na.wav\tone\tEnglish\n", r"data\.tsv:2: src_lang: 'English' is not"),
        (b"audio\ttext\na.wav\n", r"data\.tsv:2: 1 tab-separated fields"),
    ],
)
def test_bad_table_rows_name_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    _wav(tmp_path / "a.wav", 1.0)
    _wav(tmp_path / "b.wav", 1.0)
    table = tmp_path / "data.tsv"
    table.write_bytes(content)
    with pytest.raises(ManifestError, match=message):
        import_table(table, None, language="en")


def test_unreadable_and_empty_audio_are_skipped_counted_and_listed(tmp_path: Path) -> None:
    _wav(tmp_path / "good.wav", 1.0)
    (tmp_path / "garbage.wav").write_bytes(b"\x00\x01" * 100)
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    table = tmp_path / "data.tsv"
    table.write_text("audio\ttext\ngood.wav\tgood\ngarbage.wav\tbad\nempty.wav\tempty\n", encoding="utf-8")
    out = tmp_path / "out"
    result = import_table(table, out, language="en")
    assert [cut.id for cut in result["train"]["cuts"]] == ["good"]
    report = (out / "custom_skipped_train.tsv").read_text().splitlines()
    assert report[0] == "where\taudio\treason"
    reasons = {line.split("\t")[0].rsplit(":", 1)[1]: line.split("\t")[2] for line in report[1:]}
    assert reasons["3"].startswith("unreadable") and reasons["4"].startswith("empty")


def _kaldi_dir(root: Path, with_segments: bool) -> Path:
    data = root / "kaldi"
    data.mkdir()
    _wav(root / "rec1.wav", 4.0)
    _wav(root / "rec2.wav", 2.0)
    (data / "wav.scp").write_text(f"rec1 {root / 'rec1.wav'}\nrec2 {root / 'rec2.wav'}\n")
    if with_segments:
        (data / "segments").write_text("u1 rec1 0.0 1.5\nu2 rec1 1.5 4.0\nu3 rec2 0.5 2.0\n")
        (data / "text").write_text("u1 first part\nu2 second part\nu3 third\n")
        (data / "utt2spk").write_text("u1 alice\nu2 bob\nu3 alice\n")
    else:
        (data / "text").write_text("rec1 whole one\nrec2 whole two\n")
    return data


def test_kaldi_dir_with_segments_gives_one_cut_per_segment(tmp_path: Path) -> None:
    result = import_kaldi_dir(_kaldi_dir(tmp_path, with_segments=True), None, language="de")
    cuts = {cut.id: cut for cut in result["train"]["cuts"]}
    assert set(cuts) == {"u1", "u2", "u3"}
    assert (cuts["u2"].start, cuts["u2"].duration) == pytest.approx((1.5, 2.5))
    supervision = cuts["u2"].supervisions[0]
    assert (supervision.text, supervision.speaker, supervision.language, supervision.start) == (
        "second part",
        "bob",
        "de",
        0,
    )
    assert cuts["u3"].load_audio().shape == (1, 24000)


def test_kaldi_dir_without_segments_and_its_errors(tmp_path: Path) -> None:
    data = _kaldi_dir(tmp_path, with_segments=False)
    result = import_kaldi_dir(data, None, language="en")
    assert sorted(cut.id for cut in result["train"]["cuts"]) == ["rec1", "rec2"]
    with pytest.raises(ManifestError, match="does not say its language"):
        import_kaldi_dir(data, None)
    (data / "text").write_text("rec1 whole one\nrec3 unknown\n")
    with pytest.raises(ManifestError, match=r"text:2: recording 'rec3' is not in .*wav\.scp"):
        import_kaldi_dir(data, None, language="en")
    (data / "wav.scp").write_text(f"rec1 {tmp_path / 'rec1.wav'}\nrec2 sox in.flac -t wav - |\n")
    with pytest.raises(ManifestError, match=r"wav\.scp:2: piped commands"):
        import_kaldi_dir(data, None, language="en")


def test_cli_manifest_subcommand_detects_kaldi_dirs(tmp_path: Path) -> None:
    data = _kaldi_dir(tmp_path, with_segments=True)
    parser = build_parser()
    out = tmp_path / "out"
    args = parser.parse_args(
        [
            "prepare",
            "manifest",
            str(data),
            str(out),
            "--language",
            "es",
            "--corpus",
            "calls",
            "--split",
            "test",
        ]
    )
    args.func(args)
    cuts = load_manifest(out / "calls_cuts_test.jsonl.gz")
    assert {cut.supervisions[0].language for cut in cuts} == {"es"} and len(cuts) == 3
    # import_manifest sends a table through the table reader.
    table = tmp_path / "t.tsv"
    table.write_text(f"audio\ttext\n{tmp_path / 'rec2.wav'}\thello there\n")
    assert len(import_manifest(table, None, language="en")["train"]["cuts"]) == 1


def test_a_stereo_file_with_speech_on_one_channel_is_down_mixed_as_transcribe_does(tmp_path: Path) -> None:
    """`prepare manifest` keeps every channel, so training reads what `transcribe` reads."""
    from speechllm.audio import load_mono_16k
    from speechllm.inference import load_audio_file

    t = np.arange(16000) / 16000
    right = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    path = tmp_path / "audio" / "stereo.wav"
    path.parent.mkdir(parents=True)
    sf.write(path, np.stack([np.zeros_like(right), right], axis=1), 16000, subtype="FLOAT")
    table = tmp_path / "data.tsv"
    table.write_text("audio\ttext\naudio/stereo.wav\thello\n", encoding="utf-8")
    import_table(table, tmp_path / "out", corpus="mine", split="train", language="en")
    manifest = tmp_path / "out" / "mine_cuts_train.jsonl.gz"
    assert check_cut_manifest(manifest) == 1  # a MultiCut, checked field by field like a MonoCut
    with gzip.open(manifest, "rt") as handle:
        row = json.loads(handle.readline())
    assert row["type"] == "MultiCut"
    row["supervisions"][0]["text"] = ["not", "text"]
    with pytest.raises(ManifestError, match="supervision text must be a string"):
        check_cut(row, "m:1")
    (cut,) = load_manifest(manifest)
    audio, problem = load_mono_16k(cut)
    assert problem == "" and audio is not None
    assert np.abs(audio.numpy()).max() == pytest.approx(0.25, abs=1e-3)  # not silence: the mean
    assert np.allclose(audio.numpy(), load_audio_file(path).numpy(), atol=1e-6)
