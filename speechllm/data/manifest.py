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
from typing import Any

from speechllm.errors import SpeechLLMError


class ManifestError(SpeechLLMError, ValueError):
    """Bad input in a manifest or a corpus source; the message names the file and line (or key)."""


_CUT_FIELDS = ("id", "duration", "supervisions", "recording")


def check_cut_manifest(path: str | Path) -> int:
    """Read a cut manifest (``.jsonl`` or ``.jsonl.gz``) once, line by line, before training uses it.

    Lazy reading would otherwise fail mid-epoch (hours in) on a truncated file or a bad line.

    Returns:
        the number of cuts.

    Raises:
        ManifestError: naming the file and line, for a truncated or corrupt gzip stream, bytes that
            are not UTF-8, a line that is not a JSON object, a cut that :func:`check_cut` refuses,
            or a repeated cut id.
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
                cut_id = check_cut(cut, f"{path}:{number}")
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


def check_cut(cut: Any, where: str) -> str:
    """Check one cut's fields and their types; returns its id.

    Mono cuts (the library's own) are checked field by field: ``id`` (string), ``duration``
    (number), ``recording``, at least one supervision, and each supervision's ``text`` (string),
    ``language`` and ``custom`` ``translation`` / ``tgt_lang`` (strings where present). Other cut
    kinds are checked by id only.

    Raises:
        ManifestError: naming ``where`` (``file:line``) and the field.
    """
    if not isinstance(cut, dict):
        raise ManifestError(f"{where}: expected a JSON object (a cut)")
    needed = _CUT_FIELDS if cut.get("type", "MonoCut") == "MonoCut" else ("id",)
    missing = [key for key in needed if key not in cut]
    if missing:
        raise ManifestError(f"{where}: cut without {', '.join(missing)}")
    cut_id = cut["id"]
    _expect(cut_id, str, where, "id")
    if "supervisions" not in needed:
        return cut_id
    _expect(cut["duration"], (int, float), where, "duration")
    if not cut["supervisions"]:
        raise ManifestError(f"{where}: cut {cut_id!r} has no supervision (no text)")
    _expect(cut["supervisions"], list, where, "supervisions")
    for supervision in cut["supervisions"]:
        _expect(supervision, dict, where, "a supervision")
        _expect(supervision.get("text"), str, where, "supervision text")
        for key in ("language", "speaker"):
            _expect(supervision.get(key), (str, type(None)), where, f"supervision {key}")
        custom = supervision.get("custom") or {}
        _expect(custom, dict, where, "supervision custom")
        for key in ("translation", "tgt_lang"):
            _expect(custom.get(key), (str, type(None)), where, f"custom {key!r}")
    return cut_id


def _expect(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, kind):  # bool is an int, never a duration
        raise ManifestError(
            f"{where}: {what} must be {_kind_name(kind)}, got {type(value).__name__} {value!r}"
        )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return " or ".join(dict.fromkeys(names.get(k, "null") for k in kinds))
