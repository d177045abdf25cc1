"""A run owns its output_dir: a second run into it fails at once, naming the first."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers.paths import TINY_RECIPE

from speechllm.cli import main
from speechllm.lightning.checkpoint import LOCK_FILE, lock_output_dir, release_output_dir

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")

HOLDER = (
    "import sys\n"
    "from speechllm.lightning.checkpoint import lock_output_dir\n"
    "lock_output_dir(sys.argv[1])\n"
    "print('locked', flush=True)\n"
    "sys.stdin.read()\n"  # hold it until the test closes our stdin
)


def test_a_second_run_into_a_locked_output_dir_fails_at_once_naming_the_first(
    tiny_dirs, tones_dir, tmp_path, capsys
):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        argv = [
            "train", str(TINY_RECIPE), f"output_dir={out}",
            f"model.encoder.path={tiny_dirs['tiny-random-whisper']}",
            f"model.llm.path={tiny_dirs['tiny-random-llama']}",
            f"data.train=[{{path: {tones_dir / 'tones_cuts_train.jsonl.gz'}}}]", "data.val=[]",
            "trainer.max_steps=1",
        ]  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"output_dir {out} is in use by another run (pid {holder.pid} " in err, err
        assert not (out / "model").exists() and not (out / "precision.json").exists()  # nothing written
    finally:
        holder.communicate(input="", timeout=60)
    lock_output_dir(out)  # the holder has exited: its lock went with it
    assert f"pid {os.getpid()} " in (out / LOCK_FILE).read_text()
    release_output_dir(out)


def test_the_process_holding_the_lock_may_take_it_again_and_gives_it_up(tmp_path):
    out = tmp_path / "run"
    lock_output_dir(out)
    lock_output_dir(out)  # a resume in the same process
    probe = [sys.executable, "-c", HOLDER, str(out)]
    refused = subprocess.run(probe, input="", capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "is in use by another run" in refused.stderr
    release_output_dir(out)
    taken = subprocess.run(probe, input="", capture_output=True, text=True, timeout=60)
    assert taken.returncode == 0 and taken.stdout.strip() == "locked", taken.stderr[-2000:]
