"""A batch whose every clip is unusable goes through `speechllm train` as a counted skip: the
callbacks see it, training and `--resume last` go on."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf
from helpers.paths import TINY_RECIPE

from speechllm.cli import main
from speechllm.prepare.manifest_import import import_table


def _corpus_with_a_nan_clip(tones_dir: Path, tmp_path: Path) -> Path:
    nan = np.full(32000, np.nan, dtype=np.float32)  # 2 s: alone in its batch at max_duration 2.1
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    wavs = sorted((tones_dir / "wav").glob("tones-train-*.wav"))[:11]
    rows = [f"{wav}\tone two\tgood{i}" for i, wav in enumerate(wavs)] + [f"{tmp_path / 'nan.wav'}\tone\tbad"]
    table = tmp_path / "train.tsv"
    table.write_text("audio\ttext\tid\n" + "\n".join(rows) + "\n")
    import_table(table, tmp_path / "manifests", corpus="mixed", language="en")
    return tmp_path / "manifests" / "mixed_cuts_train.jsonl.gz"


def _metrics(out: Path) -> list[dict[str, str]]:
    rows = []
    for path in sorted(out.glob("logs/version_*/metrics.csv")):
        with path.open() as handle:
            rows += list(csv.DictReader(handle))
    return rows


def test_an_all_bad_batch_is_skipped_counted_and_training_and_resume_go_on(tiny_dirs, tones_dir, tmp_path):
    manifest = _corpus_with_a_nan_clip(tones_dir, tmp_path)
    out = tmp_path / "run"
    report = tmp_path / "skipped.tsv"
    args = [
        "train",
        str(TINY_RECIPE),
        f"output_dir={out}",
        f"model.encoder.path={tiny_dirs['tiny-random-whisper']}",
        f"model.llm.path={tiny_dirs['tiny-random-llama']}",
        f"data.train=[{{path: {manifest}}}]",
        "data.val=[]",
        "data.max_duration=2.1",
        "data.num_buckets=1",
        "data.num_workers=0",
        f"data.skip_report={report}",
        "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1",
        "trainer.checkpoint_every_n_steps=2",
    ]
    assert main([*args, "trainer.max_steps=4"]) == 0
    assert main([*args, "trainer.max_steps=12", "--resume", "last"]) == 0  # goes on past it, twice
    lines = report.read_text().splitlines()[1:]
    assert lines and all(line.startswith("bad\tnon-finite samples") for line in lines)
    skipped = [
        float(row["train/skipped_batches"]) for row in _metrics(out) if row.get("train/skipped_batches")
    ]
    assert skipped and max(skipped) >= 1  # counted, and the count is logged
    steps = [int(float(row["step"])) for row in _metrics(out) if row.get("train/loss")]
    assert max(steps) >= 10  # every later batch still trained
