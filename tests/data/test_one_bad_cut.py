"""One bad cut never kills a run; no usable cut at all is an error, not an endless loop.

Through `speechllm train` (a subprocess with a time limit, so that a regression to the endless
loop fails instead of hanging the suite), on the tiny recipe.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

from helpers.paths import TINY_RECIPE


def _train(tiny_dirs: dict[str, Path], manifest: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = [
        sys.executable, "-m", "speechllm.cli", "train", str(TINY_RECIPE),
        f"output_dir={out}",
        f"model.encoder.path={tiny_dirs['tiny-random-whisper']}",
        f"model.llm.path={tiny_dirs['tiny-random-llama']}",
        f"data.train=[{{path: {manifest}}}]", "data.val=[]", "data.num_workers=0",
        f"data.skip_report={out / 'skipped.tsv'}",
        "trainer.max_steps=3", "trainer.enable_progress_bar=false", "trainer.logger=none",
        *extra,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def _with_languages(source: Path, target: Path, languages: dict[int, str]) -> Path:
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        cuts = [json.loads(line) for line in handle if line.strip()]
    for row, code in languages.items():
        cuts[row]["supervisions"][0]["language"] = code
    with gzip.open(target, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(cut) + "\n" for cut in cuts)
    return target


def test_one_cut_in_an_unknown_language_is_skipped_and_the_run_finishes(tiny_dirs, tones_dir, tmp_path):
    manifest = _with_languages(tones_dir / "tones_cuts_train.jsonl.gz", tmp_path / "m.jsonl.gz", {2: "pt"})
    result = _train(tiny_dirs, manifest, tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "run" / "model" / "trainable.safetensors").is_file()
    reasons = (tmp_path / "run" / "skipped.tsv").read_text().splitlines()[1:]
    assert reasons and all("unknown language ('pt'" in line for line in reasons)


def test_an_epoch_with_no_usable_cut_is_an_error_not_a_loop(tiny_dirs, tones_dir, tmp_path):
    manifest = tones_dir / "tones_cuts_train.jsonl.gz"
    result = _train(tiny_dirs, manifest, tmp_path / "run", "data.max_cut_duration=0.01")
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("speechllm: error: ")]
    assert (
        len(errors) == 1 and "gave no usable batch" in errors[0] and "data.max_cut_duration=0.01" in errors[0]
    )
    assert "Traceback" not in result.stderr
