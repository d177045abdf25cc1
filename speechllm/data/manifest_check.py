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


class UntrustedManifestError(ManifestError):
    """A manifest whose audio would be read by running a command or fetching a URL, not trusted."""


_CUT_FIELDS = ("id", "duration", "supervisions", "recording")
# Recording sources that only read bytes: a local file, bytes in the manifest, a Shar field. lhotse
# runs a ``command`` source through a shell and fetches a ``url`` source from anywhere.
SAFE_SOURCE_TYPES = ("file", "memory", "shar")
TRUST_HINT = (
    "manifests are untrusted input: if you trust this file, pass --trust-manifest-sources "
    "(data.trust_manifest_sources: true)"
)


def check_cut_manifest(path: str | Path, trust_sources: bool = False) -> int:
    """Read a cut manifest (``.jsonl`` or ``.jsonl.gz``) once, line by line, before anything uses it.

    Lazy reading would otherwise fail mid-epoch (hours in) on a truncated file or a bad line. A
    manifest is untrusted input: a recording source that runs a command or fetches a URL (and
    feature storage read from a URL) is refused unless ``trust_sources``.

    Returns:
        the number of cuts.

    Raises:
        ManifestError: naming the file and line, for a truncated or corrupt gzip stream, bytes that
            are not UTF-8, a line that is not a JSON object, a cut that :func:`check_cut` refuses,
            or a repeated cut id.
        UntrustedManifestError: naming the file, line, cut and source type.
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
                cut_id = check_cut(cut, f"{path}:{number}", trust_sources)
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


def check_manifest_path(path: str | Path, trust_sources: bool = False) -> int:
    """:func:`check_cut_manifest` for a manifest file, or for every cut shard of a Shar directory.

    A file already checked in this process, unchanged since (same size and modification time), is
    not read again: a run checks its manifests before the models load and again where it opens them.

    Returns:
        the number of cuts.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"manifest not found: {path}")
    files = sorted(path.glob("cuts.*jsonl*")) if path.is_dir() else [path]
    total = 0
    for file in files:
        stat = file.stat()
        key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns, trust_sources)
        if key not in _CHECKED:
            _CHECKED[key] = check_cut_manifest(file, trust_sources)
        total += _CHECKED[key]
    return total


_CHECKED: dict[tuple[str, int, int, bool], int] = {}


def check_cut(cut: Any, where: str, trust_sources: bool = False) -> str:
    """Check one cut's fields and their types, and where its audio comes from; returns its id.

    Mono and multichannel cuts (the library's own) are checked field by field: ``id`` (string), ``duration``
    (number), ``recording``, at least one supervision, and each supervision's ``text`` (string),
    ``language`` and ``custom`` ``translation`` / ``tgt_lang`` (strings where present). Other cut
    kinds are checked by id only.

    Every recording source in the cut (a mixed cut's tracks included) must be of a
    :data:`SAFE_SOURCE_TYPES` type, and no feature storage may be a URL, unless ``trust_sources``.

    Raises:
        ManifestError: naming ``where`` (``file:line``) and the field.
        UntrustedManifestError: a source that would run a command or fetch a URL.
    """
    if not isinstance(cut, dict):
        raise ManifestError(f"{where}: expected a JSON object (a cut)")
    if not trust_sources:
        _check_sources(cut, where, cut.get("id"))
    # MultiCut: the library's own cut of a multichannel file (speechllm.prepare.common.build_cuts)
    needed = _CUT_FIELDS if cut.get("type", "MonoCut") in ("MonoCut", "MultiCut") else ("id",)
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


def _check_sources(node: Any, where: str, cut_id: Any) -> None:
    """Refuse recording sources that are not plain reads, and URL feature storage, at any depth."""
    if isinstance(node, list):
        for item in node:
            _check_sources(item, where, cut_id)
        return
    if not isinstance(node, dict):
        return
    sources = node.get("sources")
    if isinstance(sources, list):
        for source in sources:
            kind = source.get("type") if isinstance(source, dict) else None
            if kind not in SAFE_SOURCE_TYPES:
                detail = f" ({str(source.get('source'))[:80]!r})" if isinstance(source, dict) else ""
                raise UntrustedManifestError(
                    f"{where}: cut {cut_id!r} reads its audio from a {kind!r} source{detail}, which "
                    f"lhotse would run or fetch; only {', '.join(SAFE_SOURCE_TYPES)} sources are read. "
                    + TRUST_HINT
                )
    storage = node.get("storage_type")
    if isinstance(storage, str) and "url" in storage.lower():
        raise UntrustedManifestError(
            f"{where}: cut {cut_id!r} reads features from {storage!r} storage (fetched from a URL). "
            + TRUST_HINT
        )
    for value in node.values():
        if isinstance(value, dict | list):
            _check_sources(value, where, cut_id)


def _expect(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, kind):  # bool is an int, never a duration
        raise ManifestError(
            f"{where}: {what} must be {_kind_name(kind)}, got {type(value).__name__} {value!r}"
        )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return " or ".join(dict.fromkeys(names.get(k, "null") for k in kinds))
