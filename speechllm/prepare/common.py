"""What every corpus recipe shares: line-precise text reading, parallel audio probing with a
counted skip report, and validating and writing the manifests in the one format the library
reads (see :mod:`speechllm.data.manifest_check`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lhotse import (
    CutSet,
    Recording,
    RecordingSet,
    SupervisionSegment,
    SupervisionSet,
    fix_manifests,
    validate_recordings_and_supervisions,
)
from lhotse.cut import MonoCut, MultiCut
from lhotse.utils import fastcopy

from speechllm.data.manifest_check import ManifestError
from speechllm.io import atomic_write, remove_stale_temporaries
from speechllm.progress import progress

logger = logging.getLogger(__name__)
T = TypeVar("T")

_LANG_CODE = re.compile(r"^[a-z]{2,3}$")


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
        lines = [f"{where}\t{audio}\t{reason}\n" for where, audio, reason in self.entries]
        with atomic_write(path) as tmp:
            tmp.write_text("where\taudio\treason\n" + "".join(lines), encoding="utf-8")
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


def parallel_map(
    func: Callable[..., T], *iterables: Sequence[Any], num_jobs: int, description: str, unit: str
) -> list[T]:
    """``[func(*args) ...]`` in order, over ``num_jobs`` processes, with a progress bar."""
    total = len(iterables[0])
    with progress(description, total, unit=unit) as advance:
        if num_jobs <= 1 or total <= 1:
            results = []
            for args in zip(*iterables):
                results.append(func(*args))
                advance(1)
            return results
        with ProcessPoolExecutor(num_jobs) as pool:
            results = []
            for result in pool.map(func, *iterables, chunksize=max(1, total // (8 * num_jobs))):
                results.append(result)
                advance(1)
            return results


def write_evaluation_set(
    recordings: Sequence[Recording],
    supervisions: Sequence[SupervisionSegment],
    skips: SkipReport,
    output_dir: str | Path | None,
    corpus: str,
    sample_rate: int,
    empty_error: str,
) -> dict[str, Any]:
    """An evaluation-only corpus's ``test`` split: its skip report, then its manifests (cuts
    resample to ``sample_rate`` on load); no usable clip raises ``ManifestError(empty_error)``."""
    skips.write(Path(output_dir) if output_dir is not None else None, corpus, "test")
    if not supervisions:
        raise ManifestError(empty_error)
    recording_set = RecordingSet.from_recordings(recordings)
    supervision_set = SupervisionSet.from_segments(supervisions)
    return write_manifests(
        recording_set, supervision_set, output_dir, corpus, "test", resample_to=sample_rate
    )


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
    # Absolute in the manifest, so that it works from any working directory.
    paths = [str(Path(path).absolute()) for _, path, _ in entries]
    results = parallel_map(
        _probe, ids, paths, num_jobs=num_jobs, description="read audio headers", unit="files"
    )
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

    A multichannel recording gives a cut over all its channels (a ``MultiCut``), so every loader
    down-mixes it the same way (the channel mean, :func:`speechllm.audio.load_mono_16k`), as
    ``speechllm transcribe`` does with the file: speech on one channel only is never lost.
    """
    cuts = []
    for supervision in supervisions:
        recording = recordings[supervision.recording_id]
        channels = list(recording.channel_ids)
        kind, channel = (MultiCut, channels) if len(channels) > 1 else (MonoCut, channels[0])
        cuts.append(
            kind(
                id=supervision.id,
                start=supervision.start,
                duration=supervision.duration,
                channel=channel,
                recording=recording,
                supervisions=[fastcopy(supervision, start=0.0, channel=channel)],
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
        for kind, manifest in (("recordings", recordings), ("supervisions", supervisions), ("cuts", cuts)):
            write_manifest(manifest, output_dir / f"{corpus}_{kind}_{split}.jsonl.gz")
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


def write_manifest(manifest: RecordingSet | SupervisionSet | CutSet, path: Path) -> None:
    """Write a lhotse manifest atomically: a killed preparation never leaves half a manifest."""
    remove_stale_temporaries(path.parent, recursive=False)
    with atomic_write(path, keep_suffixes=True) as tmp:
        manifest.to_file(tmp)
