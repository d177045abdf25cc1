"""The manifests the library reads, and the check that runs before training trusts one.

A corpus is three lhotse manifests per split, written by :mod:`speechllm.prepare`:

- ``<corpus>_recordings_<split>.jsonl.gz``: a lhotse ``RecordingSet`` (audio at its native rate);
- ``<corpus>_supervisions_<split>.jsonl.gz``: a ``SupervisionSet``, ``text`` = transcript in the
  source language, ``language`` = source language code, ``custom = {"translation": ...,
  "tgt_lang": ...}`` for utterances with a translation;
- ``<corpus>_cuts_<split>.jsonl.gz``: a ``CutSet`` with one cut per supervision, the cut id being
  the supervision id. Training and evaluation read only this one.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path


class ManifestError(ValueError):
    """Bad input in a manifest or a corpus source; the message names the file and line (or key)."""


_CUT_FIELDS = ("id", "duration", "supervisions", "recording")


def check_cut_manifest(path: str | Path) -> int:
    """Read a cut manifest (``.jsonl`` or ``.jsonl.gz``) once, line by line, before training uses it.

    Lazy reading would otherwise fail mid-epoch (hours in) on a truncated file or a bad line.

    Returns:
        the number of cuts.

    Raises:
        ManifestError: naming the file and line, for a truncated or corrupt gzip stream, bytes that
            are not UTF-8, a line that is not a JSON object, a cut missing ``id`` / ``duration`` /
            ``supervisions`` / ``recording`` or without any supervision, or a repeated cut id.
    """
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    first_line: dict[str, int] = {}
    number = 0
    try:
        with opener(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:  # decoded per line, so that the error names the line
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise ManifestError(f"{path}:{number}: not valid UTF-8 ({err.reason})") from None
                if not line.strip():
                    continue
                try:
                    cut = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ManifestError(f"{path}:{number}: not valid JSON ({err.msg})") from None
                if not isinstance(cut, dict):
                    raise ManifestError(f"{path}:{number}: expected a JSON object (a cut)")
                # Mono cuts (the library's own) are checked field by field; other kinds by id.
                needed = _CUT_FIELDS if cut.get("type", "MonoCut") == "MonoCut" else ("id",)
                missing = [key for key in needed if key not in cut]
                if missing:
                    raise ManifestError(f"{path}:{number}: cut without {', '.join(missing)}")
                cut_id = cut["id"]
                if "supervisions" in needed and not cut["supervisions"]:
                    raise ManifestError(f"{path}:{number}: cut {cut_id!r} has no supervision (no text)")
                if cut_id in first_line:
                    raise ManifestError(
                        f"{path}:{number}: duplicate cut id {cut_id!r} (first at line {first_line[cut_id]})"
                    )
                first_line[cut_id] = number
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ManifestError(
            f"{path}:{number + 1}: unreadable ({type(err).__name__}: {err}): the file is truncated or corrupt"
        ) from None
    return len(first_line)
