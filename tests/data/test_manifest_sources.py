"""Manifests are untrusted input: a recording source that runs a command or fetches a URL is
refused before any audio is read, on every path that reads a manifest, unless the user opts in."""

from __future__ import annotations

import copy
import gzip
import json
import random
import string
from pathlib import Path

import pytest
from helpers.paths import TINY_RECIPE

from speechllm.cli import main
from speechllm.config import load_config
from speechllm.data.manifest_check import (
    SAFE_SOURCE_TYPES,
    UntrustedManifestError,
    check_cut,
    check_cut_manifest,
    check_manifest_path,
)
from speechllm.model import SpeechLLM


def _cuts(manifest: Path) -> list[dict]:
    with gzip.open(manifest, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _write(path: Path, cuts: list[dict]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for cut in cuts:
            handle.write(json.dumps(cut) + "\n")
    return path


def _with_command_source(tones_dir: Path, tmp_path: Path, marker: Path, row: int = 1) -> Path:
    """The tones test manifest with one cut's audio read by a shell command that touches ``marker``."""
    cuts = _cuts(tones_dir / "tones_cuts_test.jsonl.gz")
    source = cuts[row]["recording"]["sources"][0]
    wav = Path(source["source"])
    if not wav.is_absolute():
        wav = tones_dir / wav
    source.update({"type": "command", "source": f"touch {marker}; cat {wav}"})
    return _write(tmp_path / "evil_cuts.jsonl.gz", cuts)


@pytest.fixture
def one_cut(tones_dir: Path) -> dict:
    return _cuts(tones_dir / "tones_cuts_test.jsonl.gz")[0]


@pytest.mark.parametrize("kind", ["command", "url", "s3", "", None, 7])
def test_sources_that_run_or_fetch_are_refused_naming_the_place_and_type(one_cut, kind):
    one_cut["recording"]["sources"][0]["type"] = kind
    with pytest.raises(UntrustedManifestError, match=r"m\.jsonl:3: cut .* source.*--trust-manifest-sources"):
        check_cut(one_cut, "m.jsonl:3")
    assert check_cut(one_cut, "m.jsonl:3", trust_sources=True) == one_cut["id"]  # the opt-in


@pytest.mark.parametrize("kind", SAFE_SOURCE_TYPES)
def test_sources_that_only_read_bytes_pass(one_cut, kind):
    one_cut["recording"]["sources"][0]["type"] = kind
    assert check_cut(one_cut, "m.jsonl:1") == one_cut["id"]


def test_a_command_inside_a_mixed_cut_track_or_url_features_is_refused(one_cut):
    evil = copy.deepcopy(one_cut)
    evil["recording"]["sources"][0].update({"type": "command", "source": "id"})
    mixed = {"id": "mix", "type": "MixedCut", "tracks": [{"cut": one_cut, "offset": 0}, {"cut": evil}]}
    with pytest.raises(UntrustedManifestError, match="'command'"):
        check_cut(mixed, "m.jsonl:1")
    featured = {**one_cut, "features": {"storage_type": "lilcom_url", "storage_path": "http://x"}}
    with pytest.raises(UntrustedManifestError, match="lilcom_url"):
        check_cut(featured, "m.jsonl:1")


def test_the_manifest_check_names_file_and_line_and_shar_shards_are_checked(tones_dir, tmp_path):
    manifest = _with_command_source(tones_dir, tmp_path, tmp_path / "marker", row=1)
    with pytest.raises(UntrustedManifestError, match=rf"{manifest}:2: "):
        check_cut_manifest(manifest)
    shar = tmp_path / "shar"
    shar.mkdir()
    _write(shar / "cuts.000000.jsonl.gz", _cuts(manifest))
    with pytest.raises(UntrustedManifestError, match=r"cuts\.000000\.jsonl\.gz:2"):
        check_manifest_path(shar)
    assert check_manifest_path(shar, trust_sources=True) == len(_cuts(manifest))
    assert not (tmp_path / "marker").exists()


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("speechllm: error: ")]
    assert len(errors) == 1 and not any("Traceback" in line for line in err), err
    return errors[0]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_overrides: list[str]) -> Path:
    model = SpeechLLM.from_config(load_config(None, tiny_model_overrides).model)
    return model.save_pretrained(tmp_path_factory.mktemp("model") / "model")


def test_every_command_that_reads_a_manifest_refuses_a_command_source(
    tones_dir, tmp_path, capsys, tiny_dirs, model_dir
):
    marker = tmp_path / "ran"
    manifest = _with_command_source(tones_dir, tmp_path, marker)
    tiny = [
        f"model.encoder.path={tiny_dirs['tiny-random-whisper']}",
        f"model.llm.path={tiny_dirs['tiny-random-llama']}",
    ]
    commands = {
        "evaluate": [
            "evaluate", "--model", str(model_dir), "--manifest", str(manifest), "--out", str(tmp_path / "e"),
        ],
        "cache": [
            "cache", str(TINY_RECIPE), *tiny, "--manifest", str(manifest), "--out", str(tmp_path / "c"),
        ],
        "train": [
            "train", str(TINY_RECIPE), *tiny, f"output_dir={tmp_path / 't'}", "trainer.max_steps=1",
            f"data.train=[{{path: {manifest}}}]", "data.val=[]",
        ],
        "whisper-baseline": ["whisper-baseline", "--manifest", str(manifest), "--out", str(tmp_path / "w")],
        "prepare shar": ["prepare", "shar", str(manifest), str(tmp_path / "s")],
    }  # fmt: skip
    for name, argv in commands.items():
        assert main(argv) == 2, name
        line = _one_error_line(capsys)
        assert f"{manifest}:2" in line and "'command'" in line and "--trust-manifest-sources" in line, line
        assert not marker.exists(), f"{name} ran the manifest's command"


def test_evaluate_reads_a_command_source_only_when_trusted(tones_dir, tmp_path, capsys, model_dir):
    marker = tmp_path / "ran"
    manifest = _with_command_source(tones_dir, tmp_path, marker)
    argv = ["evaluate", "--model", str(model_dir), "--manifest", str(manifest), "--max-new-tokens", "2"]
    assert main([*argv, "--out", str(tmp_path / "refused")]) == 2
    assert not marker.exists()
    assert main([*argv, "--out", str(tmp_path / "trusted"), "--trust-manifest-sources"]) == 0
    assert marker.exists()  # the user's own choice: lhotse ran the command


def test_fuzzed_source_types_and_depths_pass_only_when_they_only_read_bytes(one_cut):
    """A seeded fuzz: 300 source types (near misses of the safe ones among them) at random depths."""
    rng = random.Random(31)
    near = [
        "File",
        "file ",
        " file",
        "FILE",
        "memory\\n",
        "shar:",
        "url",
        "Command",
        "cmd",
        "commands",
        "http",
    ]
    for trial in range(300):
        kind = rng.choice(
            [*near, *SAFE_SOURCE_TYPES, "".join(rng.choices(string.printable, k=rng.randint(0, 8)))]
        )
        cut = copy.deepcopy(one_cut)
        cut["recording"]["sources"][0]["type"] = kind
        node: dict = cut
        for depth in range(rng.randint(0, 3)):  # wrap it in mixed-cut tracks
            node = {"id": f"mix{trial}-{depth}", "type": "MixedCut", "tracks": [{"cut": node}]}
        if kind in SAFE_SOURCE_TYPES:
            assert check_cut(node, "m:1") == node["id"]
        else:
            with pytest.raises(UntrustedManifestError):
                check_cut(node, "m:1")
