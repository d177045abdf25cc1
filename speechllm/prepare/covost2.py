"""CoVoST 2 recipe: Common Voice clips + CoVoST 2 TSVs -> lhotse manifests.

Inputs (as released by Common Voice and by ``get_covost_splits.py`` of CoVoST 2):

- ``<cv_root>/<src>/clips/<clip>.mp3``: Common Voice clips of the source language;
- ``<covost_tsv_dir>/covost_v2.<src>_<tgt>.<split>.tsv``: columns ``path``, ``sentence``
  (transcript), ``translation``, ``client_id`` (speaker), with a header row.

The paper's tasks are ASR in en, es, fr, it, de and ST en→de, de→en, es→en, fr→en, it→en; the
five pairs cover all ten tasks, because every utterance carries its transcript (ASR) and its
translation (ST). Each cut has one supervision: ``text`` = transcript, ``language`` = source,
``custom = {"translation", "tgt_lang"}``. Cut ids are ``covost2-<src>_<tgt>-<clip stem>``.

Clips are read through lhotse's audio backends (mp3 by libsndfile ≥ 1.1 or audioread); a clip
stored under another extension with the same stem (e.g. converted to ``.flac``) is used instead.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

from speechllm.data.manifest_check import ManifestError
from speechllm.languages import PAPER_ST_PAIRS, pair_name, parse_pair
from speechllm.prepare.common import (
    SkipReport,
    make_supervision,
    probe_recordings,
    read_text_lines,
    write_manifests,
)

logger = logging.getLogger(__name__)

CORPUS = "covost2"
SPLITS = ("train", "dev", "test")
PAPER_PAIRS = tuple(pair_name(src, tgt) for src, tgt in PAPER_ST_PAIRS)
# The paper keeps test clips between 1 and 15 seconds.
PAPER_TEST_MIN_DURATION = 1.0
PAPER_TEST_MAX_DURATION = 15.0
_TSV_COLUMNS = ("path", "sentence", "translation", "client_id")
_AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac", ".ogg", ".opus")


def covost_tsv_path(covost_tsv_dir: str | Path, src: str, tgt: str, split: str) -> Path:
    """``<dir>/covost_v2.<src>_<tgt>.<split>.tsv``."""
    return Path(covost_tsv_dir) / f"covost_v2.{src}_{tgt}.{split}.tsv"


def read_covost_tsv(path: str | Path) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CoVoST 2 split TSV as ``(line number, {column: value})``.

    Raises:
        ManifestError: missing file, non-UTF-8 text, a missing column or a malformed row
            (naming the file and line).
    """
    path = Path(path)
    lines = read_text_lines(path)
    if not lines:
        raise ManifestError(f"{path}: empty file (a header row is needed)")
    # QUOTE_NONE: sentences contain quotation marks that are text (as fairseq reads these files).
    reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    header = next(reader)
    missing = [column for column in _TSV_COLUMNS if column not in header]
    if missing:
        raise ManifestError(f"{path}:1: missing column(s) {', '.join(missing)}; header is {header}")
    rows = []
    for number, values in enumerate(reader, start=2):
        if not any(value.strip() for value in values):
            continue
        if len(values) != len(header):
            raise ManifestError(
                f"{path}:{number}: {len(values)} tab-separated fields, the header has {len(header)}"
            )
        rows.append((number, dict(zip(header, values))))
    return rows


def _clip_index(clips_dir: Path) -> dict[str, str]:
    """Stem -> file name for the clips directory, listed once (Common Voice has ~10^6 clips)."""
    if not clips_dir.is_dir():
        raise ManifestError(f"{clips_dir}: Common Voice clips directory not found")
    index: dict[str, str] = {}
    with os.scandir(clips_dir) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            # Prefer the original .mp3 when several encodings of one clip exist.
            if ext.lower() in _AUDIO_EXTENSIONS and (stem not in index or ext.lower() == ".mp3"):
                index[stem] = entry.name
    return index


def _pair_entries(
    tsv: Path,
    rows: list[tuple[int, dict[str, str]]],
    src: str,
    tgt: str,
    clips_dir: Path,
    index: dict[str, str],
) -> tuple[list[tuple[str, Path, str]], dict[str, tuple[str, str, str | None]]]:
    """Turn one pair's split TSV rows into audio entries and texts, keyed by utterance id.

    Args:
        tsv: the ``covost_v2.<src>_<tgt>.<split>.tsv`` file (for ``file:line`` in messages).
        rows: its rows, from ``read_covost_tsv``.
        src, tgt: the translation direction.
        clips_dir: the source language's Common Voice clips directory.
        index: stem -> file name of ``clips_dir`` (see ``_clip_index``).

    Returns:
        ``[(utterance_id, audio path, file:line)]`` for ``probe_recordings`` and
        ``{utterance_id: (sentence, translation, speaker or None)}``.

    Raises:
        ManifestError: an empty path, sentence or translation, or a clip repeated within the pair.
    """
    entries = []
    texts: dict[str, tuple[str, str, str | None]] = {}
    first_line: dict[str, int] = {}
    for number, row in rows:
        where = f"{tsv}:{number}"
        stem = os.path.splitext(row["path"])[0]
        if not stem:
            raise ManifestError(f"{where}: empty 'path'")
        utterance_id = f"{CORPUS}-{pair_name(src, tgt)}-{stem}"
        if utterance_id in first_line:
            raise ManifestError(
                f"{where}: clip {row['path']!r} repeated (first at line {first_line[utterance_id]})"
            )
        first_line[utterance_id] = number
        sentence = " ".join(row["sentence"].split())
        translation = " ".join(row["translation"].split())
        if not sentence or not translation:
            raise ManifestError(f"{where}: empty 'sentence' or 'translation' for clip {row['path']!r}")
        # A clip absent from the index is reported by probe_recordings as missing, by path.
        audio = clips_dir / index.get(stem, row["path"])
        entries.append((utterance_id, audio, where))
        texts[utterance_id] = (sentence, translation, row["client_id"] or None)
    return entries, texts


def _pair_cuts(
    entries: list[tuple[str, Path, str]],
    texts: dict[str, tuple[str, str, str | None]],
    src: str,
    tgt: str,
    duration_range: tuple[float | None, float | None] | None,
    skips: SkipReport,
    num_jobs: int,
) -> tuple[list[Recording], list[SupervisionSegment]]:
    """Probe one pair's clips and make a supervision for each readable one within the durations.

    Args:
        entries, texts: from ``_pair_entries``.
        src, tgt: the translation direction.
        duration_range: ``(min, max)`` seconds to keep (either None: unbounded); None: no filter.
        skips: collects unreadable, empty and filtered clips.
        num_jobs: processes reading clip headers.

    Returns:
        The kept recordings and their supervisions, in TSV order.
    """
    recordings = probe_recordings(entries, skips, num_jobs)
    kept_recordings = []
    supervisions = []
    for utterance_id, audio, where in entries:
        recording = recordings.get(utterance_id)
        if recording is None:
            continue
        if duration_range is not None and not _within(recording.duration, *duration_range):
            skips.add(where, str(audio), f"duration: {recording.duration:.2f} s outside the filter")
            continue
        sentence, translation, speaker = texts[utterance_id]
        kept_recordings.append(recording)
        supervisions.append(
            make_supervision(utterance_id, recording, sentence, src, translation, tgt, speaker=speaker)
        )
    return kept_recordings, supervisions


def prepare_covost2(
    cv_root: str | Path,
    covost_tsv_dir: str | Path,
    output_dir: str | Path | None = None,
    pairs: Sequence[str] = PAPER_PAIRS,
    splits: Sequence[str] = SPLITS,
    min_duration: float | None = None,
    max_duration: float | None = None,
    duration_filter_splits: Sequence[str] | None = None,
    num_jobs: int = 1,
) -> dict[str, dict[str, Any]]:
    """Prepare CoVoST 2 manifests for the given translation pairs and splits.

    Args:
        cv_root: Common Voice root holding ``<src>/clips/``.
        covost_tsv_dir: directory of ``covost_v2.<src>_<tgt>.<split>.tsv``.
        output_dir: where ``covost2_{recordings,supervisions,cuts}_<split>.jsonl.gz`` go (all
            pairs in one file per split; select by supervision ``language`` / ``custom.tgt_lang``).
        pairs: directions such as ``"en_de"``; default: the paper's five.
        splits: any of ``train``, ``dev``, ``test``.
        min_duration, max_duration: keep clips in ``[min, max]`` seconds (the paper: 1–15 s on
            test; use ``PAPER_TEST_MIN_DURATION`` / ``PAPER_TEST_MAX_DURATION``).
        duration_filter_splits: splits the duration filter applies to (default: all).
        num_jobs: processes reading clip headers.

    Returns:
        ``{split: {"recordings": RecordingSet, "supervisions": SupervisionSet, "cuts": CutSet}}``.
        Filtered, unreadable and empty clips are counted in ``covost2_skipped_<split>.tsv``.

    Raises:
        ManifestError: a missing TSV or clip, bad TSV content, or duplicate clips within a pair.
    """
    cv_root = Path(cv_root)
    parsed_pairs = [parse_pair(pair) for pair in pairs]
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"unknown CoVoST 2 split {split!r}; valid: {', '.join(SPLITS)}")
    filter_splits = set(splits if duration_filter_splits is None else duration_filter_splits)
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
    clip_indexes: dict[str, dict[str, str]] = {}
    manifests: dict[str, dict[str, Any]] = {}
    for split in splits:
        skips = SkipReport()
        duration_range = (min_duration, max_duration) if split in filter_splits else None
        all_recordings: list[Recording] = []
        all_supervisions: list[SupervisionSegment] = []
        for src, tgt in parsed_pairs:
            tsv = covost_tsv_path(covost_tsv_dir, src, tgt, split)
            rows = read_covost_tsv(tsv)
            clips_dir = cv_root / src / "clips"
            if src not in clip_indexes:
                clip_indexes[src] = _clip_index(clips_dir)
            entries, texts = _pair_entries(tsv, rows, src, tgt, clips_dir, clip_indexes[src])
            recordings, supervisions = _pair_cuts(entries, texts, src, tgt, duration_range, skips, num_jobs)
            all_recordings.extend(recordings)
            all_supervisions.extend(supervisions)
        skips.write(Path(output_dir) if output_dir is not None else None, CORPUS, split)
        if not all_supervisions:
            raise ManifestError(f"CoVoST 2 {split}: no usable clips for pairs {list(pairs)}")
        manifests[split] = write_manifests(
            RecordingSet.from_recordings(all_recordings),
            SupervisionSet.from_segments(all_supervisions),
            output_dir,
            CORPUS,
            split,
        )
        logger.info("CoVoST 2 %s: %d cuts", split, len(all_supervisions))
    return manifests


def _within(duration: float, min_duration: float | None, max_duration: float | None) -> bool:
    return (min_duration is None or duration >= min_duration) and (
        max_duration is None or duration <= max_duration
    )
