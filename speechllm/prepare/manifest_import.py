"""Bring your own data: lhotse manifests from a TSV/JSONL table or a kaldi data directory.

The manifests written are the library's format (:mod:`speechllm.data.manifest_check`).

Table format (TSV with a header row, or JSONL with one object per line)::

    audio   text    [translation]   [src_lang]   [tgt_lang]   [id]

``audio`` may also be called ``path`` or ``audio_path``; relative paths are resolved against
``audio_root`` (default: the table's directory).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

from speechllm.data.manifest_check import ManifestError
from speechllm.prepare.common import (
    SkipReport,
    check_language_code,
    make_supervision,
    probe_recordings,
    read_text_lines,
    write_manifests,
)

logger = logging.getLogger(__name__)

_AUDIO_COLUMNS = ("audio", "path", "audio_path")
_STRING_FIELDS = (*_AUDIO_COLUMNS, "text", "translation", "src_lang", "tgt_lang", "id")


# ----------------------------------------------------------------------------- tables


@dataclass
class TableEntry:
    """One row of an import table; ``where`` is ``file:line``."""

    where: str
    audio: Path
    text: str
    src_lang: str
    translation: str | None
    tgt_lang: str | None
    utterance_id: str


def _rows(table: Path) -> Iterable[tuple[int, dict[str, str]]]:
    """(line number, row dict) for a TSV (header row) or JSONL table."""
    lines = read_text_lines(table)
    if table.suffix == ".jsonl" or table.name.endswith(".jsonl"):
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ManifestError(f"{table}:{number}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ManifestError(f"{table}:{number}: expected a JSON object, got {type(row).__name__}")
            for key in _STRING_FIELDS:  # a list or number would otherwise be stored as its repr
                value = row.get(key)
                if value is not None and not isinstance(value, str):
                    kind = type(value).__name__
                    raise ManifestError(f"{table}:{number}: {key!r} must be a string, got {kind} {value!r}")
            yield number, {key: row.get(key) or "" for key in _STRING_FIELDS if key in row}
        return
    if not lines:
        raise ManifestError(f"{table}: empty table (a header row is needed)")
    # QUOTE_NONE: transcripts contain quotes that are text, not CSV quoting.
    reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    header = next(reader)
    for number, values in enumerate(reader, start=2):
        if not any(value.strip() for value in values):
            continue
        if len(values) != len(header):
            raise ManifestError(
                f"{table}:{number}: {len(values)} tab-separated fields, the header has {len(header)}"
            )
        yield number, dict(zip(header, values))


def read_table(
    table: str | Path,
    audio_root: str | Path | None = None,
    language: str | None = None,
    tgt_lang: str | None = None,
    id_prefix: str = "",
) -> list[TableEntry]:
    """Parse an import table (see the module docstring), checking each row.

    Args:
        table: a ``.tsv`` (header row) or ``.jsonl`` file.
        audio_root: base of relative audio paths (default: the table's directory).
        language: source language for rows without ``src_lang``.
        tgt_lang: target language for rows with a translation and no ``tgt_lang``.
        id_prefix: prefixed to ids derived from audio paths (not to an explicit ``id`` column).

    Raises:
        ManifestError: naming the file and line, for a missing column or value, a bad language
            code, a translation without target language, or a repeated id.
    """
    table = Path(table)
    root = Path(audio_root) if audio_root is not None else table.parent
    entries: list[TableEntry] = []
    first_line: dict[str, int] = {}
    for number, row in _rows(table):
        where = f"{table}:{number}"
        audio_key = next((key for key in _AUDIO_COLUMNS if row.get(key)), None)
        if audio_key is None:
            raise ManifestError(f"{where}: no audio path (expected a column {' / '.join(_AUDIO_COLUMNS)})")
        text = " ".join(row.get("text", "").split())
        if not text:
            raise ManifestError(f"{where}: empty or missing 'text'")
        src = check_language_code(row.get("src_lang") or language or "", f"{where}: src_lang")
        translation = " ".join(row.get("translation", "").split()) or None
        tgt = None
        if translation is not None:
            tgt = check_language_code(row.get("tgt_lang") or tgt_lang or "", f"{where}: tgt_lang")
        audio = Path(row[audio_key])
        # Absolute in the manifest, so that it works from any working directory.
        audio = (audio if audio.is_absolute() else root / audio).absolute()
        utterance_id = row.get("id") or id_prefix + Path(row[audio_key]).with_suffix("").as_posix().replace(
            "/", "_"
        )
        if utterance_id in first_line:
            raise ManifestError(
                f"{where}: duplicate id {utterance_id!r} (first at line {first_line[utterance_id]})"
            )
        first_line[utterance_id] = number
        entries.append(TableEntry(where, audio, text, src, translation, tgt, utterance_id))
    if not entries:
        raise ManifestError(f"{table}: no entries")
    return entries


def import_table(
    table: str | Path,
    output_dir: str | Path | None = None,
    corpus: str = "custom",
    split: str = "train",
    language: str | None = None,
    tgt_lang: str | None = None,
    audio_root: str | Path | None = None,
    resample_to: int | None = None,
    num_jobs: int = 1,
) -> dict[str, dict[str, Any]]:
    """Manifests from a TSV/JSONL table of (audio, text[, translation, src_lang, tgt_lang, id]).

    Returns:
        ``{split: {"recordings", "supervisions", "cuts"}}``, written to ``output_dir`` if given.
        Unreadable or empty audio is skipped and listed in ``<corpus>_skipped_<split>.tsv``.
    """
    entries = read_table(table, audio_root=audio_root, language=language, tgt_lang=tgt_lang)
    skips = SkipReport()
    recordings = probe_recordings([(e.utterance_id, e.audio, e.where) for e in entries], skips, num_jobs)
    supervisions = [
        make_supervision(
            e.utterance_id, recordings[e.utterance_id], e.text, e.src_lang, e.translation, e.tgt_lang
        )
        for e in entries
        if e.utterance_id in recordings
    ]
    return {
        split: _write_split(
            recordings,
            supervisions,
            skips,
            output_dir,
            corpus,
            split,
            resample_to,
            f"{table}: no usable entries (all audio unreadable or empty)",
        )
    }


def _write_split(
    recordings: dict[str, Recording],
    supervisions: list[SupervisionSegment],
    skips: SkipReport,
    output_dir: str | Path | None,
    corpus: str,
    split: str,
    resample_to: int | None,
    nothing_usable: str,
) -> dict[str, Any]:
    """Write the skip report, then the validated manifests of one split (error when nothing is usable)."""
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
    skips.write(Path(output_dir) if output_dir is not None else None, corpus, split)
    if not supervisions:
        raise ManifestError(nothing_usable)
    return write_manifests(
        RecordingSet.from_recordings(recordings.values()),
        SupervisionSet.from_segments(supervisions),
        output_dir,
        corpus,
        split,
        resample_to=resample_to,
    )


# ----------------------------------------------------------------------------- kaldi


def _kaldi_map(path: Path, fields: int | None = None) -> dict[str, tuple[int, list[str]]]:
    """``key -> (line, rest)`` for a kaldi file; ``fields`` = exact count of values after the key."""
    table: dict[str, tuple[int, list[str]]] = {}
    for number, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        key, _, rest = line.strip().partition(" ")
        values = rest.split() if fields is not None else [rest.strip()]
        if fields is not None and len(values) != fields:
            raise ManifestError(f"{path}:{number}: expected a key and {fields} values, got {line!r}")
        if key in table:
            raise ManifestError(f"{path}:{number}: duplicate key {key!r} (first at line {table[key][0]})")
        table[key] = (number, values)
    return table


def _kaldi_audio_entries(
    wavs: dict[str, tuple[int, list[str]]], wav_scp: Path, data_dir: Path
) -> list[tuple[str, Path, str]]:
    """``(recording_id, audio path, file:line)`` for each ``wav.scp`` line (relative to ``data_dir``).

    Args:
        wavs: ``wav.scp`` parsed by ``_kaldi_map``.
        wav_scp: its path (for ``file:line`` in messages).
        data_dir: base of relative audio paths.

    Returns:
        Entries for ``probe_recordings``, in ``wav.scp`` order.

    Raises:
        ManifestError: a piped command or an extended filename instead of an audio path.
    """
    entries = []
    for recording_id, (number, (location,)) in wavs.items():
        if location.endswith("|") or " " in location:
            raise ManifestError(
                f"{wav_scp}:{number}: piped commands and extended filenames are not supported "
                f"({location!r}); write the audio to files and list their paths"
            )
        audio = Path(location)
        entries.append(
            (recording_id, audio if audio.is_absolute() else data_dir / audio, f"{wav_scp}:{number}")
        )
    return entries


def _kaldi_span(
    utterance_id: str,
    where: str,
    segments: dict[str, tuple[int, list[str]]] | None,
    segments_path: Path,
) -> tuple[str, float, float | None]:
    """The recording, start and duration of an utterance: its ``segments`` line, or a whole recording.

    Args:
        utterance_id: the ``text`` key.
        where: ``file:line`` of its ``text`` line.
        segments: ``segments`` parsed by ``_kaldi_map``, or None without that file (the
            utterance id is then the recording id).
        segments_path: the ``segments`` file (for messages).

    Returns:
        ``(recording_id, start, duration)``; duration None means the whole recording.

    Raises:
        ManifestError: no ``segments`` line for the utterance, or a bad start/end.
    """
    if segments is None:
        return utterance_id, 0.0, None
    if utterance_id not in segments:
        raise ManifestError(f"{where}: utterance {utterance_id!r} has no line in {segments_path}")
    seg_line, (recording_id, start_s, end_s) = segments[utterance_id]
    try:
        start, end = float(start_s), float(end_s)
    except ValueError:
        raise ManifestError(f"{segments_path}:{seg_line}: start/end are not numbers") from None
    if end <= start:
        raise ManifestError(f"{segments_path}:{seg_line}: end {end} is not after start {start}")
    return recording_id, start, end - start


def import_kaldi_dir(
    data_dir: str | Path,
    output_dir: str | Path | None = None,
    corpus: str = "custom",
    split: str = "train",
    language: str | None = None,
    resample_to: int | None = None,
    num_jobs: int = 1,
) -> dict[str, dict[str, Any]]:
    """Manifests from a kaldi data directory: ``wav.scp``, ``text``, optional ``segments``, ``utt2spk``.

    ``wav.scp`` must map to audio files (piped commands are refused: convert them to files
    first). Without ``segments`` each utterance id must be a ``wav.scp`` key. Kaldi
    directories carry no translations: the result is ASR-only.

    Returns:
        ``{split: {"recordings", "supervisions", "cuts"}}`` (one cut per utterance).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ManifestError(f"{data_dir}: not a directory")
    if language is None:
        raise ManifestError(
            f"{data_dir}: a kaldi data dir does not say its language; pass language (--language)"
        )
    check_language_code(language, f"{data_dir}: language")
    wav_scp = data_dir / "wav.scp"
    wavs = _kaldi_map(wav_scp)
    texts = _kaldi_map(data_dir / "text")
    segments = _kaldi_map(data_dir / "segments", fields=3) if (data_dir / "segments").is_file() else None
    speakers = _kaldi_map(data_dir / "utt2spk", fields=1) if (data_dir / "utt2spk").is_file() else {}
    skips = SkipReport()
    recordings = probe_recordings(_kaldi_audio_entries(wavs, wav_scp, data_dir), skips, num_jobs)
    supervisions = []
    text_path = data_dir / "text"
    for utterance_id, (number, (text,)) in texts.items():
        where = f"{text_path}:{number}"
        text = " ".join(text.split())
        if not text:
            raise ManifestError(f"{where}: empty transcript for {utterance_id!r}")
        recording_id, start, duration = _kaldi_span(utterance_id, where, segments, data_dir / "segments")
        if recording_id not in wavs:
            raise ManifestError(f"{where}: recording {recording_id!r} is not in {wav_scp}")
        if recording_id not in recordings:
            continue  # unreadable audio, already in the skip report
        speaker = speakers.get(utterance_id, (0, [None]))[1][0]
        supervisions.append(
            make_supervision(
                utterance_id,
                recordings[recording_id],
                text,
                language,
                speaker=speaker,
                start=start,
                duration=duration,
            )
        )
    return {
        split: _write_split(
            recordings,
            supervisions,
            skips,
            output_dir,
            corpus,
            split,
            resample_to,
            f"{data_dir}: no usable utterances",
        )
    }


def import_manifest(
    source: str | Path,
    output_dir: str | Path | None = None,
    corpus: str = "custom",
    split: str = "train",
    language: str | None = None,
    tgt_lang: str | None = None,
    audio_root: str | Path | None = None,
    resample_to: int | None = None,
    num_jobs: int = 1,
) -> dict[str, dict[str, Any]]:
    """Dispatch: a directory is a kaldi data dir, anything else a TSV/JSONL table."""
    source = Path(source)
    if source.is_dir():
        return import_kaldi_dir(
            source, output_dir, corpus, split, language=language, resample_to=resample_to, num_jobs=num_jobs
        )
    return import_table(
        source, output_dir, corpus, split, language, tgt_lang, audio_root, resample_to, num_jobs
    )
