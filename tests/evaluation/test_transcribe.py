"""`speechllm transcribe`: files, directories and globs in; one result per good file, one error
line per bad one, in input order; exit status 1 when some failed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechllm.cli import main
from speechllm.config import load_config
from speechllm.inference import Transcript, expand_audio_paths
from speechllm.model import SpeechLLM


def _records(stdout: str) -> list[str]:
    """One record per ``\\n``: ``str.splitlines`` also breaks at characters (``\\x1c``-``\\x1e``,
    ``\\x85``, U+2028) that an untrained model's text may hold."""
    return stdout.split("\n")[:-1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_overrides: list[str]) -> Path:
    """An untrained tiny model: the command's behaviour, not its accuracy, is under test."""
    torch.manual_seed(0)  # the same untrained weights whichever tests ran before
    model = SpeechLLM.from_config(load_config(None, tiny_model_overrides).model)
    return model.save_pretrained(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture
def audio(tmp_path: Path, tones_dir: Path) -> dict[str, Path]:
    wavs = sorted((tones_dir / "wav").glob("*.wav"))[:3]
    good = tmp_path / "good"
    good.mkdir()
    paths = {f"good{i}": shutil.copy(wav, good / f"clip{i}.wav") for i, wav in enumerate(wavs)}
    paths = {k: Path(v) for k, v in paths.items()}
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00not really a wave file")
    long = tmp_path / "long.wav"  # past the tiny Whisper's 30 s window: the model refuses it
    sf.write(long, np.random.default_rng(0).normal(0, 0.1, 35 * 16000).astype(np.float32), 16000)
    return {**paths, "empty": empty, "corrupt": corrupt, "long": long, "dir": good}


def test_directories_and_globs_expand_in_order_and_unmatched_specs_fail(audio: dict[str, Path]) -> None:
    files, failures = expand_audio_paths(
        [
            audio["dir"],
            str(audio["dir"] / "clip1.*"),
            audio["dir"] / "absent.wav",
            str(audio["dir"] / "*.mp3"),
        ]
    )
    assert files == [str(audio[f"good{i}"]) for i in range(3)]  # the glob's file is not repeated
    assert [(f.path, f.error) for f in failures] == [
        (str(audio["dir"] / "absent.wav"), "file not found"),
        (str(audio["dir"] / "*.mp3"), "the pattern matches no file"),
    ]


def test_good_files_print_and_each_bad_file_is_one_error_line(model_dir, audio, capsys) -> None:
    order = [audio["good0"], audio["empty"], audio["good1"], audio["corrupt"], audio["long"], audio["good2"]]
    code = main(
        [
            "transcribe",
            "--model",
            str(model_dir),
            "--batch-size",
            "4",
            "--max-new-tokens",
            "3",
            *map(str, order),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1
    printed = [line.split("\t")[0] for line in _records(out)]
    assert printed == [str(audio["good0"]), str(audio["good1"]), str(audio["good2"])]
    errors = [line for line in err.splitlines() if line.startswith("speechllm: error: ")]
    assert len(errors) == 3, err
    assert f"{audio['empty']}: empty audio" in errors[0]
    assert f"{audio['corrupt']}: cannot read audio" in errors[1]
    assert str(audio["long"]) in errors[2] and "30" in errors[2]


def test_jsonl_output_carries_path_text_seconds_and_decode_time(model_dir, audio, capsys) -> None:
    code = main(
        [
            "transcribe",
            "--model",
            str(model_dir),
            "--format",
            "jsonl",
            "--max-new-tokens",
            "3",
            str(audio["dir"]),
        ]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    rows = [json.loads(line) for line in _records(out)]
    assert [row["path"] for row in rows] == [str(audio[f"good{i}"]) for i in range(3)]
    for row, i in zip(rows, range(3)):
        assert set(row) == {"path", "text", "seconds", "decode_seconds"}
        assert row["seconds"] == pytest.approx(sf.info(audio[f"good{i}"]).duration, abs=1e-3)
        assert row["decode_seconds"] > 0


def test_a_transcript_without_error_omits_the_error_field() -> None:
    assert Transcript("a.wav", "hi", 1.0, 0.1).as_dict() == {
        "path": "a.wav",
        "text": "hi",
        "seconds": 1.0,
        "decode_seconds": 0.1,
    }


def test_a_35_second_and_a_3_minute_clip_transcribe_with_the_chunking_option(
    model_dir, tmp_path, capsys
) -> None:
    rng = np.random.default_rng(1)
    paths = []
    for name, seconds in (("35s.wav", 35), ("3min.wav", 180)):
        sf.write(tmp_path / name, rng.normal(0, 0.1, seconds * 16000).astype(np.float32), 16000)
        paths.append(str(tmp_path / name))
    args = ["transcribe", "--model", str(model_dir), "--max-new-tokens", "2", "--format", "jsonl", *paths]
    assert main(args) == 1  # past the tiny Whisper's 30 s window without chunking
    capsys.readouterr()
    assert main([*args, "--chunk-seconds", "30"]) == 0
    rows = [json.loads(line) for line in _records(capsys.readouterr().out)]
    assert [row["path"] for row in rows] == paths
    assert [round(row["seconds"]) for row in rows] == [35, 180]
