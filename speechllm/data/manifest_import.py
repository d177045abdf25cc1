"""Bring your own data: lhotse manifests from a TSV/JSONL table or a kaldi data directory.

Also holds what every speechllm corpus recipe shares: reading text files with line-precise
errors, probing audio in parallel with a counted skip report, and validating and writing the
manifests in the one format the library reads:

- ``<corpus>_recordings_<split>.jsonl.gz``: a lhotse ``RecordingSet`` (audio at its native rate);
- ``<corpus>_supervisions_<split>.jsonl.gz``: a ``SupervisionSet``, ``text`` = transcript in the
  source language, ``language`` = source language code, ``custom = {"translation": ...,
  "tgt_lang": ...}`` for utterances with a translation;
- ``<corpus>_cuts_<split>.jsonl.gz``: a ``CutSet`` with one cut per supervision, the cut id being
  the supervision id.

Table format (TSV with a header row, or JSONL with one object per line)::

    audio   text    [translation]   [src_lang]   [tgt_lang]   [id]

``audio`` may also be called ``path`` or ``audio_path``; relative paths are resolved against
``audio_root`` (default: the table's directory).
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import re
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lhotse import (
    CutSet,
    Recording,
    RecordingSet,
    SupervisionSegment,
    SupervisionSet,
    fix_manifests,
    validate_recordings_and_supervisions,
)
from lhotse.cut import MonoCut
from lhotse.utils import fastcopy

logger = logging.getLogger(__name__)

_LANG_CODE = re.compile(r"^[a-z]{2,3}$")
_AUDIO_COLUMNS = ("audio", "path", "audio_path")


class ManifestError(ValueError):
    """Bad input at preparation time; the message names the file and line (or key)."""


# ----------------------------------------------------------------------------- reading text


def read_text_lines(path: str | Path) -> list[str]:
    """Read a UTF-8 text file into lines (without line ends).

    Raises:
        ManifestError: the file is missing, or not valid UTF-8 (naming the first bad line).
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: file not found")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # -sig: tolerate a byte-order mark (some transcripts have one)
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ManifestError(f"{path}:{line}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
    return text.splitlines()


def check_language_code(code: str, where: str) -> str:
    """A lower-case ISO 639 code, or a ManifestError saying where the bad one came from."""
    if not _LANG_CODE.match(code or ""):
        raise ManifestError(f"{where}: {code!r} is not a lower-case ISO 639 language code (e.g. 'en')")
    return code


# ----------------------------------------------------------------------------- checking cut manifests

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


# ----------------------------------------------------------------------------- audio probing


@dataclass
class SkipReport:
    """Entries left out at preparation (unreadable or empty audio, filtered durations), counted.

    Each entry is ``(where, audio_path, reason)`` with ``where`` = ``file:line`` of the source entry.
    """

    entries: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, where: str, audio: str, reason: str) -> None:
        self.entries.append((where, audio, reason))

    def write(self, output_dir: Path | None, corpus: str, split: str) -> Path | None:
        """Log a counted warning and write ``<corpus>_skipped_<split>.tsv``; nothing if no skips."""
        if not self.entries:
            return None
        reasons: dict[str, int] = {}
        for _, _, reason in self.entries:
            kind = reason.split(":")[0]
            reasons[kind] = reasons.get(kind, 0) + 1
        summary = ", ".join(f"{count} {kind}" for kind, count in sorted(reasons.items()))
        if output_dir is None:
            logger.warning("%s %s: skipped %d entries (%s)", corpus, split, len(self.entries), summary)
            return None
        path = Path(output_dir) / f"{corpus}_skipped_{split}.tsv"
        with path.open("w", encoding="utf-8") as out:
            out.write("where\taudio\treason\n")
            for where, audio, reason in self.entries:
                out.write(f"{where}\t{audio}\t{reason}\n")
        logger.warning(
            "%s %s: skipped %d entries (%s), listed in %s", corpus, split, len(self.entries), summary, path
        )
        return path


def _probe(recording_id: str, path: str) -> Recording | str:
    """Read an audio file's header (lhotse backends); the error text instead of raising."""
    try:
        recording = Recording.from_file(path, recording_id=recording_id)
    except Exception as err:  # every backend failing is one "unreadable" case for the report
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"unreadable: {first_line}"
    if recording.num_samples == 0 or recording.duration <= 0:
        return "empty: zero-length audio"
    return recording


def probe_recordings(
    entries: Sequence[tuple[str, Path, str]], skips: SkipReport, num_jobs: int = 1
) -> dict[str, Recording]:
    """Make a ``Recording`` for each ``(recording_id, audio_path, where)``.

    A missing file is an error (the manifest entry is wrong); an unreadable or empty one is
    skipped and counted in ``skips`` (the data is bad, the rest of the corpus is still usable).

    Raises:
        ManifestError: an audio file does not exist (naming it and the entry's file:line).
    """
    for _, path, where in entries:
        if not Path(path).is_file():
            raise ManifestError(f"{where}: audio file not found: {path}")
    ids = [recording_id for recording_id, _, _ in entries]
    paths = [str(path) for _, path, _ in entries]
    if num_jobs > 1 and len(entries) > 1:
        with ProcessPoolExecutor(num_jobs) as pool:
            results = list(pool.map(_probe, ids, paths, chunksize=max(1, len(entries) // (8 * num_jobs))))
    else:
        results = [_probe(recording_id, path) for recording_id, path in zip(ids, paths)]
    recordings: dict[str, Recording] = {}
    for (recording_id, path, where), result in zip(entries, results):
        if isinstance(result, str):
            skips.add(where, str(path), result)
        else:
            recordings[recording_id] = result
    return recordings


# ----------------------------------------------------------------------------- writing


def build_cuts(recordings: RecordingSet, supervisions: SupervisionSet) -> CutSet:
    """One cut per supervision, spanning it exactly, with the supervision's id as the cut id.

    (``CutSet.from_manifests`` would name cuts ``<recording>-0``; we keep the supervision ids,
    which recipes make unique and stable.)
    """
    cuts = []
    for supervision in supervisions:
        recording = recordings[supervision.recording_id]
        cuts.append(
            MonoCut(
                id=supervision.id,
                start=supervision.start,
                duration=supervision.duration,
                channel=supervision.channel if isinstance(supervision.channel, int) else 0,
                recording=recording,
                supervisions=[fastcopy(supervision, start=0.0)],
            )
        )
    return CutSet.from_cuts(cuts)


def write_manifests(
    recordings: RecordingSet,
    supervisions: SupervisionSet,
    output_dir: str | Path | None,
    corpus: str,
    split: str,
    resample_to: int | None = None,
) -> dict[str, Any]:
    """Fix, validate, build cuts, and (given ``output_dir``) write the three JSONL.gz manifests.

    Args:
        recordings: audio at its native rate.
        supervisions: one per cut (see the module docstring for the fields).
        output_dir: where ``<corpus>_{recordings,supervisions,cuts}_<split>.jsonl.gz`` go; None
            writes nothing.
        corpus, split: the file name parts.
        resample_to: if set, the cuts resample on load (lhotse records a ``Resample`` transform);
            the recordings manifest keeps the native rate.

    Returns:
        ``{"recordings": RecordingSet, "supervisions": SupervisionSet, "cuts": CutSet}``.

    Raises:
        ManifestError: duplicate supervision ids, or a supervision lhotse's validation rejects.
    """
    seen: set[str] = set()
    for supervision in supervisions:
        if supervision.id in seen:
            raise ManifestError(f"{corpus} {split}: duplicate utterance id {supervision.id!r}")
        seen.add(supervision.id)
    recordings, supervisions = fix_manifests(recordings, supervisions)
    try:
        validate_recordings_and_supervisions(recordings, supervisions)
    except AssertionError as err:  # lhotse validates with asserts
        raise ManifestError(f"{corpus} {split}: invalid manifest: {err}") from None
    cuts = build_cuts(recordings, supervisions)
    if resample_to is not None:
        cuts = cuts.resample(resample_to)
    if output_dir is not None:
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        recordings.to_file(output_dir / f"{corpus}_recordings_{split}.jsonl.gz")
        supervisions.to_file(output_dir / f"{corpus}_supervisions_{split}.jsonl.gz")
        cuts.to_file(output_dir / f"{corpus}_cuts_{split}.jsonl.gz")
    return {"recordings": recordings, "supervisions": supervisions, "cuts": cuts}


def make_supervision(
    utterance_id: str,
    recording: Recording,
    text: str,
    language: str,
    translation: str | None = None,
    tgt_lang: str | None = None,
    speaker: str | None = None,
    start: float = 0.0,
    duration: float | None = None,
    extra_custom: dict[str, Any] | None = None,
) -> SupervisionSegment:
    """A supervision in the library's convention (whole recording unless start/duration given)."""
    custom: dict[str, Any] = {}
    if translation is not None:
        custom["translation"] = translation
        custom["tgt_lang"] = tgt_lang
    if extra_custom:
        custom.update(extra_custom)
    return SupervisionSegment(
        id=utterance_id,
        recording_id=recording.id,
        start=start,
        duration=recording.duration if duration is None else duration,
        channel=0,
        text=text,
        language=language,
        speaker=speaker,
        custom=custom or None,
    )


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
            yield number, {key: "" if value is None else str(value) for key, value in row.items()}
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
        audio = audio if audio.is_absolute() else root / audio
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
    skips = SkipReport()
    recordings = probe_recordings(entries, skips, num_jobs)
    supervisions = []
    text_path = data_dir / "text"
    for utterance_id, (number, (text,)) in texts.items():
        where = f"{text_path}:{number}"
        text = " ".join(text.split())
        if not text:
            raise ManifestError(f"{where}: empty transcript for {utterance_id!r}")
        start, duration = 0.0, None
        if segments is not None:
            if utterance_id not in segments:
                raise ManifestError(
                    f"{where}: utterance {utterance_id!r} has no line in {data_dir / 'segments'}"
                )
            seg_line, (recording_id, start_s, end_s) = segments[utterance_id]
            try:
                start, end = float(start_s), float(end_s)
            except ValueError:
                raise ManifestError(
                    f"{data_dir / 'segments'}:{seg_line}: start/end are not numbers"
                ) from None
            if end <= start:
                raise ManifestError(
                    f"{data_dir / 'segments'}:{seg_line}: end {end} is not after start {start}"
                )
            duration = end - start
        else:
            recording_id = utterance_id
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
