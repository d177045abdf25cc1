"""Structured, validated configs: YAML + dotlist overrides → one OmegaConf config.

Unknown keys (anywhere in the schema, or among a component's constructor options) are errors that
name the key and list the valid ones; they are found before any weights load.
"""

from __future__ import annotations

import importlib
import sys
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from speechllm.errors import SpeechLLMError
from speechllm.registry import (  # noqa: F401 (constructor_options, required_options: re-exported)
    ADAPTER_BUILD_CONTEXT,
    ADAPTERS,
    ENCODERS,
    LLMS,
    Registry,
    constructor_options,
    required_options,
)


class ConfigError(SpeechLLMError, ValueError):
    """A config problem, with the offending key and what is valid."""


@dataclass
class ManifestConfig:
    """One lhotse CutSet manifest and the task its cuts are used for."""

    path: str = "???"
    task: str = "asr"
    weight: float = 1.0


@dataclass
class DataConfig:
    """Data: manifests (or Shar directories) per split, bucketing, bad-input report, encoder cache.

    Attributes:
        train / val / test: manifests (``*.jsonl.gz``) or Shar directories, each with a task and
            (train) a mixing weight.
        max_duration: seconds of audio per batch (bucketing sampler).
        num_buckets: duration buckets (1: no bucketing). bucket_buffer_size: cuts held by the
            bucketing sampler (more: better shuffling, more memory; from Shar each buffered cut
            holds its audio, in every dataloader worker: lower it for Shar streams).
        min_cut_duration / max_cut_duration: cuts outside are skipped and reported.
        encoder_cache: a ``speechllm cache`` directory; batches then carry encoder outputs.
        skip_report: TSV (``cut_id<TAB>reason``) listing every skipped cut.
    """

    train: list[ManifestConfig] = field(default_factory=list)
    val: list[ManifestConfig] = field(default_factory=list)
    test: list[ManifestConfig] = field(default_factory=list)
    max_duration: float = 200.0  # seconds of audio per batch (bucketing sampler)
    num_buckets: int = 30  # 30: ~97% real frames on CoVoST-like 1-15 s clips (10: ~91%)
    bucket_buffer_size: int = 20000
    shuffle: bool = True
    num_workers: int = 2
    min_cut_duration: float = 0.0
    max_cut_duration: float = 30.0
    encoder_cache: str | None = None
    skip_report: str | None = None
    # Manifests are untrusted input: recording sources that run a command or fetch a URL are
    # refused unless this is true (speechllm.data.manifest).
    trust_manifest_sources: bool = False
    # Training cuts whose transcript or target is longer (LLM tokens) are skipped and counted.
    max_text_tokens: int | None = 1024


@dataclass
class ModelConfig:
    encoder: dict[str, Any] = field(default_factory=lambda: {"name": "whisper"})
    adapter: dict[str, Any] = field(default_factory=lambda: {"name": "base"})
    llm: dict[str, Any] = field(default_factory=lambda: {"name": "hf_causal_lm"})
    # The pre-alignment head's options (speechllm.alignment.AlignmentHead); None: no head.
    alignment: dict[str, Any] | None = None


@dataclass
class PretrainConfig:
    """Pre-alignment of the adapter before the LLM stage (see docs/training.md, "Pre-alignment").

    The adapter's outputs are scored against the LLM's frozen input embeddings
    (:mod:`speechllm.alignment`); no LLM forward pass. ``speechllm train`` runs it first when
    ``objective`` is set and ``steps`` or ``minutes`` is positive, writing ``<output_dir>/prealign/``.

    Attributes:
        objective: ``none`` (off), ``auto`` (``ce`` for CIF, else ``ctc``), ``ctc`` or ``ce``.
        steps / minutes: length of the stage (the first reached stops it; at least one is set).
        lr: AdamW peak learning rate (linear warm-up over ``warmup_ratio``, then cosine to 5%).
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
    # Learning rate of the adapter and the alignment head when it differs from ``lr`` (which LoRA
    # keeps): after pre-alignment a lower one, or 0 (frozen), keeps what the adapter learned.
    adapter_lr: float | None = None


@dataclass
class TrainerConfig:
    """Passed to ``lightning.Trainer`` (same names), except the keys below the marker, which
    ``speechllm.training.build_trainer`` interprets (see docs/training.md)."""

    max_steps: int = -1
    max_epochs: int | None = None
    # auto (bf16-true where the device runs bf16 natively, else 32; speechllm.precision) |
    # bf16-mixed | bf16-true (frozen parts bf16, trained fp32) | 32
    precision: str = "auto"
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | fsdp | deepspeed_stage_2
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = 1.0
    val_check_interval: Any = None
    check_val_every_n_epoch: int | None = 1
    limit_val_batches: Any = None
    log_every_n_steps: int = 10
    enable_progress_bar: bool = True
    deterministic: bool = False
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
    # Decoding (speechllm.search): greedy by default, as the paper; beams and the repetition guard
    num_beams: int = 1
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    repetition_penalty: float = 1.0


@dataclass
class Config:
    imports: list[str] = field(default_factory=list)
    seed: int = 0
    output_dir: str = "runs/default"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


COMPONENTS: dict[str, Registry[Any]] = {"encoder": ENCODERS, "adapter": ADAPTERS, "llm": LLMS}
# Supplied by the model when it builds the component, never from YAML.
BUILD_ARGS = {"encoder": set(), "adapter": {"in_dim", "out_dim"}, "llm": set()}


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> DictConfig:
    """Read YAML (optional), apply ``key=value`` overrides, validate, import ``imports:``.

    Raises:
        ConfigError: unknown key, wrong type, unknown component or component option.
    """
    raw = read_yaml(Path(path)) if path is not None else OmegaConf.create({})
    source = str(path) if path is not None else "<overrides>"
    try:
        if overrides:
            raw = OmegaConf.merge(raw, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as err:
        raise ConfigError(f"bad override {overrides}: {err}") from None
    _check_keys(OmegaConf.to_container(raw), Config, prefix="", source=source)
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Config), raw)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{source}: {err.msg if hasattr(err, 'msg') else err}") from None
    import_user_modules(list(cfg.imports), Path(path).parent if path is not None else None)
    validate_components(cfg)
    validate_pretrain(cfg)
    validate_values(cfg)
    prompt = cfg.model["llm"].get("prompt")
    if prompt:  # the prompt's own checks, before the LLM loads
        from speechllm.llms.prompts import PromptConfig

        try:
            PromptConfig(**OmegaConf.to_container(prompt, resolve=True))  # type: ignore[arg-type]
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{source}: {err}") from None
    return cfg  # type: ignore[return-value]


# Numbers no run can work with, refused before anything loads: (key, test, what is valid).
_VALUE_RULES: tuple[tuple[str, Any, str], ...] = (
    ("optim.lr", lambda v: v > 0, "> 0"),
    ("optim.adapter_lr", lambda v: v is None or v >= 0, ">= 0 or null"),
    ("optim.weight_decay", lambda v: v >= 0, ">= 0"),
    ("optim.warmup_ratio", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("data.max_duration", lambda v: v > 0, "> 0 (seconds of audio per batch)"),
    ("data.num_buckets", lambda v: v >= 1, ">= 1"),
    ("data.num_workers", lambda v: v >= 0, ">= 0"),
    ("data.min_cut_duration", lambda v: v >= 0, ">= 0"),
    ("data.max_cut_duration", lambda v: v > 0, "> 0"),
    ("data.max_text_tokens", lambda v: v is None or v >= 1, ">= 1 or null"),
    ("trainer.max_steps", lambda v: v == -1 or v > 0, "> 0, or -1 (no step limit)"),
    ("trainer.accumulate_grad_batches", lambda v: v >= 1, ">= 1"),
    ("pretrain.lr", lambda v: v > 0, "> 0"),
    ("pretrain.max_duration", lambda v: v > 0, "> 0"),
    ("eval.max_new_tokens", lambda v: v >= 1, ">= 1"),
)


def validate_values(cfg: DictConfig) -> None:
    """Refuse numbers a run cannot work with (a negative learning rate, empty batches), naming the key."""
    for key, valid, what in _VALUE_RULES:
        value = OmegaConf.select(cfg, key)
        if not valid(value):  # nan fails every comparison, so it is refused too
            raise ConfigError(f"{key}={value}: must be {what}")


def read_yaml(path: Path, _seen: tuple[Path, ...] = ()) -> DictConfig:
    """Load a YAML file; an ``extends: other.yaml`` key (relative to the file) is merged underneath.

    This keeps recipe configs short: a pair's ``st.yaml`` extends its ``asr.yaml``, which extends
    the shared paper settings, so each file shows only what differs.
    """
    path = path.resolve()
    if path in _seen:
        raise ConfigError(f"{path}: circular `extends` ({' -> '.join(map(str, _seen + (path,)))})")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        cfg = OmegaConf.load(path)
    except yaml.YAMLError as err:  # the parser's message carries line and column
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    except OmegaConfBaseException as err:
        raise ConfigError(f"{path}: {err}") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(
            f"{path}: a config is a mapping of keys (model:, data:, ...), not a {type(cfg).__name__}"
        )
    base = cfg.pop("extends", None)
    if base is None:
        return cfg  # type: ignore[return-value]
    parent = read_yaml(path.parent / str(base), _seen + (path,))
    return OmegaConf.merge(parent, cfg)  # type: ignore[return-value]


def import_user_modules(modules: list[str], config_dir: str | Path | None = None) -> None:
    """Import the user's modules, so that their components register (built-ins load by name).

    A module that is not importable as is but sits next to the config file (``config_dir/name.py``
    or a package ``config_dir/name/``) is imported from there: ``config_dir`` joins ``sys.path``.
    """
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            top = name.split(".")[0]
            beside = Path(config_dir) if config_dir is not None else None
            if err.name != top or beside is None or not _is_module_in(top, beside):
                raise ConfigError(f"imports: cannot import {name!r} ({err}); is it on PYTHONPATH?") from err
            sys.path.insert(0, str(beside.resolve()))
            importlib.import_module(name)
        except ImportError as err:
            raise ConfigError(f"imports: cannot import {name!r} ({err})") from err


def _is_module_in(name: str, directory: Path) -> bool:
    return (directory / f"{name}.py").is_file() or (directory / name / "__init__.py").is_file()


def validate_components(cfg: DictConfig, require_options: bool = False) -> None:
    """Each component's name is registered and each of its options is a constructor argument.

    ``require_options``: also every argument the constructor needs (a saved model's config is
    complete; a config being written may still lack its paths).
    """
    for kind, registry in COMPONENTS.items():
        options = OmegaConf.to_container(cfg.model[kind], resolve=True)
        assert isinstance(options, dict)
        name = options.pop("name", None)
        if name is None:
            raise ConfigError(f"model.{kind}.name is missing; valid {kind}s: {', '.join(registry.names())}")
        if name not in registry:
            raise ConfigError(
                f"model.{kind}.name: unknown {kind} {name!r}; valid: {', '.join(registry.names())}"
            )
        valid = constructor_options(registry.get(name)) - BUILD_ARGS[kind]
        for key in options:
            if key not in valid:
                choices = ", ".join(sorted(valid))
                raise ConfigError(f"model.{kind}.{key}: unknown option of {kind} {name!r}; valid: {choices}")
        supplied = BUILD_ARGS[kind] | (set(ADAPTER_BUILD_CONTEXT) if kind == "adapter" else set())
        missing = sorted(required_options(registry.get(name)) - supplied - set(options))
        if require_options and missing:
            raise ConfigError(f"model.{kind}: {kind} {name!r} needs {', '.join(missing)}")


def validate_pretrain(cfg: DictConfig) -> None:
    """``pretrain`` and ``model.alignment`` options, checked before any weights load.

    A pre-alignment stage needs the head: ``model.alignment`` is added (its defaults) when absent.
    """
    from speechllm.alignment import OBJECTIVES, AlignmentHead

    objective = str(cfg.pretrain.objective)
    valid = ("none", "auto", *OBJECTIVES)
    if objective not in valid:
        raise ConfigError(f"pretrain.objective: unknown {objective!r}; valid: {', '.join(valid)}")
    if cfg.pretrain.init:
        if cfg.model.alignment is None:
            cfg.model.alignment = {}
    elif objective != "none":
        if cfg.pretrain.steps <= 0 and not cfg.pretrain.minutes:
            raise ConfigError("pretrain: set pretrain.steps or pretrain.minutes (> 0), or objective: none")
        if cfg.model.alignment is None:
            cfg.model.alignment = {}
    if cfg.model.alignment is not None:
        options = OmegaConf.to_container(cfg.model.alignment, resolve=True)
        valid_keys = constructor_options(AlignmentHead) - {"dim", "vocab_size"}
        for key in options:  # type: ignore[union-attr]
            if key not in valid_keys:
                raise ConfigError(
                    f"model.alignment.{key}: unknown option; valid: {', '.join(sorted(valid_keys))}"
                )


def _check_keys(node: Any, schema: Any, prefix: str, source: str) -> None:
    """Walk the raw YAML alongside the dataclass schema and reject unknown keys with a helpful error."""
    if not isinstance(node, dict) or not is_dataclass(schema):
        return
    schema_fields = {f.name: f for f in fields(schema)}
    for key, value in node.items():
        if key not in schema_fields:
            where = prefix.rstrip(".") or "the top level"
            raise ConfigError(
                f"{source}: unknown config key '{prefix}{key}'; valid keys at {where}: "
                f"{', '.join(sorted(schema_fields))}"
            )
        sub_schema = typing.get_type_hints(schema)[key]
        if is_dataclass(sub_schema):
            _check_keys(value, sub_schema, f"{prefix}{key}.", source)
        elif key in ("train", "val", "test") and isinstance(value, list):
            for i, item in enumerate(value):
                _check_keys(item, ManifestConfig, f"{prefix}{key}[{i}].", source)
