"""Manifest fields are type-checked at import and at load, and prepared manifests work from any
working directory."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from lhotse import load_manifest

from speechllm.cli import main
from speechllm.data.manifest_check import ManifestError, check_cut_manifest


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("text", ["one", "two"], "list"),
        ("text", 12345, "int"),
        ("text", {"a": 1}, "dict"),
        ("translation", False, "bool"),
    ],
)
def test_jsonl_import_refuses_values_that_are_not_strings(
    tmp_path, tones_dir, field, value, kind, capsys
) -> None:
    wav = next((tones_dir / "wav").glob("*.wav"))
    rows = [
        {"audio": str(wav), "text": "one two", "src_lang": "en"},
        {"audio": str(wav), "text": "x", "id": "b"},
    ]
    rows[1][field] = value
    if field == "translation":
        rows[1]["tgt_lang"] = "de"
    table = tmp_path / "table.jsonl"
    table.write_text("".join(json.dumps(row) + "\n" for row in rows))
    code = main(["prepare", "manifest", str(table), str(tmp_path / "out"), "--language", "en"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{table}:2: '{field}' must be a string, got {kind}" in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*cuts*"))


def _cuts_with(tones_dir: Path, tmp_path: Path, edit) -> Path:
    with gzip.open(tones_dir / "tones_cuts_train.jsonl.gz", "rt") as handle:
        cuts = [json.loads(line) for line in handle][:3]
    edit(cuts[2])
    path = tmp_path / "cuts.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.writelines(json.dumps(cut) + "\n" for cut in cuts)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda cut: cut["supervisions"][0].update(text=["a", "b"]),
            "supervision text must be a string, got list",
        ),
        (
            lambda cut: cut["supervisions"][0].update(custom={"translation": 7}),
            "custom 'translation' must be",
        ),
        (lambda cut: cut.update(duration="2.0"), "duration must be a number, got str"),
        (lambda cut: cut.update(id=17), "id must be a string, got int"),
    ],
    ids=["text list", "translation number", "duration string", "id number"],
)
def test_a_cut_manifest_with_a_mistyped_field_is_refused_at_load(tones_dir, tmp_path, edit, message) -> None:
    path = _cuts_with(tones_dir, tmp_path, edit)
    with pytest.raises(ManifestError, match=f"{path}:3: {message}"):
        check_cut_manifest(path)


def test_a_manifest_prepared_from_a_parent_directory_loads_from_any_other(
    tones_dir, tmp_path, monkeypatch
) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "audio").mkdir(parents=True)
    wav = shutil.copy(next((tones_dir / "wav").glob("*.wav")), corpus / "audio" / "a.wav")
    (corpus / "table.tsv").write_text("audio\ttext\naudio/a.wav\tone two\n")
    monkeypatch.chdir(tmp_path)  # the user runs it from the parent, with relative paths
    assert main(["prepare", "manifest", "corpus/table.tsv", "corpus/manifests", "--language", "en"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (cut,) = load_manifest(tmp_path / "corpus" / "manifests" / "custom_cuts_train.jsonl.gz")
    assert Path(cut.recording.sources[0].source) == Path(wav).absolute()
    assert cut.load_audio().size > 0
