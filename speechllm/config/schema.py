"""The config schema: one dataclass per section (``model``, ``data``, ``optim``, ``trainer``,
``prealign``, ``eval``), with its defaults. Loading and validation: :mod:`speechllm.config.loading`,
:mod:`speechllm.config.validation`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from speechllm.languages import MAX_NEW_TOKENS_PER_SECOND


@dataclass
class ManifestConfig:
    """One lhotse CutSet manifest and the task its cuts are used for."""

    path: str = "???"
    task: str = "asr"
    weight: float = 1.0


# Coloured noises ``data.augment.noise_colors`` may name: power spectrum ∝ 1/f^exponent.
NOISE_COLORS: dict[str, float] = {"white": 0.0, "pink": 1.0, "brown": 2.0}


@dataclass
class AugmentConfig:
    """Audio augmentation of training cuts through lhotse (:mod:`speechllm.data.augment`).

    Each parameter is drawn per cut from ``(seed, cut id, view)`` alone, so a cut's augmented audio
    is reproducible; dev and test cuts are never augmented. A transform left ``None`` is off.

    Attributes:
        speed: ``[low, high]`` speed factor (lhotse speed perturbation: 1.1 is 1/1.1 as long),
            drawn uniformly and rounded to 0.01 (lhotse's resampler grows with the ratio's terms).
        volume_db: ``[low, high]`` gain in dB.
        noise_snr_db: ``[low, high]`` signal-to-noise ratio of added coloured noise, in dB.
        noise_colors: the noises drawn from (``white``, ``pink``, ``brown``), generated per cut.
        reverb: probability of reverberation by a simulated room (0: off); needs pyroomacoustics.
        rooms: how many simulated rooms (RT60 0.2-0.7 s) reverberation draws from.
        prob: probability that each of speed, volume and noise applies to a cut.
        narrowband: probability of a telephone channel (resampled to 8 kHz and back: nothing
            above 4 kHz), for speech that will be heard over a phone line (0: off).
        seed: seed of the draws (None: the run's ``seed``).
    """

    speed: list[float] | None = None
    volume_db: list[float] | None = None
    noise_snr_db: list[float] | None = None
    noise_colors: list[str] = field(default_factory=lambda: list(NOISE_COLORS))
    reverb: float = 0.0
    rooms: int = 32
    prob: float = 1.0
    narrowband: float = 0.0
    seed: int | None = None


@dataclass
class SpecAugmentConfig:
    """SpecAugment-style masking of cached encoder outputs in training (:mod:`speechllm.data.spec_augment`).

    Attributes:
        time_masks / feature_masks: masks per clip along time (frames) and along channels.
        max_time_width / max_feature_width: a mask's width, at most this fraction of the clip's
            frames / of the channels (drawn uniformly from 0 up to it).
        seed: seed of the draws (None: the run's ``seed``); drawn per (cut, epoch).
    """

    time_masks: int = 2
    max_time_width: float = 0.05
    feature_masks: int = 2
    max_feature_width: float = 0.1
    seed: int | None = None


@dataclass
class DataConfig:
    """Data: manifests (or Shar directories) per split, bucketing, bad-input report, encoder cache.

    Attributes:
        train / val / test: manifests (``*.jsonl.gz``) or Shar directories, each with a task and
            (train) a mixing weight.
        max_duration: seconds of audio per batch (bucketing sampler); max_cuts: at most this many
            cuts per batch (None: no limit).
        num_buckets: duration buckets (1: no bucketing). bucket_buffer_size: cuts held by the
            bucketing sampler (more: better shuffling, more memory; from Shar each buffered cut
            holds its audio, in every dataloader worker: lower it for Shar streams).
        min_cut_duration / max_cut_duration: cuts outside are skipped and reported.
        max_llm_tokens: fill batches by LLM input tokens instead of audio seconds: a batch's clips
            × its longest clip's prompt + adapter outputs + target tokens stay within this
            (``max_duration`` is then unused; a clip alone over it is skipped and reported).
        llm_rate_hz: adapter outputs per second of audio for ``max_llm_tokens`` (None: from the
            adapter and encoder, see :func:`speechllm.data.token_batching.adapter_rate_hz`).
        encoder_cache: a ``speechllm cache`` directory; batches then carry encoder outputs.
        augment: audio augmentation of training cuts (:class:`AugmentConfig`); with
            ``encoder_cache`` the cache's augmented views of them (``speechllm cache --views N``).
        spec_augment: masking of cached encoder outputs in training (:class:`SpecAugmentConfig`);
            needs ``encoder_cache``.
        skip_report: TSV (``cut_id<TAB>reason``) listing every skipped cut.
    """

    train: list[ManifestConfig] = field(default_factory=list)
    val: list[ManifestConfig] = field(default_factory=list)
    test: list[ManifestConfig] = field(default_factory=list)
    max_duration: float = 200.0  # seconds of audio per batch (bucketing sampler)
    max_cuts: int | None = None  # and at most this many cuts per batch (None: no limit)
    max_llm_tokens: int | None = None  # batches by LLM input tokens instead (docs/data.md)
    llm_rate_hz: float | None = None  # adapter outputs per second for max_llm_tokens (None: derived)
    num_buckets: int = 30  # 30: ~97% real frames on CoVoST-like 1-15 s clips (10: ~91%)
    bucket_buffer_size: int = 20000
    shuffle: bool = True
    num_workers: int = 2
    min_cut_duration: float = 0.0
    max_cut_duration: float = 30.0
    encoder_cache: str | None = None
    augment: AugmentConfig | None = None
    spec_augment: SpecAugmentConfig | None = None
    skip_report: str | None = None
    # Manifests are untrusted input: recording sources that run a command or fetch a URL are
    # refused unless this is true (speechllm.data.manifest_check).
    trust_manifest_sources: bool = False
    # Training cuts whose transcript or target is longer (LLM tokens) are skipped and counted.
    max_text_tokens: int | None = 1024


@dataclass
class ModelConfig:
    encoder: dict[str, Any] = field(default_factory=lambda: {"name": "whisper"})
    adapter: dict[str, Any] = field(default_factory=lambda: {"name": "base"})
    llm: dict[str, Any] = field(default_factory=lambda: {"name": "hf_causal_lm"})
    # The pre-alignment head's options (speechllm.prealign.head.PreAlignHead); None: no head.
    prealign: dict[str, Any] | None = None


@dataclass
class PreAlignConfig:
    """Pre-alignment of the adapter before the LLM stage (see docs/training.md, "Pre-alignment").

    The adapter's outputs are scored against the LLM's frozen input embeddings
    (:mod:`speechllm.prealign.head`); no LLM forward pass. ``speechllm train`` runs it first when
    ``objective`` is set and ``steps`` or ``minutes`` is positive, writing ``<output_dir>/prealign/``.

    Attributes:
        objective: ``none`` (off), ``auto`` (``ce`` for CIF, else ``ctc``), ``ctc`` or ``ce``.
        steps / minutes: length of the stage (the first reached stops it; at least one is set).
        lr: AdamW peak learning rate (linear warm-up over ``warmup_ratio``, then cosine to 5%).
        warmup_steps: the lr also stays under a linear ramp over this many steps, whatever the
            budget: a short stage (a few minutes) warmed up over 5% of it takes ~15 full-lr Adam
            updates from random initialisation and stays on the CTC plateau (docs/training.md).
        max_duration: seconds of audio per batch (the LLM stage's ``data.max_duration`` is unchanged).
        val_check_interval: steps between dev evaluations (loss and the adapter's greedy WER).
        rescale: match the outputs' RMS to the embedding rows' at the end (``output_scale``).
        init: start from a finished pre-alignment instead of running one: the model directory it
            saved (``<run>/prealign/model``) for the same model config. One pre-alignment then
            serves many LLM-stage runs (learning rates, LoRA ranks, readouts, tasks).
    """

    objective: str = "none"
    steps: int = 0
    minutes: float | None = None
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    warmup_steps: int = 200
    max_duration: float = 120.0
    val_check_interval: int = 50
    rescale: bool = True
    init: str | None = None


@dataclass
class OptimConfig:
    """AdamW with linear warm-up then cosine decay, the paper's setting."""

    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_ratio: float = 0.03
    scheduler: str = "cosine"  # cosine | constant
    min_lr_ratio: float = 0.0
    # Learning rate of the adapter and the pre-alignment head when it differs from ``lr`` (which LoRA
    # keeps): after pre-alignment a lower one, or 0 (frozen), keeps what the adapter learned.
    adapter_lr: float | None = None


@dataclass
class TrainerConfig:
    """Passed to ``lightning.Trainer`` (same names), except the keys below the marker, which
    ``speechllm.lightning.trainer.build_trainer`` interprets (see docs/training.md). A key left
    ``None`` is not passed: Lightning's default applies. Values are checked before anything loads
    (:mod:`speechllm.config.trainer_values`)."""

    max_steps: int = -1
    max_epochs: int | None = None
    # Wall-clock limit of the LLM stage: "DD:HH:MM:SS" (quoted in YAML) or {hours: 1, minutes: 30};
    # the pre-alignment stage has its own, prealign.minutes.
    max_time: Any = None
    min_steps: int | None = None
    min_epochs: int | None = None
    # true or N: a smoke test of the whole run on N (true: 1) training and validation batches
    fast_dev_run: Any = None
    # Batches per epoch: an int counts batches, a float in [0, 1] is a fraction of them.
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    overfit_batches: Any = None
    num_sanity_val_steps: int | None = None  # validation batches before training (Lightning: 2)
    # auto (bf16-true where the device runs bf16 natively, else 32; speechllm.precision) |
    # bf16-mixed | bf16-true (frozen parts bf16, trained fp32) | 32
    precision: str = "auto"
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | fsdp | deepspeed_stage_2
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = 1.0
    gradient_clip_algorithm: str | None = None  # norm (Lightning's default) | value
    val_check_interval: Any = None
    check_val_every_n_epoch: int | None = 1
    log_every_n_steps: int = 10
    enable_progress_bar: bool = True
    enable_model_summary: bool | None = None
    deterministic: bool = False
    detect_anomaly: bool | None = None
    # -- speechllm's own trainer options (not Lightning keyword arguments) --
    logger: str = "csv"  # csv | tensorboard | wandb | none
    activation_checkpointing: bool = False  # recompute the LLM's activations in backward
    compile: bool = False  # torch.compile the adapter
    checkpoint_every_n_steps: int | None = None  # None: after each validation / epoch
    save_top_k: int = 1  # step checkpoints kept besides last.ckpt
    # Optimizer steps whose loss or gradients are NaN/inf are skipped and counted; this many in a
    # row stop training with an error (0: stop at the first). See docs/reliability.md.
    max_bad_steps: int = 10


@dataclass
class EvalConfig:
    """Decode the validation/test sets during training and log WER / BLEU / chrF / COMET
    (callbacks :class:`~speechllm.lightning.metric_callbacks.ASRMetrics` / ``STMetrics``)."""

    asr_metrics: bool = False
    st_metrics: bool = False
    comet_model: str | None = None  # e.g. Unbabel/wmt22-comet-da or a local checkpoint
    max_new_tokens: int = 200
    # Each clip also stops after ceil(this × its seconds) + 20 tokens (speechllm.search.token_limits;
    # real speech stays far below): a model that never stops stops early. null: max_new_tokens alone.
    max_new_tokens_per_second: float | None = MAX_NEW_TOKENS_PER_SECOND
    # Decoding (speechllm.search): greedy by default, as the paper; beams and the repetition guard
    num_beams: int = 1
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    repetition_penalty: float = 1.0
    # Joint CTC decoding of ASR sets (speechllm.ctc_prefix; pre-aligned models): the weight of the
    # adapter's CTC prefix score against the LLM's, over its ctc_candidates best tokens (0: off;
    # ST sets are decoded by the LLM alone: the head spells the source, not the translation)
    ctc_weight: float = 0.0
    ctc_candidates: int = 8
    # Also score WER under this normalizer: paper | whisper_english | whisper_basic
    # (speechllm.metrics.normalizers; Table 3's WER stays the paper's)
    normalizer: str = "paper"
    # Decode the first listening_clips validation clips again with another clip's audio and with
    # silence, and say whether the output depends on the audio (docs/evaluation-checks.md)
    listening_check: bool = False
    listening_clips: int = 32


@dataclass
class Config:
    imports: list[str] = field(default_factory=list)
    seed: int = 0
    output_dir: str = "runs/default"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    prealign: PreAlignConfig = field(default_factory=PreAlignConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
