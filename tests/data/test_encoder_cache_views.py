"""Augmentation with the encoder-output cache: augmented views per training clip
(`speechllm cache --views N`), SpecAugment-style masks on cached outputs, and caches written
before views existed still load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lhotse import load_manifest

from speechllm.cli import main
from speechllm.config import load_config
from speechllm.data.augment import AudioAugmenter
from speechllm.data.datamodule import SpeechDataModule
from speechllm.data.encoder_cache import (
    EncoderCache,
    EncoderCacheError,
    cache_dir_name,
    entry_key,
    manifest_identity,
)
from speechllm.data.spec_augment import SpecAugment
from speechllm.model import SpeechLLM
from speechllm.prepare.encoder_cache_writer import build_encoder_cache
from speechllm.prepare.tones import prepare_tones

NOISE = {"noise_snr_db": [0, 10], "volume_db": [-6, 6]}


@pytest.fixture(scope="module")
def model(tiny_model_overrides) -> SpeechLLM:
    torch.manual_seed(0)
    return SpeechLLM.from_config(load_config(None, tiny_model_overrides).model).eval()


@pytest.fixture()
def corpus(tmp_path) -> Path:
    prepare_tones(tmp_path / "tones", num_train=6, num_dev=2, num_test=1, seed=1)
    return tmp_path / "tones"


def data_config(train: Path, *extra: str, val: Path | None = None):
    return load_config(
        None,
        [
            f"data.train=[{{path: {train}}}]",
            *([f"data.val=[{{path: {val}}}]"] if val else []),
            "data.num_workers=0",
            "data.shuffle=false",
            "data.num_buckets=1",
            "data.max_duration=100",
            *extra,
        ],
    ).data


def test_views_are_stored_per_clip_differ_and_view_0_is_the_clean_entry(model, corpus, tmp_path):
    train = corpus / "tones_cuts_train.jsonl.gz"
    augmenter = AudioAugmenter(NOISE, seed=0)
    clean_dir, views_dir = tmp_path / "clean", tmp_path / "views"
    build_encoder_cache(model.encoder, train, clean_dir)
    counts = build_encoder_cache(model.encoder, train, views_dir, augmenter=augmenter, views=3)
    assert counts == {"cuts": 6, "computed": 18, "reused": 0, "skipped": 0}
    clean, cache = (
        EncoderCache(clean_dir, model.encoder.cache_key()),
        EncoderCache(views_dir, model.encoder.cache_key()),
    )
    identity = augmenter.identity()
    for cut in load_manifest(train):
        view0, view1, view2 = (cache.load(cut, view, identity) for view in range(3))
        assert np.array_equal(view0, clean.load(cut))  # view 0: the audio as it is
        assert view1.shape == view0.shape and not np.allclose(view1, view0)
        assert not np.allclose(view1, view2)
    assert cache.view_options()[identity] == {**augmenter.options(), "seed": 0}
    # Asked again, nothing is recomputed; a different augmentation adds its own views beside.
    assert build_encoder_cache(model.encoder, train, views_dir, augmenter=augmenter, views=3)["computed"] == 0
    other = AudioAugmenter({**NOISE, "seed": 1})
    assert build_encoder_cache(model.encoder, train, views_dir, augmenter=other, views=2)["computed"] == 6
    record = json.loads((cache.dir / "manifests.json").read_text())[str(train.resolve())]
    assert record["views"] == {identity: 3, other.identity(): 2}


def test_training_reads_one_view_per_clip_and_epoch(model, corpus, tmp_path):
    train = corpus / "tones_cuts_train.jsonl.gz"
    cache_dir = tmp_path / "cache"
    build_encoder_cache(model.encoder, train, cache_dir, augmenter=AudioAugmenter(NOISE, seed=0), views=4)
    config = data_config(
        train,
        f"data.encoder_cache={cache_dir}",
        "data.augment.noise_snr_db=[0,10]",
        "data.augment.volume_db=[-6,6]",
    )
    loader = SpeechDataModule(config, model.llm.prompts, encoder=model.encoder).train_dataloader()
    cache = EncoderCache(cache_dir, model.encoder.cache_key())
    identity = AudioAugmenter(NOISE, seed=0).identity()
    cuts = {cut.id: cut for cut in load_manifest(train)}
    picked = []
    for epoch in range(4):
        loader.sampler.set_epoch(epoch)
        batch = next(iter(loader))
        for row, cut_id in enumerate(batch.cut_ids):
            frames = int(batch.encoder_lens[row])
            got = batch.encoder_hidden[row, :frames].numpy()
            matches = [
                view
                for view in range(4)
                if np.array_equal(got, cache.load(cuts[cut_id], view, identity).astype(np.float32))
            ]
            assert len(matches) == 1  # exactly one stored view, as stored
            picked.append(matches[0])
    assert len(set(picked)) > 1  # the views are used, not only the clean one
    # Same epoch, same views: reproducible.
    loader.sampler.set_epoch(2)
    first, again = next(iter(loader)), next(iter(loader))
    assert torch.equal(first.encoder_hidden, again.encoder_hidden)


def test_augmenting_with_a_cache_lacking_those_views_is_an_error_naming_the_fix(model, corpus, tmp_path):
    train = corpus / "tones_cuts_train.jsonl.gz"
    cache_dir = tmp_path / "cache"
    build_encoder_cache(model.encoder, train, cache_dir)  # clean only
    config = data_config(train, f"data.encoder_cache={cache_dir}", "data.augment.speed=[0.9,1.1]")
    dm = SpeechDataModule(config, model.llm.prompts, encoder=model.encoder)
    with pytest.raises(EncoderCacheError, match=r"no augmented views of this data.augment.*--views N"):
        dm.train_dataloader()


def test_dev_data_reads_the_clean_view_and_gets_no_masks(model, corpus, tmp_path):
    train, dev = corpus / "tones_cuts_train.jsonl.gz", corpus / "tones_cuts_dev.jsonl.gz"
    cache_dir = tmp_path / "cache"
    build_encoder_cache(model.encoder, train, cache_dir, augmenter=AudioAugmenter(NOISE, seed=0), views=3)
    build_encoder_cache(model.encoder, dev, cache_dir)
    config = data_config(
        train,
        f"data.encoder_cache={cache_dir}",
        "data.augment.noise_snr_db=[0,10]",
        "data.augment.volume_db=[-6,6]",
        "data.spec_augment.time_masks=3",
        val=dev,
    )
    batch = next(iter(SpeechDataModule(config, model.llm.prompts, encoder=model.encoder).val_dataloader()))
    cache = EncoderCache(cache_dir, model.encoder.cache_key())
    for row, cut in enumerate(load_manifest(dev)):
        assert batch.cut_ids[row] == cut.id
        assert np.array_equal(
            batch.encoder_hidden[row, : int(batch.encoder_lens[row])].numpy(), cache.load(cut)
        )


def test_spec_augment_zeroes_seeded_spans_that_change_each_epoch(model, corpus, tmp_path):
    masks = SpecAugment(
        {"time_masks": 2, "max_time_width": 0.2, "feature_masks": 2, "max_feature_width": 0.2}
    )
    hidden = np.random.default_rng(0).standard_normal((100, 40)).astype(np.float32) + 5  # no zeros
    out = masks(hidden, "cut", epoch=0)
    assert np.array_equal(out, masks(hidden, "cut", epoch=0)) and not np.array_equal(out, hidden)
    times, features = masks.spans("cut", 0, 100, 40)
    zero_rows = {t for span in times for t in span}
    zero_cols = {c for span in features for c in span}
    assert {int(i) for i in np.flatnonzero((out == 0).all(axis=1))} == zero_rows
    assert {int(i) for i in np.flatnonzero((out == 0).all(axis=0))} == zero_cols
    assert all(len(span) <= 20 for span in times) and all(len(span) <= 8 for span in features)
    assert np.array_equal(out[out != 0], hidden[out != 0])  # nothing else changed
    assert not np.array_equal(out, masks(hidden, "cut", epoch=1))
    # In training: the batch carries the masked frames.
    train = corpus / "tones_cuts_train.jsonl.gz"
    cache_dir = tmp_path / "cache"
    build_encoder_cache(model.encoder, train, cache_dir)
    config = data_config(train, f"data.encoder_cache={cache_dir}", "data.spec_augment.max_time_width=0.3")
    batch = next(iter(SpeechDataModule(config, model.llm.prompts, encoder=model.encoder).train_dataloader()))
    cut = next(c for c in load_manifest(train) if c.id == batch.cut_ids[0])
    stored = EncoderCache(cache_dir, model.encoder.cache_key()).load(cut).astype(np.float32)
    expected = SpecAugment(dict(config.spec_augment), seed=0)(stored, cut.id, 0)
    assert np.array_equal(batch.encoder_hidden[0, : len(stored)].numpy(), expected)


def test_a_cache_written_before_views_existed_still_loads(model, corpus, tmp_path):
    """The files the writer wrote before views (no views.json, no views in manifests.json), by hand."""
    train = corpus / "tones_cuts_train.jsonl.gz"
    key = model.encoder.cache_key()
    directory = tmp_path / "old" / cache_dir_name(key)
    (directory / "arrays").mkdir(parents=True)
    meta = {
        "format": 1,
        "cache_key": key,
        "dim": model.encoder.dim,
        "frame_rate_hz": 50.0,
        "dtype": "float16",
    }
    (directory / "meta.json").write_text(json.dumps(meta))
    record = manifest_identity(train)
    (directory / "manifests.json").write_text(json.dumps({record["path"]: {**record, "cuts": 6}}))
    stored = {}
    for i, cut in enumerate(load_manifest(train)):
        frames = np.full((5 + i, model.encoder.dim), i, dtype=np.float16)
        path = directory / "arrays" / entry_key(cut)[:3] / f"{entry_key(cut)}.npy"
        path.parent.mkdir(exist_ok=True)
        np.save(path, frames)
        stored[cut.id] = frames
    config = data_config(train, f"data.encoder_cache={tmp_path / 'old'}")
    batch = next(iter(SpeechDataModule(config, model.llm.prompts, encoder=model.encoder).train_dataloader()))
    assert len(batch.cut_ids) == 6
    for row, cut_id in enumerate(batch.cut_ids):
        assert np.array_equal(
            batch.encoder_hidden[row, : int(batch.encoder_lens[row])].numpy(), stored[cut_id]
        )


def test_cache_command_views_go_to_training_manifests_only(tiny_model_overrides, corpus, tmp_path, capsys):
    train, dev = corpus / "tones_cuts_train.jsonl.gz", corpus / "tones_cuts_dev.jsonl.gz"
    config = tmp_path / "conf.yaml"
    config.write_text(
        f"data:\n  train: [{{path: {train}}}]\n  val: [{{path: {dev}}}]\n"
        "  augment: {noise_snr_db: [5, 20], speed: [0.9, 1.1]}\n"
    )
    cache_dir = tmp_path / "cache"
    assert main(["cache", str(config), *tiny_model_overrides, "--out", str(cache_dir), "--views", "3"]) == 0
    out = capsys.readouterr().out
    assert "6 cuts x 3 views" in out and "18 computed" in out
    assert "2 cuts, 2 computed" in out  # dev: clean only
    (directory,) = [p for p in cache_dir.iterdir() if p.is_dir()]
    records = json.loads((directory / "manifests.json").read_text())
    assert "views" in records[str(train.resolve())] and "views" not in records[str(dev.resolve())]
    plain = tmp_path / "plain.yaml"
    plain.write_text(f"data:\n  train: [{{path: {train}}}]\n")
    assert main(["cache", str(plain), *tiny_model_overrides, "--out", str(cache_dir), "--views", "2"]) != 0
    assert "--views N > 1 augments the audio: set data.augment" in capsys.readouterr().err
