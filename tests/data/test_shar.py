"""Shar export and streaming: each rank (and worker) reads its own shards; cached outputs travel along."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lhotse import load_manifest
from lhotse.shar.readers.lazy import LazyManifestIterator

from speechllm.cli import main
from speechllm.config import load_config
from speechllm.data.datamodule import SpeechDataModule
from speechllm.data.encoder_cache import EncoderCache
from speechllm.data.shar_reader import is_shar_dir
from speechllm.model import SpeechLLM
from speechllm.prepare.encoder_cache_writer import build_encoder_cache
from speechllm.prepare.shar_writer import export_shar


@pytest.fixture(scope="module")
def shar_dir(tones_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shar")
    export_shar(tones_dir / "tones_cuts_train.jsonl.gz", out, shard_size=4)  # 24 cuts: 6 shards
    return out


def shard_ids(shar_dir: Path) -> list[set[str]]:
    return [{c.id for c in LazyManifestIterator(p)} for p in sorted(shar_dir.glob("cuts.*.jsonl.gz"))]


def stream_batches(
    shar_dir: Path, prompts, rank: int, world_size: int, num_workers: int = 0, batches: int = 40
) -> list[list[str]]:
    """Cut ids of the first ``batches`` training batches of one rank (the stream repeats without end)."""
    config = load_config(
        None,
        [
            f"data.train=[{{path: {shar_dir}}}]",
            f"data.num_workers={num_workers}",
            "data.max_duration=4",
            "data.num_buckets=2",
            "data.bucket_buffer_size=40",  # a Shar stream's buffer holds audio in memory
        ],
    ).data
    dm = SpeechDataModule(config, prompts, rank=rank, world_size=world_size)
    seen = []
    for batch in dm.train_dataloader():
        seen.append(batch.cut_ids)
        if len(seen) == batches:
            break
    return seen


def stream_ids(*args, **kwargs) -> list[str]:
    return [cut_id for batch in stream_batches(*args, **kwargs) for cut_id in batch]


@pytest.fixture(scope="module")
def prompts(tiny_dirs):
    from transformers import AutoTokenizer

    from speechllm.llms.prompts import PromptBuilder

    return PromptBuilder(AutoTokenizer.from_pretrained(tiny_dirs["tiny-random-llama"]))


def test_export_writes_all_cuts_with_audio(shar_dir, tones_dir):
    assert is_shar_dir(shar_dir) and not is_shar_dir(tones_dir)
    shards = shard_ids(shar_dir)
    original = load_manifest(tones_dir / "tones_cuts_train.jsonl.gz")
    assert len(shards) == 6 and set().union(*shards) == set(original.ids)
    assert len(list(shar_dir.glob("recording.*.tar"))) == 6


def test_two_ranks_stream_disjoint_shards(shar_dir, prompts):
    shards = shard_ids(shar_dir)
    rank0 = stream_ids(shar_dir, prompts, rank=0, world_size=2)
    rank1 = stream_ids(shar_dir, prompts, rank=1, world_size=2)
    # Rank r owns shards r, r+2, r+4; 40 batches cover more than one pass over them.
    assert set(rank0) == shards[0] | shards[2] | shards[4]
    assert set(rank1) == shards[1] | shards[3] | shards[5]
    assert not set(rank0) & set(rank1)


def test_workers_of_a_rank_read_disjoint_shards(shar_dir, prompts):
    shards = shard_ids(shar_dir)
    batches = stream_batches(shar_dir, prompts, rank=0, world_size=2, num_workers=2, batches=30)
    assert set().union(*map(set, batches)) == shards[0] | shards[2] | shards[4]
    # Worker 0 of rank 0 reads shards 0 and 4, worker 1 shard 2; a batch is made by one worker,
    # so no batch mixes the two groups, and both workers contribute.
    groups = [shards[0] | shards[4], shards[2]]
    owners = [[i for i, group in enumerate(groups) if set(batch) <= group] for batch in batches]
    assert all(len(owner) == 1 for owner in owners), batches
    assert {owner[0] for owner in owners} == {0, 1}


def test_too_few_shards_for_the_ranks_is_a_clear_error(shar_dir, prompts):
    with pytest.raises(ValueError, match="6 shards for 8 ranks"):
        stream_ids(shar_dir, prompts, rank=0, world_size=8)


def test_shar_with_encoder_cache_gives_cached_batches(tiny_model_overrides, tones_dir, tmp_path):
    torch.manual_seed(0)
    model = SpeechLLM.from_config(load_config(None, tiny_model_overrides).model).eval()
    manifest = tones_dir / "tones_cuts_dev.jsonl.gz"
    build_encoder_cache(model.encoder, manifest, tmp_path / "cache")
    out = tmp_path / "shar"
    code = main(
        [
            "prepare",
            "shar",
            str(manifest),
            str(out),
            "--shard-size",
            "2",
            "--with-encoder-cache",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 0 and (out / "encoder_hidden.000000.tar").exists()
    config = load_config(
        None, [f"data.val=[{{path: {out}}}]", "data.num_workers=0", "data.num_buckets=1"]
    ).data
    dm = SpeechDataModule(config, model.llm.prompts, encoder=model.encoder)
    cache = EncoderCache(tmp_path / "cache", model.encoder.cache_key())
    by_id = {c.id: c for c in load_manifest(manifest)}
    seen = []
    for batch in dm.val_dataloader():
        assert batch.audio is None
        for i, cut_id in enumerate(batch.cut_ids):
            expected = torch.from_numpy(cache.load(by_id[cut_id]).astype(np.float32))
            assert torch.equal(batch.encoder_hidden[i, : batch.encoder_lens[i]], expected)
            seen.append(cut_id)
        assert torch.isfinite(model(batch).loss)
    assert sorted(seen) == sorted(by_id)
