"""Real speech for evaluation only: the voiced dialogs of the game Fish Fillets NG (Debian).

Sources (GPL-2, see docs/data.md): ``fillets-ng-data`` (the scripts and ~190 English clips),
``fillets-ng-data-nl`` (Dutch voice actors) and ``fillets-ng-data-cs`` (the Czech original
voices), unpacked from ``usr/share/games/fillets-ng/``:

- texts: ``script/<level>/[<prefix>]dialogs_<lang>.lua`` (:mod:`speechllm.prepare.lua_dialogs`):
  ``dialogId(id, font, english)`` then ``dialogStr(text in <lang>)``; ``dialogs_en.lua`` has
  the English only. The shared jokes live in ``script/share/<prefix>dialogs_<lang>.lua``;
- audio: ``sound/<level>/<lang>/<id>.ogg`` (Ogg Vorbis, 11-44 kHz, Dutch in stereo), the shared
  jokes under ``sound/share/<dir>/<lang>/`` (``SHARE_SOUNDS``: the game's ``dialogLoad`` calls).

A clip is matched to its text by level and dialog id. Every supervision has
``custom["split"] = "eval_only"``: never train on it. Dutch and Czech clips carry the English
subtitle of their line as translation (``tgt_lang="en"``): real nl→en and cs→en speech
translation; English clips are ASR only. The recordings keep the native rate; the cuts resample
to 16 kHz on load (multichannel clips are down-mixed by every loader).

Left out, and listed in ``fillets_skipped_test.tsv`` with the file:line and reason: lines with no
text or no audio, on-screen texts that are not speech (shell commands, ``mplayer x.ogg``, URLs),
ids repeated with different texts, audio without a dialog line, unreadable, empty or silent
audio, and (with ``max_duration``) long clips.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lhotse import Recording, SupervisionSegment

from speechllm.audio import SAMPLE_RATE
from speechllm.data.manifest_check import ManifestError
from speechllm.languages import EVALUATION_LANGUAGE_NAMES, LANGUAGE_NAMES
from speechllm.prepare.common import (
    SkipReport,
    make_supervision,
    parallel_map,
    probe_recordings,
    write_evaluation_set,
)
from speechllm.prepare.debian import fetch_debian_packages
from speechllm.prepare.lua_dialogs import DialogLine, read_dialog_file

logger = logging.getLogger(__name__)

CORPUS = "fillets"
SPLIT = "test"
EVAL_ONLY = {"split": "eval_only"}
LANGUAGES = ("nl", "cs", "en")
# The English package's ~190 clips are mostly sound effects and language-neutral voices (German and
# transliterated Russian in the elk level, noises): ~30 have a text, few of them English speech.
DEFAULT_LANGUAGES = ("nl", "cs")
PACKAGES = {"en": "fillets-ng-data", "nl": "fillets-ng-data-nl", "cs": "fillets-ng-data-cs"}
GAME_DIR = "usr/share/games/fillets-ng"
# script/share/<prefix>dialogs_<lang>.lua → sound/share/<dir>/<lang>/ (the game's dialogLoad calls).
SHARE_SOUNDS = {
    "black_": "blackjokes",
    "bore_": "borejokes",
    "border_": "border",
    "shout_": "border",
    "intro_": "intro",
}
# On-screen texts that nobody speaks: terminal commands in the linux level, a URL in the intro.
_NOT_SPOKEN = re.compile(r"\.ogg\b|://|\s>\s")
# A clip whose loudest sample is under -60 dBFS holds no speech.
SILENCE_PEAK = 1e-3

# (group, dialog id) → (file:line, dialog line); group = level, or share-<dir> for shared jokes.
Lines = dict[tuple[str, str], tuple[str, DialogLine]]


def packages(languages: Sequence[str]) -> list[str]:
    """Debian packages to fetch: the scripts (with the English voices) and each language's voices."""
    return [PACKAGES["en"]] + [PACKAGES[lang] for lang in languages if lang != "en"]


def download_fillets(cache_dir: str | Path, languages: Sequence[str] = DEFAULT_LANGUAGES) -> Path:
    """``apt-get download`` and unpack the packages into ``cache_dir`` (once); the unpacked root.

    A cache already holding ``root/`` and ``debs/<package>.unpacked`` markers is used offline.
    """
    return fetch_debian_packages(packages(check_fillets_languages(languages)), cache_dir)


def check_fillets_languages(languages: Sequence[str]) -> tuple[str, ...]:
    """The voiced languages asked for, in order, without repeats; a ValueError for others."""
    chosen = tuple(dict.fromkeys(languages))
    for lang in chosen:
        if lang not in LANGUAGES:
            raise ValueError(f"Fish Fillets NG has no voices in {lang!r}; voiced: {', '.join(LANGUAGES)}")
    if not chosen:
        raise ValueError("no language given")
    return chosen


def dialog_files(game: Path, lang: str) -> list[tuple[str, Path, Path]]:
    """``(group, dialogs_<lang>.lua, sound directory of the group)`` of every dialog file.

    Raises:
        ManifestError: ``game/script`` is missing (not an unpacked fillets-ng-data).
    """
    scripts = game / "script"
    if not scripts.is_dir():
        raise ManifestError(f"{scripts}: not found; is this the unpacked fillets-ng-data package?")
    files = []
    for path in sorted(scripts.glob(f"*/*dialogs_{lang}.lua")):
        level, prefix = path.parent.name, path.name[: -len(f"dialogs_{lang}.lua")]
        if level != "share":
            files.append((level, path, game / "sound" / level))
        elif prefix in SHARE_SOUNDS:
            files.append((f"share-{SHARE_SOUNDS[prefix]}", path, game / "sound/share" / SHARE_SOUNDS[prefix]))
        else:
            logger.warning("%s: no sound directory known for the prefix %r; left out", path, prefix)
    return files


def usable_text(text: str | None) -> str | None:
    """Why a line's text is not what its clip says, or None if it is usable."""
    if text is None or not text.strip():
        return "no text"
    if _NOT_SPOKEN.search(text):
        return "not speech (an on-screen command or address)"
    if not any(char.isalpha() for char in text):
        return "no words"
    return None


def clip_id(lang: str, group: str, dialog_id: str) -> str:
    """Stable cut id: ``fillets-<lang>-<level>-<dialog id>``."""
    return f"{CORPUS}-{lang}-{group}-{dialog_id}"


def read_lines(
    game: Path, lang: str, skips: SkipReport
) -> tuple[Lines, dict[str, Path], set[tuple[str, str]]]:
    """A language's dialog lines whose text is usable (spoken text: ``dialogStr``, or the English
    subtitle in ``dialogs_en.lua``), each group's sound directory, and the (group, id) of every
    line read; unusable and conflicting lines go to ``skips``."""
    usable: Lines = {}
    sounds: dict[str, Path] = {}
    known: set[tuple[str, str]] = set()
    conflicts: set[tuple[str, str]] = set()
    for group, path, sound_dir in dialog_files(game, lang):
        sounds[group] = sound_dir
        lines, computed = read_dialog_file(path)
        for where in computed:
            skips.add(where, "", "no text: dialog id computed in Lua (sound effects)")
        for line in lines:
            spoken, key = _spoken(lang, line), (group, line.dialog_id)
            known.add(key)
            reason = usable_text(spoken)
            if reason is not None:
                clip = sound_dir / lang / f"{line.dialog_id}.ogg"  # named where there is one
                skips.add(
                    line.where, str(clip) if clip.is_file() else line.dialog_id, f"{reason}: {spoken!r}"[:200]
                )
            elif key in usable and _spoken(lang, usable[key][1]) != spoken:
                conflicts.add(key)
                skips.add(line.where, line.dialog_id, "conflict: dialog id repeated with a different text")
            else:
                usable.setdefault(key, (line.where, line))
    for key in conflicts:
        skips.add(usable.pop(key)[0], key[1], "conflict: dialog id repeated with a different text")
    return usable, sounds, known


def _spoken(lang: str, line: DialogLine) -> str | None:
    return line.english if lang == "en" else line.text


def audio_entries(
    lang: str, usable: Lines, sounds: dict[str, Path], known: set[tuple[str, str]], skips: SkipReport
) -> list[tuple[str, Path, str]]:
    """``(clip id, ogg path, file:line)`` of each usable line with a clip; lines without a clip
    and clips of no dialog line at all go to ``skips``."""
    entries = []
    for (group, dialog_id), (where, _) in sorted(usable.items()):
        audio = sounds[group] / lang / f"{dialog_id}.ogg"
        if audio.is_file():
            entries.append((clip_id(lang, group, dialog_id), audio, where))
        else:
            skips.add(where, str(audio), "no audio: the line has no clip in this language")
    for group, sound_dir in sorted(sounds.items()):
        for audio in sorted((sound_dir / lang).glob("*.ogg")):
            if (group, audio.stem) not in known:
                skips.add(str(audio), str(audio), "no text: clip without a dialog line")
    return entries


def _peak(recording: Recording) -> float | str:
    """The loudest sample's magnitude, or why the audio could not be decoded."""
    try:
        return float(np.abs(recording.load_audio()).max(initial=0.0))
    except Exception as err:  # a clip whose header reads but whose data does not: report it
        return f"unreadable: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}"


def drop_silent(
    recordings: dict[str, Recording], where: dict[str, str], skips: SkipReport, num_jobs: int
) -> None:
    """Decode every clip once and remove the silent or undecodable ones from ``recordings``."""
    ids = sorted(recordings)
    peaks = parallel_map(
        _peak, [recordings[i] for i in ids], num_jobs=num_jobs, description="check for silence", unit="clips"
    )
    for recording_id, peak in zip(ids, peaks):
        if isinstance(peak, str) or peak < SILENCE_PEAK:
            path = recordings.pop(recording_id).sources[0].source
            reason = peak if isinstance(peak, str) else f"silent: peak {peak:.1e}"
            skips.add(where[recording_id], path, reason)


def build_supervisions(
    lang: str,
    usable: Lines,
    recordings: dict[str, Recording],
    max_duration: float | None,
    skips: SkipReport,
) -> list[SupervisionSegment]:
    """One eval-only supervision per kept clip; Dutch and Czech ones carry the English subtitle."""
    supervisions = []
    for (group, dialog_id), (where, line) in sorted(usable.items()):
        recording = recordings.get(clip_id(lang, group, dialog_id))
        if recording is None:
            continue
        if max_duration is not None and recording.duration > max_duration:
            skips.add(where, dialog_id, f"duration: {recording.duration:.2f} s > {max_duration} s")
            del recordings[recording.id]
            continue
        english = " ".join((line.english or "").split())
        translation = english if lang != "en" and usable_text(english) is None else None
        supervisions.append(
            make_supervision(
                recording.id,
                recording,
                " ".join((_spoken(lang, line) or "").split()),
                lang,
                translation=translation,
                tgt_lang="en" if translation is not None else None,
                speaker=f"{lang}-{line.font}",
                extra_custom=EVAL_ONLY,
            )
        )
    return supervisions


def prepare_fillets(
    output_dir: str | Path | None = None,
    languages: Sequence[str] = DEFAULT_LANGUAGES,
    cache_dir: str | Path | None = None,
    package_root: str | Path | None = None,
    max_duration: float | None = None,
    num_jobs: int = 1,
) -> dict[str, dict[str, Any]]:
    """Build the evaluation-only Fish Fillets NG set.

    Args:
        output_dir: where ``fillets_{recordings,supervisions,cuts}_test.jsonl.gz`` and
            ``fillets_skipped_test.tsv`` go (None: nothing written).
        languages: among nl, cs, en (en: the English package's few texted clips, mostly not
            English speech; see ``DEFAULT_LANGUAGES``).
        cache_dir: where the packages are downloaded and unpacked (default ``<output_dir>/debian``).
        package_root: an already unpacked root (with ``usr/share/games/fillets-ng``); no download.
        max_duration: leave out longer clips (Whisper sees at most 30 s).
        num_jobs: processes reading and decoding the clips.

    Returns:
        ``{"test": {"recordings", "supervisions", "cuts"}}``; cuts resample to 16 kHz on load.

    Raises:
        ManifestError: a malformed dialog file (naming its line), or no usable clip at all.
    """
    languages = check_fillets_languages(languages)
    if "en" in languages:
        logger.warning(
            "fillets en: the English package's clips are mostly sound effects and German or Russian "
            "lines (the elk level): check the texts before scoring English ASR on them"
        )
    if package_root is None:
        if cache_dir is None:
            if output_dir is None:
                raise ValueError("give cache_dir, package_root or output_dir (packages are fetched there)")
            cache_dir = Path(output_dir) / "debian"
        package_root = download_fillets(cache_dir, languages)
    game = Path(package_root) / GAME_DIR

    skips = SkipReport()
    supervisions: list[SupervisionSegment] = []
    all_recordings: dict[str, Recording] = {}
    for lang in languages:
        lang_skips = SkipReport()
        usable, sounds, known = read_lines(game, lang, lang_skips)
        entries = audio_entries(lang, usable, sounds, known, lang_skips)
        recordings = probe_recordings(entries, lang_skips, num_jobs)
        drop_silent(recordings, {rid: where for rid, _, where in entries}, lang_skips, num_jobs)
        found = build_supervisions(lang, usable, recordings, max_duration, lang_skips)
        skips.entries += lang_skips.entries
        supervisions += found
        all_recordings.update(recordings)
        logger.info(
            "fillets %s (%s): %d clips, %.2f h, %d skipped",
            lang,
            {**LANGUAGE_NAMES, **EVALUATION_LANGUAGE_NAMES}[lang],
            len(found),
            sum(s.duration for s in found) / 3600,
            len(lang_skips.entries),
        )
    empty = f"{game}: no usable clips for {list(languages)}"
    recordings = list(all_recordings.values())
    return {
        SPLIT: write_evaluation_set(recordings, supervisions, skips, output_dir, CORPUS, SAMPLE_RATE, empty)
    }
