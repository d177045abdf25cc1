"""Atomic file writes: a crash mid-write never leaves a half-written file in place."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from speechllm.errors import DiskFullError

log = logging.getLogger(__name__)

# What atomic_write names its temporary files: ".<name>.<random>.speechllm-tmp<suffixes of name>".
# The clean-up removes only names of this form: a user's own ".notes.md.tmp" is never touched.
TEMP_MARKER = ".speechllm-tmp"
_TEMPORARY = re.compile(r"^\..+\.[^.]+\.speechllm-tmp(\.[^.]+)*$")
_STARTED = time.time()  # temporaries older than this process come from a run that died


def _file_mode() -> int:
    umask = os.umask(0)  # reading the umask means setting it: set it straight back
    os.umask(umask)
    return 0o666 & ~umask


_DEFAULT_MODE = _file_mode()


@contextlib.contextmanager
def atomic_write(path: str | Path, keep_suffixes: bool = False) -> Iterator[Path]:
    """Yield a temp path in the same directory; on success fsync it and rename it over ``path``.

    ``keep_suffixes`` ends the temp name with ``path``'s last two suffixes (``.speechllm-tmp.jsonl.gz``),
    for writers that choose a format by suffix (lhotse's ``to_file``). A killed process leaves
    only the temp file, which :func:`remove_stale_temporaries` clears at the next start.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffixes = "".join(path.suffixes[-2:]) if keep_suffixes else ""
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f"{TEMP_MARKER}{suffixes}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        # mkstemp creates the file private (0600); give it what a plain open() would have.
        os.chmod(tmp, _DEFAULT_MODE)
        os.replace(tmp, path)
    except Exception as err:
        if _out_of_space(err, path.parent):  # writers report a full disk in their own words
            raise DiskFullError(
                f"no space left on device ({path.parent}) while writing {path.name}; the previous "
                f"{path.name}, if any, is intact: free some space and run again"
            ) from err
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def _out_of_space(err: BaseException, directory: Path) -> bool:
    """Whether a failed write ran out of disk: ENOSPC, or any error while the disk is (nearly) full
    (``torch.save`` says ``unexpected pos N vs M``, zip and numpy writers their own words)."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return shutil.disk_usage(directory).free < LOW_SPACE_BYTES
    except OSError:
        return False


LOW_SPACE_BYTES = 1 << 20  # under 1 MiB free after a failed write: the disk was what failed


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` is named like one of :func:`atomic_write`'s temporary files."""
    return bool(_TEMPORARY.match(Path(path).name))


def remove_stale_temporaries(directory: str | Path, recursive: bool = True) -> list[Path]:
    """Delete :func:`atomic_write` temporaries older than this process (left by a killed run).

    Only files named as :func:`atomic_write` names them (``.<name>.<random>.speechllm-tmp…``) are
    touched; younger ones may belong to a writer running now (another rank, another command) and
    stay. Returns the removed paths.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for path in directory.rglob(".*") if recursive else directory.glob(".*"):
        if path.is_file() and is_temporary(path):
            try:
                if path.stat().st_mtime < _STARTED:
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:  # its writer finished or cleaned it meanwhile
                continue
    if removed:
        log.warning(
            "removed %d temporary file(s) left by an interrupted run under %s", len(removed), directory
        )
    return removed
