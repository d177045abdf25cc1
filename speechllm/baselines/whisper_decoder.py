"""Whisper's own decoder on a test manifest: the anchor a speech-LLM's WER is compared with.

The speech encoder we connect to an LLM comes with a decoder trained for it. Greedy-decoding a
test set with that decoder (on the 30 s padded input Whisper was trained on) shows what the
encoder's representation already supports; a trained adapter is then judged against it.

:func:`evaluate_whisper` writes a run directory in the ``speechllm evaluate`` format
(:mod:`speechllm.rundir`): ``run.json`` with ``sfm="whisper"``, ``llm="whisper-decoder"``,
``adapter="none"``; ``hyps_asr_<lang>.tsv``; ``metrics.json`` (``asr_wer_<lang>``).

Command line: ``speechllm whisper-baseline --manifest M --out DIR``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from speechllm.audio import SAMPLE_RATE
from speechllm.errors import UsageError
from speechllm.evaluation.decoding import DecodedSentence, group_decoded
from speechllm.evaluation.scoring import score_groups, write_run_dir
from speechllm.rundir import NO_ADAPTER, RunInfo

log = logging.getLogger(__name__)

WINDOW_SAMPLES = 30 * SAMPLE_RATE  # Whisper's decoder was trained on encoder outputs of 30 s windows
RUN_NAMES = {"sfm": "whisper", "llm": "whisper-decoder", "adapter": NO_ADAPTER}


class WhisperDecoderBaseline:
    """A Whisper model (encoder + its decoder) that transcribes 16 kHz audio greedily.

    Args:
        path: a preset (``whisper-tiny.en``), hub name or local directory of a
            ``WhisperForConditionalGeneration``.
        device: where it runs.
        max_new_tokens: greedy decoding limit.
    """

    def __init__(self, path: str = "whisper-tiny.en", device: str = "cpu", max_new_tokens: int = 200) -> None:
        from transformers import WhisperForConditionalGeneration, WhisperTokenizer

        from speechllm.encoders.features import WhisperLogMel
        from speechllm.presets import resolve_model_path

        local = str(resolve_model_path(path))
        self.path = path
        self.device = torch.device(device)
        self.model = WhisperForConditionalGeneration.from_pretrained(local).to(self.device).eval()
        self.tokenizer = WhisperTokenizer.from_pretrained(local)
        self.features = WhisperLogMel(num_mel_bins=self.model.config.num_mel_bins).to(self.device)
        self.max_new_tokens = max_new_tokens

    @torch.no_grad()
    def transcribe(self, clips: Sequence[torch.Tensor]) -> list[str]:
        """Transcribe mono 16 kHz clips (each (S,), at most 30 s). Returns one string per clip."""
        if not clips:
            return []
        too_long = [i for i, clip in enumerate(clips) if clip.shape[-1] > WINDOW_SAMPLES]
        if too_long:
            raise UsageError(f"clip(s) {too_long} are longer than Whisper's 30 s window")
        # Zero-padded to 30 s with full lengths: exactly the features Whisper was trained on.
        audio = torch.zeros(len(clips), WINDOW_SAMPLES, device=self.device)
        for row, clip in enumerate(clips):
            audio[row, : clip.shape[-1]] = clip.to(self.device)
        lens = torch.full((len(clips),), WINDOW_SAMPLES, device=self.device)
        features, _ = self.features(audio, lens)  # (B, n_mels, 3000)
        ids = self.model.generate(features, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1)
        return [text.strip() for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]


def decode_manifest(
    baseline: WhisperDecoderBaseline, manifest: str | os.PathLike[str], batch_size: int = 8
) -> tuple[list[DecodedSentence], int]:
    """Transcribe every cut of a manifest; returns (decoded sentences, cuts skipped for bad audio).

    References are the supervision texts; the language is the supervision's (Whisper tiny.en is
    English-only, so give it English manifests).
    """
    from lhotse import load_manifest_lazy

    from speechllm.audio import load_mono_16k

    cuts = load_manifest_lazy(manifest)
    if cuts is None:
        raise UsageError(f"{manifest}: not a lhotse manifest")
    decoded: list[DecodedSentence] = []
    skipped = 0
    pending: list[tuple[Any, torch.Tensor]] = []

    def flush() -> None:
        texts = baseline.transcribe([audio for _, audio in pending])
        for (cut, _), text in zip(pending, texts):
            sup = cut.supervisions[0]
            language = sup.language or "en"
            decoded.append(DecodedSentence("asr", language, None, cut.id, sup.text, text, sup.text))
        pending.clear()

    for cut in cuts:
        if not cut.supervisions:
            raise UsageError(f"{manifest}: cut {cut.id!r} has no supervision (no reference text)")
        audio, reason = load_mono_16k(cut)
        if audio is None:
            log.warning("%s: skipping cut %s: %s", manifest, cut.id, reason)
            skipped += 1
            continue
        pending.append((cut, audio))
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    return decoded, skipped


def evaluate_whisper(
    manifests: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | Path,
    path: str = "whisper-tiny.en",
    batch_size: int = 8,
    max_new_tokens: int = 200,
    device: str = "cpu",
    trust_manifest_sources: bool = False,
) -> dict[str, float]:
    """Greedy-decode ``manifests`` with Whisper's own decoder, score WER, write a run directory.

    The manifests are checked before Whisper loads (a recording source that runs a command or
    fetches a URL is refused unless ``trust_manifest_sources``).

    Returns:
        The run directory's ``metrics.json`` content (``asr_wer_<lang>`` in percent, ...).
    """
    manifest_paths = [manifests] if isinstance(manifests, (str, os.PathLike)) else list(manifests)
    if not manifest_paths:
        raise UsageError("no manifests to evaluate")
    from speechllm.data.manifest_check import check_manifest_path

    for manifest in manifest_paths:
        check_manifest_path(manifest, trust_manifest_sources)
    baseline = WhisperDecoderBaseline(path, device=device, max_new_tokens=max_new_tokens)
    started = time.perf_counter()
    decoded: list[DecodedSentence] = []
    skipped = 0
    for manifest in manifest_paths:
        more, bad = decode_manifest(baseline, manifest, batch_size)
        decoded += more
        skipped += bad
    if not decoded:
        raise UsageError(f"no usable cuts in {', '.join(map(str, manifest_paths))}")
    scored = score_groups(group_decoded(decoded, where=", ".join(map(str, manifest_paths))))
    settings = {
        "model_dir": None,
        "whisper_model": path,
        "asr_manifests": [str(p) for p in manifest_paths],
        "asr_skipped_cuts": skipped,
        "max_new_tokens": max_new_tokens,
        "decode_seconds": round(time.perf_counter() - started, 1),
    }
    return write_run_dir(out_dir, RunInfo(**RUN_NAMES, tasks=["asr"], extra=settings), scored)
