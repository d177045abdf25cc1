""":func:`evaluate`: a trained model's test manifests → greedy decoding → scores → a run directory.

The steps are the package's modules: :mod:`~speechllm.evaluation.decoding` (batches → sentences,
the adapter's length tally), :mod:`~speechllm.evaluation.scoring` (sentences → scores) and
:mod:`speechllm.rundir` (the files). This module loads the model and the data and ties them up.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from speechllm.data.manifest_check import check_manifest_path
from speechllm.deprecations import decoder_name
from speechllm.errors import UsageError
from speechllm.evaluation.decoding import (
    DecodedSentence,
    LengthTally,
    count_adapter_lengths,
    decode_batch,
    group_decoded,
    warn_capped,
)
from speechllm.evaluation.distributed import drop_padding_copies, gather_shards, launch, rank_and_world_size
from speechllm.evaluation.listening import ClipSample, checked_listening
from speechllm.evaluation.scoring import run_names, score_groups, write_run_dir
from speechllm.evaluation.speed import DecodeClock
from speechllm.languages import TASKS
from speechllm.metrics.listening import DEFAULT_LISTENING_CLIPS
from speechllm.metrics.normalizers import PAPER, check_normalizer
from speechllm.precision import decode_precision, resolve_device
from speechllm.progress import progress
from speechllm.rundir import Compression, RunInfo, check_run_dir
from speechllm.search import check_joint_ctc_task

log = logging.getLogger(__name__)


def _manifest_list(
    manifests: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    task: str,
    batch_size: int | None,
    max_duration: float | None,
) -> list[str | os.PathLike[str]]:
    """The manifests as a list, after checking the settings (before anything loads)."""
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    if batch_size is None and max_duration is None:
        raise UsageError("give batch_size, max_duration or both")
    for name, value in (("batch_size", batch_size), ("max_duration", max_duration)):
        if value is not None and value <= 0:
            raise UsageError(f"{name} must be positive, got {value}")
    paths = [manifests] if isinstance(manifests, (str, os.PathLike)) else list(manifests)
    if not paths:
        raise UsageError("no manifests to evaluate")
    return paths


def _load_model(model: Any, imports: Sequence[str], trust_imports: bool) -> tuple[Any, Path | None]:
    """(the SpeechLLM, its directory or None when ``model`` already is one)."""
    from speechllm.config import import_user_modules
    from speechllm.model import SpeechLLM

    if isinstance(model, SpeechLLM):
        return model, None
    # Registers the built-in components, and the user's (a custom adapter's module).
    import_user_modules(list(imports))
    # Modules the caller named are trusted; others the model directory lists need trust_imports.
    trusted: bool | list[str] = True if trust_imports else list(imports)
    return SpeechLLM.from_pretrained(Path(model), trust_imports=trusted), Path(model)


def _comet_scorer(comet_model: str | os.PathLike[str] | None, batch_size: int, device: torch.device) -> Any:
    """A COMET scorer, loaded before decoding so that a bad model path fails fast."""
    if comet_model is None:
        return None
    from speechllm.metrics.comet import CometScorer

    return CometScorer(comet_model, batch_size=batch_size, device=device)


def _decode_manifests(
    model: Any,
    paths: Sequence[str | os.PathLike[str]],
    task: str,
    batching: dict[str, Any],
    decoding: dict[str, Any],
    decoder: str,
    device: torch.device,
    trust_sources: bool = False,
    clock: DecodeClock | None = None,
    sample: ClipSample | None = None,
) -> tuple[list[DecodedSentence], list[list[str]]]:
    """Decode this rank's share of the usable cuts of ``paths``; returns (decoded sentences, the
    cut ids of each manifest). ``clock`` times the loop and counts the audio; ``sample`` keeps
    clips for the listening check.

    Each manifest is read by the data module's own test loader (:func:`evaluation_data`), the one
    that training's test split uses. ``batching``: ``max_duration``, ``max_cuts`` and
    ``num_workers``; ``decoding``: ``max_new_tokens`` and the other ``model.generate`` options.
    """
    decoded: list[DecodedSentence] = []
    manifest_ids: list[list[str]] = []
    for path in paths:
        data = evaluation_data(model, path, task, batching, trust_sources)
        # manifests only, no audio
        durations = {cut.id: float(cut.duration) for cut in data.cuts(data.config.test, train=False)}
        manifest_ids.append(list(durations))
        in_manifest = len(durations)
        clock = clock if clock is not None else DecodeClock(device)
        # A bar that moves as each clip finishes (a terminal), or a summary line (a pipe).
        with progress(f"evaluate {Path(path).name}", in_manifest, unit="cuts") as advance, clock:
            for batch in data.test_dataloader():
                if batch is None or not batch.cut_ids:  # every cut of the batch was unusable
                    continue
                batch = batch.to(device)
                done = decode_batch(
                    model, batch, task=task, decoder=decoder, on_clip_done=advance, **decoding
                )
                seconds = sum(durations.get(sentence.cut_id, 0.0) for sentence in done)
                clock.add(seconds, len(done), sum(sentence.num_tokens for sentence in done))
                if sample is not None:
                    sample.add(batch, done)
                decoded += done
    return decoded, manifest_ids


def _skipped(
    decoded: list[DecodedSentence], manifest_ids: list[list[str]], paths: Sequence[Any]
) -> tuple[list[DecodedSentence], list[str], int]:
    """(the sentences of the manifests' cuts, each once; ids of the cuts that did not come back;
    cuts in all), over every rank's sentences.

    Unusable cuts (audio, no translation, unknown language) are skipped by the dataset (in its
    worker processes, so its own counter is not visible here): name what did not come back.
    """
    every_id = {cut_id for ids in manifest_ids for cut_id in ids}
    decoded = drop_padding_copies(decoded, every_id)
    came_back = {sentence.cut_id for sentence in decoded}
    skipped = [cut_id for ids in manifest_ids for cut_id in ids if cut_id not in came_back]
    if skipped:
        log.warning("%d cut(s) were unusable and not evaluated (see the warnings above)", len(skipped))
    if not decoded:
        raise UsageError(f"no usable cuts in {', '.join(str(p) for p in paths)}")
    return decoded, skipped, sum(len(ids) for ids in manifest_ids)


def evaluation_data(
    model: Any, path: str | os.PathLike[str], task: str, batching: dict[str, Any], trust_sources: bool
) -> Any:
    """A :class:`~speechllm.data.datamodule.SpeechDataModule` whose test split is ``path``: in
    manifest order, no bucketing, no duration filter (a test set is scored whole; long clips are
    decoded in chunks with ``chunk_seconds``)."""
    from speechllm.config import DataConfig, ManifestConfig
    from speechllm.data.datamodule import SpeechDataModule

    config = DataConfig(
        test=[ManifestConfig(path=str(path), task=task)],
        max_duration=batching["max_duration"],
        max_cuts=batching["max_cuts"],
        num_buckets=1,
        shuffle=False,
        num_workers=batching["num_workers"],
        max_cut_duration=float("inf"),
        trust_manifest_sources=trust_sources,
    )
    rank, world_size = rank_and_world_size()  # each rank decodes its shard (every W-th batch)
    return SpeechDataModule(config, model.llm.prompts, rank=rank, world_size=world_size)


def _compression(model: Any, tally: LengthTally, adapter: str) -> Compression | None:
    """What the tally measured, when the encoder states its frame rate (the ratio needs it)."""
    encoder_rate = getattr(model.encoder, "frame_rate_hz", None)
    return tally.compression(encoder_rate, adapter) if encoder_rate else None


def _test_set(task: str, paths: Sequence[Any], skipped: int, total: int) -> dict[str, Any]:
    """``run.json``'s record of what was evaluated: the manifests and how many cuts were left out."""
    return {
        f"{task}_manifests": [str(p) for p in paths],
        f"{task}_skipped_cuts": skipped,
        f"{task}_cuts": total,
    }


def decoding_settings(max_new_tokens: int, decoding: dict[str, Any] | None) -> dict[str, Any]:
    """Every decoding setting, checked (an unknown key or bad value fails before any decoding)."""
    from speechllm.search import DecodingOptions

    extra = dict(decoding or {})
    chunk_seconds = extra.pop("chunk_seconds", None)
    try:
        options = DecodingOptions(max_new_tokens=max_new_tokens, **extra)
    except TypeError as err:
        raise UsageError(f"decoding: {err}") from None
    return {**options.as_dict(), "chunk_seconds": chunk_seconds}


def _check_writable(out_dir: Path) -> None:
    """Fail before decoding, not after, where the run directory cannot be written (a directory
    made for the probe is removed again: a run that fails later leaves nothing behind)."""
    made = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as err:
        raise UsageError(f"cannot write the run directory {out_dir} ({err.strerror or err})") from None
    if made:
        out_dir.rmdir()


def _check_complete(skipped: list[str], total: int, paths: Sequence[Any], allow_missing: bool) -> None:
    if skipped and not allow_missing:
        named = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        raise UsageError(
            f"{len(skipped)} of {total} cuts in {', '.join(str(p) for p in paths)} are unusable ({named}: "
            "audio, translation or language, see the warnings): scores over the rest would not be "
            "comparable; fix the data or allow it with --allow-missing (allow_missing=True), and the run "
            "records the count"
        )


def evaluate(
    model: Any,
    manifests: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    task: str = "asr",
    out_dir: str | Path | None = None,
    batch_size: int | None = 8,
    max_duration: float | None = None,
    max_new_tokens: int = 200,
    comet_model: str | os.PathLike[str] | None = None,
    comet_batch_size: int = 16,
    device: str | torch.device | None = "auto",
    precision: str = "auto",
    num_workers: int = 0,
    sfm: str | None = None,
    llm: str | None = None,
    adapter: str | None = None,
    imports: Sequence[str] = (),
    decoder: str = "llm",
    allow_missing: bool = False,
    trust_imports: bool = False,
    decoding: dict[str, Any] | None = None,
    trust_manifest_sources: bool = False,
    normalizer: str = PAPER,
    listening: bool = False,
    listening_clips: int = DEFAULT_LISTENING_CLIPS,
    seed: int = 0,
    devices: int = 1,
    accelerator: str = "auto",
    strategy: str = "ddp",
) -> dict[str, float]:
    """Decode ``manifests`` with ``model``, score, and write a run directory; returns its metrics.

    Args:
        model: a :meth:`SpeechLLM.save_pretrained <speechllm.model.SpeechLLM.save_pretrained>`
            directory, or a :class:`~speechllm.model.SpeechLLM`.
        manifests: lhotse CutSet manifest(s); every cut is used for ``task``.
        task: ``"asr"`` (reference: the supervision text) or ``"st"`` (reference: the supervision's
            ``custom["translation"]``, target language ``custom["tgt_lang"]``).
        out_dir: the run directory; default ``<model dir>/eval`` (``eval`` for an in-memory model).
        batch_size, max_duration: at most this many cuts / seconds of audio per batch (either or both).
        max_new_tokens: decoding limit (the paper: 200).
        comet_model: a COMET hub name, model directory or ``model.ckpt`` (ST only; loaded once).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, or ``"auto"`` (CUDA when available).
        precision: ``"auto"`` (bf16 where ``device`` runs it natively, see
            :mod:`speechllm.precision`), ``"bf16"`` (bf16 autocast) or ``"32"`` (float32
            throughout); recorded in ``run.json`` with the reason.
        sfm, llm, adapter: labels for ``run.json`` instead of those derived by
            :func:`~speechllm.evaluation.scoring.run_names`.
        imports: modules to import before loading ``model`` (those registering user components,
            like a training config's ``imports:``).
        decoder: ``"llm"`` (the model), or ``"prealign"``: the adapter decoded alone by its
            pre-alignment head (CTC greedy, no LLM; ASR only). Recorded in ``run.json``.
        allow_missing: score a test set with unusable (missing, unreadable, empty) audio or cuts
            in an unknown language; else an error before anything is written (a language: before
            the model loads). ``run.json`` records ``<task>_skipped_cuts``. The evaluation-only
            languages (``speechllm.languages.EVALUATION_LANGUAGE_NAMES``: nl, cs) are evaluated.
        trust_imports: import the modules the model directory lists under ``imports:``.
        decoding: ``SpeechLLM.generate_detailed`` options (``num_beams``, ``length_penalty``,
            ``no_repeat_ngram_size``, ``repetition_penalty``, ``max_new_tokens_per_second``,
            ``ctc_weight``, ``ctc_candidates``, ``chunk_seconds``); default greedy, each clip
            stopped after 20 tokens per second of audio + 20 at most. ``run.json`` records them
            and ``capped_hypotheses``, how many hypotheses stopped at their limit
            (``metrics.json``: ``num_capped_<group>``).
        trust_manifest_sources: read audio from recording sources that run a command or fetch a
            URL (refused otherwise, before the model loads: manifests are untrusted input).
        normalizer: ``paper`` (default), ``whisper_english`` or ``whisper_basic``
            (:mod:`speechllm.metrics.normalizers`): ASR is also scored under this one
            (``metrics.json``: ``asr_wer_<normalizer>_<lang>``); ``run.json`` records it.
        listening: run the listening check (:mod:`speechllm.evaluation.listening`) on the first
            ``listening_clips`` clips, with the derangement seeded by ``seed``; ``run.json``
            records it as ``listening_check_<task>`` and the verdict is logged.
        devices: decode on this many devices of ``accelerator`` (``cpu``, ``cuda``, ``auto``), one
            process each, launched by Lightning with ``strategy`` (``ddp``, ``ddp_spawn``; see
            :mod:`speechllm.evaluation.distributed`); ``model`` must then be a directory. The run
            directory and the scores are those of one process.

    ``run.json`` also records the decoding speed as ``speed_<task>`` (RTFx, clips and tokens per
    second, device and precision; :mod:`speechllm.evaluation.speed`).

    Returns:
        The run directory's ``metrics.json`` content (including earlier evaluations in it).
    """
    arguments = {
        k: v for k, v in locals().items() if k not in ("device", "devices", "accelerator", "strategy")
    }
    if devices < 1:
        raise UsageError(f"devices must be at least 1, got {devices}")
    if devices > 1:
        if accelerator == "auto" and device not in (None, "auto"):
            accelerator = torch.device(device).type  # --device cpu --devices 2: two CPU processes
        return launch(evaluate, devices, accelerator, strategy, arguments)
    rank, _ = rank_and_world_size()
    decoder = decoder_name(decoder)
    check_normalizer(normalizer, "evaluate: normalizer")
    check_joint_ctc_task(decoding, task)
    if listening_clips < 2:
        raise UsageError(
            f"listening_clips must be at least 2 (clips to swap audio between), got {listening_clips}"
        )
    paths = _manifest_list(manifests, task, batch_size, max_duration)
    # A bad, empty or untrusted manifest, or a language no model is asked about, fails before the model loads.
    for path in paths:
        if not check_manifest_path(path, trust_manifest_sources):
            raise UsageError(f"{path} holds no cut: nothing to evaluate")
        if not allow_missing:  # else such cuts are skipped and counted, like unreadable audio
            from speechllm.config import ManifestConfig
            from speechllm.data.datamodule import load_cuts
            from speechllm.data.dataset import check_test_languages

            cuts = load_cuts(
                ManifestConfig(str(path), task), train=False, trust_sources=trust_manifest_sources
            )
            check_test_languages(cuts, task, str(path))
    model, model_dir = _load_model(model, imports, trust_imports)
    out_dir = Path(out_dir) if out_dir is not None else (model_dir or Path(".")) / "eval"
    names = run_names(model.config, sfm=sfm, llm=llm, adapter=adapter)
    if rank == 0:
        check_run_dir(out_dir, names)  # before decoding, not after
        _check_writable(out_dir)
    run_device = resolve_device(device)
    model = model.to(run_device).eval()
    model, precision_context, precision_used = decode_precision(model, run_device, precision)
    log.info("decoding precision %s (%s)", precision_used["precision"], precision_used["reason"])
    comet = _comet_scorer(comet_model if task == "st" and rank == 0 else None, comet_batch_size, run_device)

    batching = {"max_duration": max_duration, "max_cuts": batch_size, "num_workers": num_workers}
    generation = decoding_settings(max_new_tokens, decoding)
    # the listening check: on rank 0's clips
    clock, sample = DecodeClock(run_device), ClipSample(listening_clips) if listening and rank == 0 else None
    with precision_context:
        with count_adapter_lengths(model) as tally:
            decoded, manifest_ids = _decode_manifests(
                model,
                paths,
                task,
                batching,
                generation,
                decoder,
                run_device,
                trust_manifest_sources,
                clock,
                sample,
            )
        decoded, clock, tally = gather_shards(decoded, clock, tally)
        decoded, skipped, total = _skipped(decoded, manifest_ids, paths)
        _check_complete(skipped, total, paths, allow_missing)
        if rank != 0:  # rank 0 scores and writes the run directory, and returns its metrics
            return {}
        checked = checked_listening(model, sample, run_device, batch_size or 8, seed, generation, decoder)
    speed = clock.record(precision_used["precision"])
    log.info(
        "decoding speed: RTFx %.1f, %.2f clips/s on %s",
        speed["rtfx"],
        speed["clips_per_second"],
        speed["device"],
    )
    scored = score_groups(group_decoded(decoded, where=", ".join(str(p) for p in paths)), comet, normalizer)
    settings = {
        "model_dir": None if model_dir is None else str(model_dir),
        **_test_set(task, paths, len(skipped), total),
        **{"max_new_tokens": max_new_tokens, "decoding": generation, "decoder": decoder},
        "capped_hypotheses": warn_capped(decoded, ", ".join(str(p) for p in paths)),
        "precision": precision_used,
        "comet_model": None if comet_model is None else str(comet_model),
        "normalizer": normalizer,
        f"speed_{task}": speed,
        **({f"listening_check_{task}": checked} if listening else {}),
        "model_config": model.config,
    }
    info = RunInfo(**names, tasks=[task], extra=settings)
    metrics = write_run_dir(out_dir, info, scored, _compression(model, tally, names["adapter"]))
    log.info("wrote run directory %s", out_dir)
    return metrics
