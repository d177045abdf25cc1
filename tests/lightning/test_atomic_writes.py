"""A process killed mid-write (a real SIGKILL) leaves the previous file intact and only a temporary
beside it, which the next start removes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from speechllm.io import atomic_write, is_temporary, remove_stale_temporaries
from speechllm.lightning.checkpoint import AtomicCheckpointIO

# Saves a checkpoint whose pickling announces itself, then hangs mid-write until killed.
WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import torch
    from speechllm.lightning.checkpoint import AtomicCheckpointIO

    path, ready = Path(sys.argv[1]), Path(sys.argv[2])

    def hang():
        ready.write_text("writing")
        time.sleep(600)

    class HangsWhilePickled:
        def __reduce__(self):
            hang()

    state = {"state_dict": {"w": torch.zeros(1 << 18)}, "global_step": 2, "slow": HangsWhilePickled()}
    AtomicCheckpointIO().save_checkpoint(state, path)
    """
)


def test_sigkill_during_a_checkpoint_write_keeps_the_old_one_and_the_next_start_cleans_up(tmp_path):
    out = tmp_path / "run"
    path = out / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(4)}, "global_step": 1}, path)
    ready = tmp_path / "ready"
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(ready)])
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert process.poll() is None, "the writer exited before it started writing"
            assert time.monotonic() < deadline, "the writer never started writing"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)  # no finally, no atexit: what a real kill leaves
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    left = [p for p in path.parent.iterdir() if p.name != "last.ckpt"]
    assert len(left) == 1 and is_temporary(left[0]), left
    kept = AtomicCheckpointIO().load_checkpoint(path)
    assert kept["global_step"] == 1 and torch.equal(kept["state_dict"]["w"], torch.ones(4))

    # The next start is a new process: what `speechllm train --resume last` runs first.
    restart = (
        "import sys\n"
        "from speechllm.lightning.checkpoint import check_output_dir\n"
        "check_output_dir(sys.argv[1], resume='last', overwrite=False)\n"
    )
    subprocess.run([sys.executable, "-c", restart, str(out)], check=True)
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_a_fresh_temporary_of_a_running_writer_is_left_alone(tmp_path):
    with atomic_write(tmp_path / "manifest.jsonl.gz", keep_suffixes=True) as tmp:
        tmp.write_bytes(b"partial")
        assert tmp.name.endswith(".speechllm-tmp.jsonl.gz") and is_temporary(tmp)
        assert remove_stale_temporaries(tmp_path) == []  # written after this process started
        assert tmp.exists()
    assert (tmp_path / "manifest.jsonl.gz").read_bytes() == b"partial"


def test_only_temporaries_older_than_this_process_are_removed(tmp_path):
    old = tmp_path / ".last.ckpt.abc123.speechllm-tmp"
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    # A user's own dot-files that look like temporaries, here and deeper down, are not ours.
    users = [tmp_path / ".report.md.tmp", tmp_path / "notes" / "deep" / ".results.csv.tmp"]
    for path in users:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("mine")
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    keep = tmp_path / "last.ckpt"
    keep.write_bytes(b"y")
    os.utime(keep, (time.time() - 3600, time.time() - 3600))
    hidden = tmp_path / ".gitignore"
    hidden.write_text("*")
    os.utime(hidden, (time.time() - 3600, time.time() - 3600))
    assert remove_stale_temporaries(tmp_path) == [old]
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == [
        ".gitignore",
        ".report.md.tmp",
        "last.ckpt",
        "notes",
    ]
    assert all(path.read_text() == "mine" for path in users)


def test_an_atomically_written_file_gets_the_permissions_a_plain_write_would(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    with atomic_write(tmp_path / "atomic.txt") as tmp:
        tmp.write_text("x")
    assert (tmp_path / "atomic.txt").stat().st_mode == plain.stat().st_mode


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 512 KiB tmpfs (needs root and mount rights; skipped, saying so, where there are none)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()[:80]})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_checkpoint_save_on_a_full_disk_names_the_device_and_keeps_the_old_one(tiny_filesystem):
    from speechllm.errors import DiskFullError
    from speechllm.lightning.checkpoint import load_checkpoint

    writer = AtomicCheckpointIO()
    path = tiny_filesystem / "last.ckpt"
    writer.save_checkpoint({"step": 1, "w": torch.ones(1000)}, path)
    with pytest.raises(
        DiskFullError, match=rf"no space left on device \({tiny_filesystem}\) while writing last\.ckpt"
    ):
        writer.save_checkpoint({"step": 2, "w": torch.ones(400_000)}, path)  # 1.6 MB
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tiny_filesystem.iterdir()] == ["last.ckpt"]  # no temporary left


def test_a_writer_error_on_a_nearly_full_disk_is_reported_as_one(tmp_path, monkeypatch):
    """torch.save reports a full disk as `unexpected pos N vs M`: the free space tells."""
    import shutil

    from speechllm import io
    from speechllm.errors import DiskFullError

    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10, 10, 0))
    with pytest.raises(DiskFullError, match="no space left on device"):
        with atomic_write(tmp_path / "x.ckpt"):
            raise RuntimeError("unexpected pos 361024 vs 360916")
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="unexpected pos"):  # with space left: the writer's own error
        with atomic_write(tmp_path / "x.ckpt"):
            raise RuntimeError("unexpected pos 361024 vs 360916")
    assert io.LOW_SPACE_BYTES > 0
