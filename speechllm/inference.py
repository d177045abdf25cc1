"""Transcribe or translate audio files with a trained model directory.

Each file gets its own result: a file that cannot be read or decoded is reported by name and the
others still come out, in input order.
"""

from __future__ import annotations

import glob
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from lhotse import Recording

from speechllm.audio import SAMPLE_RATE, load_mono_16k
from speechllm.config import import_user_modules
from speechllm.deprecations import decoder_name
from speechllm.errors import AudioError, SpeechLLMError, UsageError
from speechllm.languages import DECODERS
from speechllm.masking import pad_audio
from speechllm.model import SpeechLLM
from speechllm.model_io import Generation
from speechllm.precision import decode_precision, resolve_device
from speechllm.search import check_joint_ctc_task

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".sph")


@dataclass(frozen=True)
class Transcript:
    """One file's result. ``text`` is None and ``error`` says why when the file failed.

    ``decode_seconds`` is the file's share of its batch's decoding time. ``capped``: decoding
    stopped at the file's token limit, not at a stop token (the text may be cut short or runaway).
    """

    path: str
    text: str | None
    seconds: float = 0.0
    decode_seconds: float = 0.0
    error: str | None = None
    capped: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The JSONL row: path, text, seconds, decode_seconds (or error)."""
        row = asdict(self)
        del row["capped"]
        return {key: value for key, value in row.items() if value is not None}


class _ChunkProgress:
    """Pass clip completions of one chunk of files on to ``on_done``, at most the chunk's size
    (a chunk decoded again file by file after an error would count twice)."""

    def __init__(self, on_done: Callable[[int], None] | None, size: int) -> None:
        self.on_done, self.size, self.done = on_done, size, 0

    def __call__(self, n: int) -> None:
        n = min(n, self.size - self.done)
        if n > 0 and self.on_done is not None:
            self.on_done(n)
        self.done += max(n, 0)

    def finish(self) -> None:
        """The files not reported yet (those that failed to load or decode) are done too."""
        self(self.size - self.done)


def load_audio_file(path: str | Path) -> torch.Tensor:
    """Any file lhotse/soundfile reads → mono 16 kHz float32 (S,).

    Raises:
        AudioError: naming the file, when it is unreadable, empty or holds NaN/inf samples.
    """
    try:
        cut = Recording.from_file(path).to_cut()
    except Exception as err:  # every backend failing is one "unreadable" case
        first = " ".join(str(err).split())[:200] or type(err).__name__
        raise AudioError(f"{path}: cannot read audio ({type(err).__name__}: {first})") from err
    samples, problem = load_mono_16k(cut)  # the checks training and evaluation apply
    if samples is None:
        raise AudioError(f"{path}: {problem}")
    return samples


def expand_audio_paths(specs: Sequence[str | Path]) -> tuple[list[str], list[Transcript]]:
    """Files, directories (searched recursively for audio files) and globs → files, in order.

    Returns:
        ``(files, failures)``: a spec that names nothing becomes a failed :class:`Transcript`.
    """
    files: list[str] = []
    failures: list[Transcript] = []
    for spec in map(str, specs):
        path = Path(spec)
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
            reason = f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under the directory"
        elif path.is_file():
            found, reason = [spec], ""
        elif glob.has_magic(spec):
            found, reason = sorted(glob.glob(spec, recursive=True)), "the pattern matches no file"
        else:
            found, reason = [], "file not found"
        if not found:
            failures.append(Transcript(spec, None, error=reason))
        files += [f for f in found if Path(f).is_file()]
    return list(dict.fromkeys(files)), failures


def transcribe_files(
    model_dir: str | Path,
    paths: Sequence[str | Path],
    task: str = "asr",
    src_lang: str = "en",
    tgt_lang: str | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 200,
    device: str = "auto",
    on_done: Callable[[int], None] | None = None,
    trust_imports: bool = False,
    decoding: dict[str, Any] | None = None,
    precision: str = "auto",
    decoder: str = "llm",
    imports: Sequence[str] = (),
) -> Iterator[Transcript]:
    """Yield one :class:`Transcript` per path, in input order, decoding ``batch_size`` files at a time.

    A file that cannot be read, or that the model refuses (too long for the encoder, say), fails
    alone: its batch is decoded again file by file. ``on_done(n)`` is called as files finish
    (each as its decoding stops, for a progress bar). ``trust_imports``: import the modules the
    model directory lists (see :func:`~speechllm.model_dir.read_model_dir`). ``decoding``: more
    ``SpeechLLM.generate_detailed`` options (beam search, the repetition guard,
    ``max_new_tokens_per_second``, ``chunk_seconds`` for audio past the encoder's window).
    ``precision``: ``auto`` | ``bf16`` | ``32`` (:func:`~speechllm.precision.decode_precision`).
    When the last file is out, a warning says how many stopped at their token limit.
    ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N``. ``decoder``: ``llm``,
    or ``prealign`` (the pre-aligned adapter read by its head, no LLM; ASR). ``imports``: modules
    to import first, registering user components (trusted, as the caller named them).

    The settings and the files are checked before the model loads: when no file exists, the
    model is not loaded at all.
    """
    decoder = decoder_name(decoder)
    if batch_size < 1 or max_new_tokens < 1:
        raise UsageError(
            f"batch_size and max_new_tokens must be at least 1, got {batch_size} and {max_new_tokens}"
        )
    if decoder not in DECODERS or (decoder == "prealign" and task != "asr"):
        raise UsageError(f"decoder {decoder!r} with task {task!r}; valid: llm, or prealign for asr")
    check_joint_ctc_task(decoding, task)
    paths = [str(p) for p in paths]
    if not any(Path(p).is_file() for p in paths):  # nothing to decode: no model to load
        for path in paths:
            yield Transcript(path, None, error="file not found")
        return
    import_user_modules(list(imports))
    trusted: bool | list[str] = True if trust_imports else list(imports)
    run_device = resolve_device(device)
    model = SpeechLLM.from_pretrained(model_dir, trust_imports=trusted).to(run_device).eval()
    if decoder == "prealign" and model.prealign is None:
        raise UsageError(
            f"{model_dir}: decoder 'prealign' (--decoder prealign) needs a pre-aligned model (model.prealign)"
        )
    model, precision_context, _ = decode_precision(model, run_device, precision)

    shown = _ChunkProgress(on_done, 0)

    def decode(audio: list[torch.Tensor]) -> tuple[Generation, float]:
        started = time.perf_counter()
        padded, lens = pad_audio(audio)
        with torch.inference_mode(), precision_context:
            decoded = model.generate_detailed(
                padded.to(run_device),
                lens.to(run_device),
                task=task,
                src_lang=src_lang,
                tgt_lang=tgt_lang,
                max_new_tokens=max_new_tokens,
                chunk_batch_size=batch_size,  # a long file's chunks: batch_size at a time
                on_clip_done=shown,
                decoder=decoder,
                **(decoding or {}),
            )
        return decoded, time.perf_counter() - started

    capped = 0
    for start in range(0, len(paths), batch_size):
        chunk = [str(p) for p in paths[start : start + batch_size]]
        shown = _ChunkProgress(on_done, len(chunk))
        for transcript in _transcribe_chunk(chunk, decode):
            capped += transcript.capped
            yield transcript
        shown.finish()
    if capped:
        log.warning(
            "%d of %d files stopped at their token limit, not at a stop token (a model that does not "
            "stop, or max_new_tokens / max_new_tokens_per_second set too low)",
            capped,
            len(paths),
        )


def _transcribe_chunk(
    chunk: list[str], decode: Callable[[list[torch.Tensor]], tuple[Generation, float]]
) -> Iterator[Transcript]:
    loaded: dict[str, torch.Tensor] = {}
    failed: dict[str, str] = {}
    for path in chunk:
        if not Path(path).exists():
            failed[path] = "file not found"
            continue
        try:
            loaded[path] = load_audio_file(path)
        except AudioError as err:
            failed[path] = str(err).removeprefix(f"{path}: ")
    results: dict[str, Transcript] = {}
    try:
        decoded, seconds = decode(list(loaded.values())) if loaded else (Generation.unlimited([]), 0.0)
        share = seconds / max(1, len(loaded))
        for (path, audio), text, capped in zip(loaded.items(), decoded.texts, decoded.capped):
            results[path] = Transcript(path, text, audio.numel() / SAMPLE_RATE, share, capped=capped)
    except (SpeechLLMError, ValueError) as batch_error:  # find the file the model refuses
        if len(loaded) == 1:
            failed[next(iter(loaded))] = " ".join(str(batch_error).split())
        else:
            for path, audio in loaded.items():
                results[path] = _transcribe_one(path, audio, decode)
    for path in chunk:
        yield results.get(path) or Transcript(path, None, error=failed.get(path, "not decoded"))


def _transcribe_one(
    path: str, audio: torch.Tensor, decode: Callable[[list[torch.Tensor]], tuple[Generation, float]]
) -> Transcript:
    seconds = audio.numel() / SAMPLE_RATE
    try:
        decoded, decode_seconds = decode([audio])
    except (SpeechLLMError, ValueError) as err:
        return Transcript(path, None, seconds, error=" ".join(str(err).split()))
    return Transcript(path, decoded.texts[0], seconds, decode_seconds, capped=decoded.capped[0])
