"""Whisper's own decoder on a test manifest: the anchor a speech-LLM's WER is compared with.

The speech encoder we connect to an LLM comes with a decoder trained for it. Greedy-decoding a
test set with that decoder (on the 30 s padded input Whisper was trained on) shows what the
encoder's representation already supports; a trained adapter is then judged against it.

ASR in the clip's language (a multilingual checkpoint such as ``whisper-base`` is told the
supervision's language; an English-only one, ``whisper-tiny.en``, takes English only) and, with a
multilingual checkpoint, Whisper's ``translate`` task for X → English speech translation.

:func:`evaluate_whisper` writes a run directory in the ``speechllm evaluate`` format
(:mod:`speechllm.rundir`): ``run.json`` with ``sfm="whisper"``, ``llm="whisper-decoder"``,
``adapter="none"``; ``hyps_asr_<lang>.tsv`` or ``bleu_st_<src>-en.tsv``; ``metrics.json``
(``asr_wer_<lang>``, ``st_bleu_<src>-en``).

It decodes at the precision our models decode at (``precision``: ``auto`` is bf16 autocast where
the device runs bf16 natively, else float32; :func:`speechllm.precision.decode_precision`), so the
anchor reads the encoder as the trained model does. Measured on an AMD EPYC with avx512_bf16
(docs/demo.md): 1.3× faster than float32, the same WER on real English.

Command line: ``speechllm whisper-baseline --manifest M --out DIR [--model whisper-base] [--task st]
[--precision auto|bf16|32]``, or ``--run TASK MANIFEST OUT`` repeated: several run directories with
one model load (:func:`evaluate_whisper_runs`; a clip several runs decode is encoded once).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from speechllm.audio import SAMPLE_RATE
from speechllm.errors import UsageError
from speechllm.evaluation.decoding import DecodedSentence, group_decoded
from speechllm.evaluation.scoring import score_groups, write_run_dir
from speechllm.precision import decode_precision
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
        precision: ``auto`` | ``bf16`` | ``32``, as our models decode (:func:`decode_precision`).
    """

    def __init__(
        self,
        path: str = "whisper-tiny.en",
        device: str = "cpu",
        max_new_tokens: int = 200,
        precision: str = "auto",
    ) -> None:
        from transformers import WhisperForConditionalGeneration, WhisperTokenizer

        from speechllm.encoders.features import WhisperLogMel
        from speechllm.presets import resolve_model_path

        local = str(resolve_model_path(path))
        self.path = path
        self.device = torch.device(device)
        model = WhisperForConditionalGeneration.from_pretrained(local).to(self.device).eval()
        self.model, self.autocast, self.precision = decode_precision(model, self.device, precision)
        self.tokenizer = WhisperTokenizer.from_pretrained(local)
        self.features = WhisperLogMel(num_mel_bins=self.model.config.num_mel_bins).to(self.device)
        self.max_new_tokens = max_new_tokens
        generation = self.model.generation_config
        self.multilingual = bool(getattr(generation, "is_multilingual", False))
        self.languages = {token.strip("<|>") for token in (getattr(generation, "lang_to_id", None) or {})}

    def check_language(self, language: str, task: str = "transcribe") -> None:
        """Refuse what this checkpoint cannot do, naming the checkpoint and what would."""
        if not self.multilingual and (language != "en" or task != "transcribe"):
            raise UsageError(
                f"{self.path} is English-only: it cannot {task} {language!r} speech; "
                "use a multilingual checkpoint (--model whisper-base)"
            )
        if self.multilingual and language not in self.languages:
            raise UsageError(f"{self.path} knows no language {language!r}")

    @torch.no_grad()
    def encode(self, clips: Sequence[torch.Tensor]) -> torch.Tensor:
        """Encoder states of mono 16 kHz clips (each (S,), at most 30 s), zero-padded to Whisper's
        30 s window as it was trained. Returns (B, 1500, d_model)."""
        too_long = [i for i, clip in enumerate(clips) if clip.shape[-1] > WINDOW_SAMPLES]
        if too_long:
            raise UsageError(f"clip(s) {too_long} are longer than Whisper's 30 s window")
        audio = torch.zeros(len(clips), WINDOW_SAMPLES, device=self.device)
        for row, clip in enumerate(clips):
            audio[row, : clip.shape[-1]] = clip.to(self.device)
        lens = torch.full((len(clips),), WINDOW_SAMPLES, device=self.device)
        features, _ = self.features(audio, lens)  # (B, n_mels, 3000)
        with self.autocast:
            return self.model.get_encoder()(features).last_hidden_state

    @torch.no_grad()
    def decode(self, encoded: torch.Tensor, language: str = "en", task: str = "transcribe") -> list[str]:
        """Greedy text of encoder states (B, 1500, d_model) of speech in ``language``: ``transcribe``
        (in that language) or ``translate`` (into English). Returns one string per clip."""
        from transformers.modeling_outputs import BaseModelOutput

        self.check_language(language, task)
        spoken = {"language": language, "task": task} if self.multilingual else {}
        with self.autocast:
            ids = self.model.generate(
                encoder_outputs=BaseModelOutput(last_hidden_state=encoded),
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                **spoken,
            )
        return [text.strip() for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def transcribe(
        self, clips: Sequence[torch.Tensor], language: str = "en", task: str = "transcribe"
    ) -> list[str]:
        """Decode mono 16 kHz clips (each (S,), at most 30 s) spoken in ``language``: ``transcribe``
        (in that language) or ``translate`` (into English). Returns one string per clip."""
        if not clips:
            return []
        self.check_language(language, task)
        return self.decode(self.encode(clips), language, task)


class SharedEncoding:
    """Encoder states of the clips that several runs decode (the demo's es/fr/it prompts, transcribed
    and translated), each kept from its first encoding to its last use: a clip is encoded once.

    Args:
        uses: cut id → how many runs decode it; only ids used more than once are kept. A kept state
            is also keyed by a digest of the audio, so a cut id that names other audio in another
            manifest is encoded again, never mixed up.
    """

    def __init__(self, uses: Counter[str]) -> None:
        self.left = {cut_id: n for cut_id, n in uses.items() if n > 1}
        self.states: dict[str, tuple[str, torch.Tensor]] = {}  # cut id → (audio digest, state)

    def encode(
        self, baseline: WhisperDecoderBaseline, cut_ids: Sequence[str], clips: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """(B, 1500, d_model) states of ``clips``, the kept ones reused and the others encoded together."""
        digests = [_digest(clip) for clip in clips]
        kept = [self.states.get(cut_id, ("", None)) for cut_id in cut_ids]
        missing = [i for i, (digest, (seen, _)) in enumerate(zip(digests, kept)) if seen != digest]
        fresh = dict(zip(missing, baseline.encode([clips[i] for i in missing]))) if missing else {}
        rows = []
        for i, (cut_id, digest) in enumerate(zip(cut_ids, digests)):
            row = fresh[i] if i in fresh else kept[i][1]
            rows.append(row)
            if cut_id in self.left:
                self.left[cut_id] -= 1
                if self.left[cut_id] > 0:
                    self.states[cut_id] = (digest, row)
                else:
                    self.states.pop(cut_id, None)
        return torch.stack(rows)


def _digest(clip: torch.Tensor) -> str:
    return hashlib.blake2b(clip.detach().cpu().contiguous().numpy().tobytes(), digest_size=16).hexdigest()


def decode_manifest(
    baseline: WhisperDecoderBaseline,
    manifest: str | os.PathLike[str],
    batch_size: int = 8,
    task: str = "asr",
    shared: SharedEncoding | None = None,
) -> tuple[list[DecodedSentence], int]:
    """Decode every cut of a manifest; returns (decoded sentences, cuts skipped for bad audio).
    ``shared``: encoder states kept for the clips other runs decode too.

    ``asr``: the reference is the supervision's text, in its language. ``st``: Whisper's
    ``translate`` task; the reference is the supervision's English translation
    (``custom["translation"]``, ``custom["tgt_lang"] == "en"``). A batch holds one language.
    """
    from lhotse import load_manifest_lazy

    from speechllm.audio import load_mono_16k

    cuts = load_manifest_lazy(manifest)
    if cuts is None:
        raise UsageError(f"{manifest}: not a lhotse manifest")
    decoded: list[DecodedSentence] = []
    skipped = 0
    pending: dict[str, list[tuple[Any, torch.Tensor]]] = {}  # language → cuts waiting for a batch
    whisper_task = {"asr": "transcribe", "st": "translate"}[task]

    def flush(language: str) -> None:
        batch = pending.pop(language)
        clips = [audio for _, audio in batch]
        if shared is None:
            texts = baseline.transcribe(clips, language, whisper_task)
        else:
            encoded = shared.encode(baseline, [cut.id for cut, _ in batch], clips)
            texts = baseline.decode(encoded, language, whisper_task)
        for (cut, _), text in zip(batch, texts):
            sup = cut.supervisions[0]
            if task == "asr":
                decoded.append(DecodedSentence("asr", language, None, cut.id, sup.text, text, sup.text))
            else:
                reference = sup.custom["translation"]
                decoded.append(DecodedSentence("st", language, "en", cut.id, reference, text, sup.text))

    for cut in cuts:
        if not cut.supervisions:
            raise UsageError(f"{manifest}: cut {cut.id!r} has no supervision (no reference text)")
        sup = cut.supervisions[0]
        language = sup.language or "en"
        if task == "st":
            custom = sup.custom or {}
            if not custom.get("translation") or custom.get("tgt_lang", "en") != "en":
                raise UsageError(
                    f"{manifest}: cut {cut.id!r} has no English translation "
                    "(Whisper translates into English only)"
                )
        baseline.check_language(language, whisper_task)  # before any audio is read
        audio, reason = load_mono_16k(cut)
        if audio is None:
            log.warning("%s: skipping cut %s: %s", manifest, cut.id, reason)
            skipped += 1
            continue
        pending.setdefault(language, []).append((cut, audio))
        if len(pending[language]) == batch_size:
            flush(language)
    for language in list(pending):
        flush(language)
    return decoded, skipped


@dataclass(frozen=True)
class WhisperRun:
    """One scored run directory: ``task`` (``asr`` or ``st``) on ``manifests``, written to ``out_dir``."""

    task: str
    manifests: tuple[str | os.PathLike[str], ...]
    out_dir: str | Path


def evaluate_whisper(
    manifests: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | Path,
    path: str = "whisper-tiny.en",
    batch_size: int = 8,
    max_new_tokens: int = 200,
    device: str = "cpu",
    trust_manifest_sources: bool = False,
    task: str = "asr",
    precision: str = "auto",
) -> dict[str, float]:
    """Greedy-decode ``manifests`` with Whisper's own decoder, score them (``asr``: WER; ``st``:
    Whisper's ``translate`` task into English, BLEU and chrF), write a run directory.

    The manifests are checked before Whisper loads (a recording source that runs a command or
    fetches a URL is refused unless ``trust_manifest_sources``). ``precision``: ``auto`` (bf16
    autocast where the device runs bf16 natively, else float32), ``bf16`` or ``32``.

    Returns:
        The run directory's ``metrics.json`` content (``asr_wer_<lang>`` in percent, ...).
    """
    paths = (manifests,) if isinstance(manifests, (str, os.PathLike)) else tuple(manifests)
    (metrics,) = evaluate_whisper_runs(
        [WhisperRun(task, paths, out_dir)],
        path,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        device=device,
        trust_manifest_sources=trust_manifest_sources,
        precision=precision,
    )
    return metrics


def evaluate_whisper_runs(
    runs: Sequence[WhisperRun],
    path: str = "whisper-tiny.en",
    batch_size: int = 8,
    max_new_tokens: int = 200,
    device: str = "cpu",
    trust_manifest_sources: bool = False,
    precision: str = "auto",
) -> list[dict[str, float]]:
    """:func:`evaluate_whisper` for several runs with one model: each run writes its own run
    directory, and a clip that several runs decode (the same cut transcribed and translated) is
    encoded once (:class:`SharedEncoding`). Every manifest is checked before Whisper loads.

    Returns:
        each run's ``metrics.json`` content, in order.
    """
    from lhotse import load_manifest_lazy

    from speechllm.data.manifest_check import check_manifest_path

    if not runs:
        raise UsageError("no runs to evaluate")
    for run in runs:
        if run.task not in ("asr", "st"):
            raise UsageError(f"whisper baseline: unknown task {run.task!r}; valid: asr, st")
        if not run.manifests:
            raise UsageError(f"{run.out_dir}: no manifests to evaluate")
        for manifest in run.manifests:
            check_manifest_path(manifest, trust_manifest_sources)
    shared = None
    if len(runs) > 1:  # one run shares nothing: its manifests are read once, while decoding
        uses: Counter[str] = Counter()
        for run in runs:
            for manifest in run.manifests:
                uses.update({cut.id for cut in load_manifest_lazy(manifest) or ()})
        shared = SharedEncoding(uses)
    baseline = WhisperDecoderBaseline(path, device=device, max_new_tokens=max_new_tokens, precision=precision)
    return [_evaluate_run(baseline, run, batch_size, shared) for run in runs]


def _evaluate_run(
    baseline: WhisperDecoderBaseline, run: WhisperRun, batch_size: int, shared: SharedEncoding | None
) -> dict[str, float]:
    started = time.perf_counter()
    decoded: list[DecodedSentence] = []
    skipped = 0
    for manifest in run.manifests:
        more, bad = decode_manifest(baseline, manifest, batch_size, run.task, shared)
        decoded += more
        skipped += bad
    where = ", ".join(map(str, run.manifests))
    if not decoded:
        raise UsageError(f"no usable cuts in {where}")
    scored = score_groups(group_decoded(decoded, where=where))
    settings = {
        "model_dir": None,
        "whisper_model": baseline.path,
        f"{run.task}_manifests": [str(p) for p in run.manifests],
        f"{run.task}_skipped_cuts": skipped,
        "max_new_tokens": baseline.max_new_tokens,
        "precision": baseline.precision,
        "decode_seconds": round(time.perf_counter() - started, 1),
    }
    return write_run_dir(run.out_dir, RunInfo(**RUN_NAMES, tasks=[run.task], extra=settings), scored)
