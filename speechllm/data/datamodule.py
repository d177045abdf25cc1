"""LightningDataModule: lazy lhotse manifests or Shar shards → duration-bucketed, rank-sharded batches.

Two ways to read data, chosen per split from the manifests' paths:

- **Manifests** (``*.jsonl.gz``): the sampler runs in the main process, sees every cut and gives
  rank ``r`` of ``W`` every ``W``-th batch (lhotse's ``world_size``/``rank``), so ranks see
  disjoint cuts. Its position is saved in checkpoints (:meth:`SpeechDataModule.state_dict`), and
  a resumed run continues mid-epoch without repeating or skipping a cut.
- **Shar directories** (written by ``speechllm prepare shar``; detected by their
  ``cuts.000000.jsonl.gz``): for multi-node runs. Rank ``r`` reads shards ``r, r+W, ...`` and each
  dataloader worker of that rank a disjoint part of those, so no two readers share a shard. The
  sampler runs inside the workers. A training stream repeats its shards without end (reshuffled
  each pass), so ranks never run out of batches at different times: train with
  ``trainer.max_steps``. Resuming restarts the stream with a different shard order (a stream's
  position is not saved).

Training loaders augment their cuts when ``data.augment`` is set (:mod:`speechllm.data.augment`;
with ``data.encoder_cache``, the cache's augmented views) and mask cached encoder outputs when
``data.spec_augment`` is set (:mod:`speechllm.data.spec_augment`); validation and test loaders never
do.

Batches whose every cut was skipped (bad audio, see :mod:`speechllm.data.dataset`) are ``None``;
Lightning's training loop skips them. Under DDP a rank that skips a batch while others step
would desynchronize gradients; such batches are rare (every cut of a batch unusable) and the skip
report names them, so fix the data rather than train on through them.
"""

from __future__ import annotations

import logging
from collections import Counter
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lhotse import CutSet, load_manifest_lazy
from lhotse.cut import Cut
from lhotse.dataset import DynamicBucketingSampler, IterableDatasetWrapper, SimpleCutSampler
from lhotse.dataset.sampling.base import CutSampler, TimeConstraint
from lhotse.dataset.sampling.dynamic_bucketing import estimate_duration_buckets
from torch.utils.data import DataLoader

from speechllm.config import DataConfig, ManifestConfig
from speechllm.data.augment import AudioAugmenter
from speechllm.data.dataset import SkipReport, SpeechDataset
from speechllm.data.encoder_cache import ATTACHED_FIELD, EncoderCache
from speechllm.data.samplers import DurationFilter, ResumableSampler
from speechllm.data.shar_reader import ShardSubset, is_shar_dir, shar_fields
from speechllm.data.spec_augment import SpecAugment
from speechllm.data.token_batching import (
    LLMLength,
    LLMTokenConstraint,
    TokenBucketingSampler,
    TokenBudgetFilter,
    TokenCutSampler,
)
from speechllm.languages import TASKS
from speechllm.llms.prompts import PromptBuilder

log = logging.getLogger(__name__)

STATE_VERSION = 1
BINS_SAMPLE = 10_000  # cuts read to estimate the duration buckets (lhotse's default)
EVAL_ONLY_SPLIT = "eval_only"


class SpeechDataModule(L.LightningDataModule):
    """Builds train/val/test loaders from ``data.train`` / ``data.val`` / ``data.test``.

    Several training manifests (e.g. ASR and ST) are mixed lazily with their ``weight``s. The
    bucketing sampler shards by rank and world size itself, so Lightning must not add a
    distributed sampler (``use_distributed_sampler=False``, set by the train command).

    Args:
        config: :class:`~speechllm.config.DataConfig`.
        prompts: the LLM's prompt builder.
        seed: sampler and paraphrase seed.
        encoder: the model's speech encoder; needed with ``data.encoder_cache`` (its
            ``cache_key()`` selects and checks the cache) and to use hidden states attached to
            Shar cuts.
        rank, world_size: override the trainer's (tests, custom loops); by default they are the
            attached trainer's ``global_rank`` and ``world_size``, or 0 and 1 without a trainer.
        llm_rate_hz: the adapter's outputs per second, for ``data.max_llm_tokens`` (batches by LLM
            input tokens, :mod:`speechllm.data.token_batching`); ``data.llm_rate_hz`` wins.
    """

    def __init__(
        self,
        config: DataConfig | Any,
        prompts: PromptBuilder,
        seed: int = 0,
        encoder: torch.nn.Module | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        llm_rate_hz: float | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.prompts = prompts
        self.seed = seed
        self.encoder = encoder
        self._rank, self._world_size = rank, world_size
        self.llm_rate_hz = llm_rate_hz
        self._lengths: dict[tuple[str, bool], LLMLength] = {}
        self.report = SkipReport(config.skip_report)
        self._batch_skips: Counter[str] = Counter()
        self._train_sampler: ResumableSampler | None = None
        self._stream_batches = 0
        self._pending_state: dict[str, Any] | None = None

    # -- loaders ------------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        return self._loader(self.config.train, train=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.config.val, train=False) if self.config.val else []

    def test_dataloader(self) -> DataLoader | list:
        return self._loader(self.config.test, train=False) if self.config.test else []

    def rank_and_world_size(self) -> tuple[int, int]:
        if self._rank is not None or self._world_size is not None:
            return self._rank or 0, self._world_size or 1
        if self.trainer is not None:
            return self.trainer.global_rank, self.trainer.world_size
        return 0, 1

    def cuts(self, manifests: list[ManifestConfig], train: bool = True) -> CutSet:
        """The (lazily) mixed and duration-filtered cuts of ``manifests`` (this rank's shards for Shar).

        Raises:
            ValueError: no manifests; Shar directories mixed with manifest files; a training
                manifest of evaluation-only cuts (real speech).
        """
        if not manifests:
            raise ValueError("no manifests configured for this split (data.train / data.val / data.test)")
        shar = [is_shar_dir(m.path) for m in manifests]
        if any(shar) and not all(shar):
            raise ValueError(
                "data manifests mix Shar directories and manifest files; export all of them with "
                "`speechllm prepare shar` (their samplers run in different processes)"
            )
        rank, world_size = self.rank_and_world_size()
        # A resumed Shar stream cannot seek; a seed moved by the batches already trained on gives
        # it a new shard order instead of replaying the first shards.
        shar_seed = self.seed + self._stream_batches
        parts = [
            load_cuts(
                m,
                train=train,
                shar_rank=rank,
                shar_world_size=world_size,
                seed=shar_seed,
                trust_sources=self.config.trust_manifest_sources,
            )
            for m in manifests
        ]
        cuts = (
            parts[0]
            if len(parts) == 1
            else CutSet.mux(*parts, weights=[m.weight for m in manifests], seed=self.seed)
        )
        lo, hi = self.config.min_cut_duration, self.config.max_cut_duration
        cuts = cuts.filter(DurationFilter(lo, hi, self.report))
        length = self.llm_length(manifests[0].task, train)
        if length is not None:  # a clip alone over the token budget: skipped and reported
            cuts = cuts.filter(TokenBudgetFilter(length, int(self.config.max_llm_tokens), self.report))
        return cuts

    def llm_length(self, task: str, train: bool) -> LLMLength | None:
        """A clip's LLM input length under ``data.max_llm_tokens``; None when batching by seconds."""
        if getattr(self.config, "max_llm_tokens", None) is None:
            return None
        if (task, train) not in self._lengths:  # one per (task, train): its cache is shared
            self._lengths[task, train] = LLMLength.for_data(
                self.config, self.prompts, self.llm_rate_hz, self.encoder, task, train, self.seed
            )
        return self._lengths[task, train]

    def _loader(self, manifests: list[ManifestConfig], train: bool) -> DataLoader:
        rank, world_size = self.rank_and_world_size()
        self.report.start()
        augment = self._augmenter() if train else None  # dev and test data are never augmented
        cache = self._encoder_cache(manifests)
        views = self._cached_views(cache, manifests, augment)
        masks = getattr(self.config, "spec_augment", None)
        dataset = SpeechDataset(
            self.prompts,
            task=manifests[0].task,
            train=train,
            seed=self.seed,
            skip_report=self.report,
            encoder_cache=cache,
            max_text_tokens=self.config.max_text_tokens if train else None,
            augment=augment,
            views=views,
            spec_augment=SpecAugment(masks, self.seed) if train and masks is not None and cache else None,
        )
        cuts = self.cuts(manifests, train=train)
        length = self.llm_length(manifests[0].task, train)
        workers = self.config.num_workers
        if is_shar_dir(manifests[0].path):
            # Shards are already split by rank (and by worker inside ShardSubset): the sampler runs
            # in each worker and must not split again.
            sampler = self._sampler(cuts, train, world_size=1, rank=0, manifests=manifests, length=length)
            stream = IterableDatasetWrapper(dataset, sampler)
            return DataLoader(stream, batch_size=None, num_workers=workers, persistent_workers=workers > 0)
        sampler = self._sampler(cuts, train, world_size=world_size, rank=rank, length=length)
        resumable = ResumableSampler(sampler)
        if train:
            self._train_sampler = resumable
            self._apply_pending_state(world_size)
        return DataLoader(
            dataset, sampler=resumable, batch_size=None, num_workers=workers, persistent_workers=workers > 0
        )

    def _sampler(
        self,
        cuts: CutSet,
        train: bool,
        world_size: int,
        rank: int,
        manifests: list[ManifestConfig] | None = None,
        length: LLMLength | None = None,
    ) -> CutSampler:
        """Duration-bucketing sampler (``num_buckets`` > 1) or plain one; ``manifests`` marks Shar input.

        With ``length`` (``data.max_llm_tokens``) batches are filled, and buckets cut, by LLM input
        tokens instead of seconds.
        """
        max_cuts = getattr(self.config, "max_cuts", None)
        limits: dict[str, Any] = {"max_duration": self.config.max_duration, "max_cuts": max_cuts}
        if length is not None:
            budget = int(self.config.max_llm_tokens)
            constraint = LLMTokenConstraint(max_tokens=budget, max_examples=max_cuts, length=length)
            limits = {"constraint": constraint}
        common = {
            **limits,
            "shuffle": train and self.config.shuffle,
            "drop_last": False,
            "world_size": world_size,
            "rank": rank,
            "seed": self.seed,
        }
        if self.config.num_buckets > 1:
            # Shar: bins from the small cut manifests, never from the stream (it would read audio).
            sample = shar_cut_sample(manifests) if manifests else list(islice(cuts, BINS_SAMPLE))
            num_buckets = min(self.config.num_buckets, len(sample))  # tiny corpora have few cuts
            if num_buckets > 1:
                constraint = limits.get("constraint") or TimeConstraint(max_duration=self.config.max_duration)
                bins = estimate_duration_buckets(sample, num_buckets=num_buckets, constraint=constraint)
                bucketing = DynamicBucketingSampler if length is None else TokenBucketingSampler
                return bucketing(
                    cuts, duration_bins=bins, buffer_size=self.config.bucket_buffer_size, **common
                )
        if length is not None:  # SimpleCutSampler takes no constraint
            return TokenCutSampler(cuts, **common)
        return SimpleCutSampler(cuts, **common)  # no bucketing: batches in manifest (or shuffled) order

    def _encoder_cache(self, manifests: list[ManifestConfig]) -> EncoderCache | None:
        """The cache to read hidden states from, or ``None`` to read audio."""
        attached = any(is_shar_dir(m.path) and ATTACHED_FIELD in shar_fields(m.path) for m in manifests)
        if not self.config.encoder_cache and not attached:
            return None
        if self.encoder is None:
            if self.config.encoder_cache:
                raise ValueError(
                    "data.encoder_cache is set, but SpeechDataModule got no encoder to check the cache "
                    "against: pass encoder=model.encoder"
                )
            return None  # Shar cuts carry hidden states, but nothing to verify them with: use audio
        cache = EncoderCache(self.config.encoder_cache, self.encoder.cache_key(), dim=int(self.encoder.dim))
        for manifest in manifests:
            cache.check_manifest(manifest.path)
        return cache

    def _augmenter(self) -> AudioAugmenter | None:
        """The training augmentation of ``data.augment`` (None when unset)."""
        options = getattr(self.config, "augment", None)
        return AudioAugmenter(options, self.seed) if options is not None else None

    def _cached_views(
        self, cache: EncoderCache | None, manifests: list[ManifestConfig], augment: AudioAugmenter | None
    ) -> int:
        """Views per cut the cache holds for ``augment`` (the fewest over ``manifests``; 1: clean only).

        Raises:
            EncoderCacheError: a manifest has no views of this augmentation in the cache.
            ValueError: augmentation with encoder outputs attached to Shar cuts (no views there).
        """
        if cache is None or augment is None:
            return 1
        if cache.dir is None:
            raise ValueError(
                "data.augment with encoder outputs attached to Shar cuts: the shards hold no augmented "
                "views; train from a cache directory (speechllm cache --views N) or from audio"
            )
        return min(cache.check_manifest(m.path, augment.identity()) for m in manifests)

    # -- progress, resume and skip counts -----------------------------------------------------------
    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Count batches as the training loop takes them (not as workers prefetch them)."""
        if self.trainer is None or self.trainer.training:
            if self._train_sampler is not None:
                self._train_sampler.consumed += 1
            else:
                self._stream_batches += 1
        if batch is not None:  # None: every cut skipped in a worker
            for _, reason in batch.skipped:
                self._batch_skips[reason.split(" (")[0]] += 1
        return batch

    @property
    def skipped(self) -> Counter[str]:
        """Skipped cuts per reason seen in this process: batches taken so far plus the duration filter."""
        return self._batch_skips + self.report.counts

    def state_dict(self) -> dict[str, Any]:
        """The training sampler's position: epoch and batches consumed in it (saved in checkpoints)."""
        _, world_size = self.rank_and_world_size()
        state: dict[str, Any] = {"version": STATE_VERSION, "seed": self.seed, "world_size": world_size}
        if self._train_sampler is not None:
            state.update(epoch=self._train_sampler.epoch, batches=self._train_sampler.consumed)
        else:
            state.update(stream_batches=self._stream_batches)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`; applied when the training loader is (re)built.

        Lightning calls this while restoring a checkpoint, before it asks for the training loader.
        """
        if state_dict.get("version") != STATE_VERSION:
            raise ValueError(f"data module state version {state_dict.get('version')} != {STATE_VERSION}")
        self._pending_state = dict(state_dict)
        self._stream_batches = int(state_dict.get("stream_batches", 0))
        if self._train_sampler is not None:  # loader already built: reposition it now
            self._apply_pending_state(self.rank_and_world_size()[1])

    def _apply_pending_state(self, world_size: int) -> None:
        state, self._pending_state = self._pending_state, None
        if state is None or "batches" not in state:
            return
        if state["world_size"] != world_size or state["seed"] != self.seed:
            raise ValueError(
                f"cannot resume the data position: the checkpoint was written with world size "
                f"{state['world_size']} and seed {state['seed']}, this run has {world_size} and "
                f"{self.seed}; the batches would differ (some cuts repeated, others skipped)"
            )
        assert self._train_sampler is not None
        self._train_sampler.resume(int(state["epoch"]), int(state["batches"]))


def load_cuts(
    manifest: ManifestConfig,
    train: bool = True,
    shar_rank: int = 0,
    shar_world_size: int = 1,
    seed: int = 0,
    trust_sources: bool = False,
) -> CutSet:
    """Open a manifest (or this rank's shards of a Shar directory) lazily; tag cuts with the task.

    The manifest is checked first, one streaming pass
    (:func:`~speechllm.data.manifest_check.check_manifest_path`): a truncated or bad manifest fails
    now, naming file:line, not mid-epoch, and a recording source that would run a command or fetch
    a URL is refused unless ``trust_sources``.

    Training refuses evaluation-only cuts (``custom["split"] == "eval_only"``, the real-speech set).
    A training Shar stream repeats without end (see the module docstring).
    """
    if manifest.task not in TASKS:
        raise ValueError(
            f"data manifest {manifest.path}: unknown task {manifest.task!r}; valid: {', '.join(TASKS)}"
        )
    path = Path(manifest.path)
    if not path.exists():
        raise FileNotFoundError(f"data manifest not found: {path}")
    from speechllm.data.manifest_check import check_manifest_path

    check_manifest_path(path, trust_sources)
    if is_shar_dir(path):
        cuts = CutSet(ShardSubset(path, shar_rank, shar_world_size, shuffle=train, seed=seed))
        if train:
            cuts = cuts.repeat(preserve_id=True)  # ids key the encoder cache
    else:
        cuts = load_manifest_lazy(path)
        if not isinstance(cuts, CutSet):
            raise ValueError(f"data manifest {path} is not a CutSet manifest")
    if train:
        first = next(iter(cuts), None)
        if first is not None:
            _refuse_eval_only(first, path)
        cuts = cuts.map(partial(_checked_for_training, source=str(path)))
    return cuts.map(partial(_with_task, task=manifest.task))


def shar_cut_sample(manifests: list[ManifestConfig]) -> list[Cut]:
    """Up to ``BINS_SAMPLE`` cuts from the Shar directories' cut manifests (no audio read)."""
    from lhotse.shar.readers.lazy import LazyManifestIterator

    sample: list[Cut] = []
    for manifest in manifests:
        for shard in sorted(Path(manifest.path).glob("cuts.*jsonl*")):
            sample += islice(LazyManifestIterator(shard), BINS_SAMPLE // len(manifests))
    return sample


def _refuse_eval_only(cut: Cut, source: Path | str) -> None:
    customs = [cut.custom or {}] + [s.custom or {} for s in cut.supervisions]
    if any(c.get("split") == EVAL_ONLY_SPLIT for c in customs):
        raise ValueError(
            f"data manifest {source}: cut {cut.id} is evaluation-only (custom split 'eval_only', the "
            "real-speech set); it must not be trained on: use it in data.val or data.test"
        )


def _checked_for_training(cut: Cut, source: str) -> Cut:
    _refuse_eval_only(cut, source)
    return cut


def _with_task(cut: Cut, task: str) -> Cut:
    cut.custom = {**(cut.custom or {}), "task": task}
    return cut
