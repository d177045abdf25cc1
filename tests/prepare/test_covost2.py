"""CoVoST 2 recipe on a small fake corpus written by the test (mp3 clips, the real TSV layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import load_manifest

from speechllm.cli import build_parser
from speechllm.data.manifest_check import ManifestError
from speechllm.prepare.covost2 import prepare_covost2

# (src, tgt, clip stem, seconds, sentence, translation)
CLIPS = [
    ("en", "de", "common_voice_en_1", 2.0, 'He said "yes" twice.', "Er sagte zweimal „ja“."),
    ("en", "de", "common_voice_en_2", 0.5, "Too short.", "Zu kurz."),
    ("de", "en", "common_voice_de_1", 3.0, "Guten Morgen zusammen.", "Good morning everyone."),
    ("es", "en", "common_voice_es_1", 1.5, "Hola a todos.", "Hello everyone."),
    ("fr", "en", "common_voice_fr_1", 2.5, "Bonjour à tous.", "Hello everyone."),
    ("it", "en", "common_voice_it_1", 16.0, "Buongiorno a tutti.", "Good morning everyone."),
]
HEADER = "client_id\tpath\tsentence\ttranslation\n"


def _tone(seconds: float, sampling_rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def write_fake_covost(root: Path, split: str = "test", extension: str = ".mp3") -> tuple[Path, Path]:
    cv_root, tsv_dir = root / "cv", root / "covost"
    tsv_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[tuple[str, str], list[str]] = {}
    for src, tgt, stem, seconds, sentence, translation in CLIPS:
        clips = cv_root / src / "clips"
        clips.mkdir(parents=True, exist_ok=True)
        sf.write(clips / f"{stem}{extension}", _tone(seconds), 16000, format=extension[1:].upper())
        # The TSVs name the .mp3 file even when the clip was stored in another format.
        rows.setdefault((src, tgt), []).append(f"spk_{src}\t{stem}.mp3\t{sentence}\t{translation}\n")
    for (src, tgt), lines in rows.items():
        (tsv_dir / f"covost_v2.{src}_{tgt}.{split}.tsv").write_text(HEADER + "".join(lines), encoding="utf-8")
    return cv_root, tsv_dir


def test_cuts_per_task_with_text_translation_and_languages(tmp_path: Path) -> None:
    cv_root, tsv_dir = write_fake_covost(tmp_path)
    out = tmp_path / "manifests"
    result = prepare_covost2(cv_root, tsv_dir, out, splits=["test"])
    cuts = load_manifest(out / "covost2_cuts_test.jsonl.gz")
    assert len(cuts) == len(CLIPS) == len(result["test"]["cuts"])
    by_id = {cut.id: cut for cut in cuts}
    for src, tgt, stem, seconds, sentence, translation in CLIPS:
        cut = by_id[f"covost2-{src}_{tgt}-{stem}"]
        (supervision,) = cut.supervisions
        assert supervision.text == sentence  # quotes kept: the TSV is read without CSV quoting
        assert supervision.language == src
        assert supervision.custom == {"translation": translation, "tgt_lang": tgt}
        assert supervision.speaker == f"spk_{src}"
        assert supervision.start == 0 and supervision.duration == pytest.approx(cut.duration)
        assert cut.duration == pytest.approx(seconds, abs=0.1)  # mp3 decoding adds a few ms
    # The paper's ASR languages and ST directions are all present.
    assert {c.supervisions[0].language for c in cuts} == {"en", "de", "es", "fr", "it"}
    directions = {(c.supervisions[0].language, c.supervisions[0].custom["tgt_lang"]) for c in cuts}
    assert directions == {("en", "de"), ("de", "en"), ("es", "en"), ("fr", "en"), ("it", "en")}
    audio = by_id["covost2-de_en-common_voice_de_1"].load_audio()
    assert audio.shape[0] == 1 and np.abs(audio).max() > 0.1
    for kind in ("recordings", "supervisions"):
        assert (out / f"covost2_{kind}_test.jsonl.gz").is_file()


def test_paper_duration_filter_keeps_1_to_15_seconds_and_reports_the_rest(tmp_path: Path) -> None:
    cv_root, tsv_dir = write_fake_covost(tmp_path)
    out = tmp_path / "manifests"
    result = prepare_covost2(cv_root, tsv_dir, out, splits=["test"], min_duration=1.0, max_duration=15.0)
    kept = {cut.id for cut in result["test"]["cuts"]}
    expected = {f"covost2-{s}_{t}-{stem}" for s, t, stem, seconds, _, _ in CLIPS if 1.0 <= seconds <= 15.0}
    assert kept == expected
    report = (out / "covost2_skipped_test.tsv").read_text().splitlines()
    assert len(report) == 1 + len(CLIPS) - len(expected)  # header + one line per filtered clip
    assert any("common_voice_it_1" in line for line in report)


def test_selected_pairs_only(tmp_path: Path) -> None:
    cv_root, tsv_dir = write_fake_covost(tmp_path)
    result = prepare_covost2(cv_root, tsv_dir, None, pairs=["fr_en"], splits=["test"])
    assert [cut.supervisions[0].language for cut in result["test"]["cuts"]] == ["fr"]


def test_clips_stored_as_flac_are_found_by_stem(tmp_path: Path) -> None:
    cv_root, tsv_dir = write_fake_covost(tmp_path, extension=".flac")
    result = prepare_covost2(cv_root, tsv_dir, None, pairs=["en_de"], splits=["test"])
    assert len(result["test"]["cuts"]) == 2


def test_missing_clip_is_an_error_naming_the_tsv_line_and_file(tmp_path: Path) -> None:
    cv_root, tsv_dir = write_fake_covost(tmp_path)
    (cv_root / "de" / "clips" / "common_voice_de_1.mp3").unlink()
    with pytest.raises(
        ManifestError, match=r"covost_v2\.de_en\.test\.tsv:2: audio file not found: .*common_voice_de_1"
    ):
        prepare_covost2(cv_root, tsv_dir, None, pairs=["de_en"], splits=["test"])


def test_unreadable_clip_is_skipped_and_counted(tmp_path: Path) -> None:
    cv_root, tsv_dir = write_fake_covost(tmp_path)
    (cv_root / "en" / "clips" / "common_voice_en_1.mp3").write_bytes(b"not audio at all" * 8)
    out = tmp_path / "manifests"
    result = prepare_covost2(cv_root, tsv_dir, out, pairs=["en_de"], splits=["test"])
    assert [cut.id for cut in result["test"]["cuts"]] == ["covost2-en_de-common_voice_en_2"]
    report = (out / "covost2_skipped_test.tsv").read_text()
    assert "covost_v2.en_de.test.tsv:2" in report and "unreadable" in report


def test_bad_tsv_content_names_file_and_line(tmp_path: Path) -> None:
    cv_root, tsv_dir = write_fake_covost(tmp_path)
    tsv = tsv_dir / "covost_v2.es_en.test.tsv"
    tsv.write_bytes(
        HEADER.encode() + b"spk\tcommon_voice_es_1.mp3\tHola\tHello\n" + b"spk\tx.mp3\t\xff\xfe\tz\n"
    )
    with pytest.raises(ManifestError, match=r"covost_v2\.es_en\.test\.tsv:3: not valid UTF-8"):
        prepare_covost2(cv_root, tsv_dir, None, pairs=["es_en"], splits=["test"])
    tsv.write_text(HEADER + "spk\tcommon_voice_es_1.mp3\tHola\tHello\n" * 2, encoding="utf-8")
    with pytest.raises(
        ManifestError, match=r"test\.tsv:3: clip 'common_voice_es_1\.mp3' repeated \(first at line 2\)"
    ):
        prepare_covost2(cv_root, tsv_dir, None, pairs=["es_en"], splits=["test"])


def test_cli_subcommand_writes_the_manifests(tmp_path: Path) -> None:
    cv_root, tsv_dir = write_fake_covost(tmp_path)
    parser = build_parser()
    out = tmp_path / "cli"
    args = parser.parse_args(
        [
            "prepare",
            "covost2",
            str(cv_root),
            str(tsv_dir),
            str(out),
            "--splits",
            "test",
            "--paper-test-filter",
        ]
    )
    args.func(args)
    cuts = load_manifest(out / "covost2_cuts_test.jsonl.gz")
    assert len(cuts) == 4  # the 0.5 s and 16 s clips are filtered as in the paper
