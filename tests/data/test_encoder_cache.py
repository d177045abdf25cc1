"""Encoder-output cache: same loss as from audio, encoder not run, stale caches refused."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import load_manifest

from speechllm.cli import main
from speechllm.config import load_config
from speechllm.data.datamodule import SpeechDataModule
from speechllm.data.encoder_cache import EncoderCache, EncoderCacheError
from speechllm.model import SpeechLLM
from speechllm.prepare.encoder_cache_writer import build_encoder_cache
from speechllm.prepare.tones import prepare_tones
from speechllm.registry import ENCODERS


@pytest.fixture(scope="module")
def model(tiny_model_overrides) -> SpeechLLM:
    torch.manual_seed(0)
    return SpeechLLM.from_config(load_config(None, tiny_model_overrides).model).eval()


@pytest.fixture()
def corpus(tmp_path) -> Path:
    """A private tone corpus (tests here modify audio files)."""
    prepare_tones(tmp_path / "tones", num_train=6, num_dev=1, num_test=1, seed=1)
    return tmp_path / "tones" / "tones_cuts_train.jsonl.gz"


def data_config(manifest: Path, *extra: str):
    return load_config(
        None,
        [
            f"data.train=[{{path: {manifest}}}]",
            "data.num_workers=0",
            "data.shuffle=false",
            "data.num_buckets=1",
            "data.max_duration=100",
            *extra,
        ],
    ).data


def first_batch(dm: SpeechDataModule) -> dict:
    return next(iter(dm.train_dataloader()))


def test_loss_from_cache_equals_loss_from_audio_and_skips_the_encoder(model, corpus, tmp_path):
    cache_dir = tmp_path / "cache"
    counts = build_encoder_cache(model.encoder, corpus, cache_dir)
    assert counts == {"cuts": 6, "computed": 6, "reused": 0, "skipped": 0}

    audio_batch = first_batch(SpeechDataModule(data_config(corpus), model.llm.prompts))
    cached_dm = SpeechDataModule(
        data_config(corpus, f"data.encoder_cache={cache_dir}"), model.llm.prompts, encoder=model.encoder
    )
    cached_batch = first_batch(cached_dm)
    assert cached_batch.audio is None and cached_batch.cut_ids == audio_batch.cut_ids
    assert cached_batch.encoder_hidden.shape[-1] == model.encoder.dim
    assert torch.equal(cached_batch.encoder_lens, model.encoder.output_lengths(audio_batch.audio_lens))
    assert torch.equal(cached_batch.audio_lens, audio_batch.audio_lens)

    calls = []
    hook = model.encoder.register_forward_hook(lambda *args: calls.append(1))
    try:
        with torch.no_grad():
            from_audio = model(audio_batch).loss
            assert len(calls) == 1
            from_cache = model(cached_batch).loss
            assert len(calls) == 1  # the cached batch did not run the encoder
    finally:
        hook.remove()
    assert torch.isfinite(from_audio)
    assert float(from_cache) == pytest.approx(float(from_audio), rel=2e-3, abs=2e-3)


def test_a_cache_of_another_encoder_option_is_refused(model, corpus, tmp_path, tiny_dirs):
    cache_dir = tmp_path / "cache"
    build_encoder_cache(model.encoder, corpus, cache_dir)  # pad_to_30s=false
    padded = ENCODERS.build(
        {"name": "whisper", "path": str(tiny_dirs["tiny-random-whisper"]), "pad_to_30s": True}
    )
    assert padded.cache_key() != model.encoder.cache_key()
    dm = SpeechDataModule(
        data_config(corpus, f"data.encoder_cache={cache_dir}"), model.llm.prompts, encoder=padded
    )
    with pytest.raises(EncoderCacheError, match="pad_to_30s=False") as err:
        dm.train_dataloader()
    assert "pad_to_30s=True" in str(err.value)


def test_changed_audio_or_manifest_is_refused(model, corpus, tmp_path):
    cache_dir = tmp_path / "cache"
    build_encoder_cache(model.encoder, corpus, cache_dir)
    cache = EncoderCache(cache_dir, model.encoder.cache_key())
    cuts = list(load_manifest(corpus))
    assert cache.load(cuts[0]).shape[1] == model.encoder.dim

    # Rewrite one clip with other samples: its entry no longer matches.
    wav = Path(cuts[1].recording.sources[0].source)
    audio, rate = sf.read(wav)
    sf.write(wav, audio[::-1].copy(), rate)
    os.utime(wav, ns=(wav.stat().st_atime_ns, wav.stat().st_mtime_ns + 10**9))
    with pytest.raises(EncoderCacheError, match=cuts[1].id):
        cache.load(cuts[1])

    # A manifest that was never cached is refused before training starts.
    other = tmp_path / "other.jsonl.gz"
    shutil.copy(corpus, other)
    dm = SpeechDataModule(
        data_config(other, f"data.encoder_cache={cache_dir}"), model.llm.prompts, encoder=model.encoder
    )
    with pytest.raises(EncoderCacheError, match="not in encoder cache"):
        dm.train_dataloader()


def test_cache_without_the_encoder_is_a_clear_error(model, corpus, tmp_path):
    dm = SpeechDataModule(data_config(corpus, f"data.encoder_cache={tmp_path}"), model.llm.prompts)
    with pytest.raises(ValueError, match="encoder=model.encoder"):
        dm.train_dataloader()


def test_bad_audio_is_listed_at_caching_and_skipped_in_training(model, corpus, tmp_path):
    cuts = list(load_manifest(corpus))
    nan_wav = Path(cuts[2].recording.sources[0].source)
    samples, rate = sf.read(nan_wav, dtype="float32")
    samples[10:20] = np.nan
    sf.write(nan_wav, samples, rate, subtype="FLOAT")
    cache_dir = tmp_path / "cache"
    counts = build_encoder_cache(model.encoder, corpus, cache_dir)
    assert counts["skipped"] == 1 and counts["computed"] == 5
    report = tmp_path / "skipped.tsv"
    config = data_config(corpus, f"data.encoder_cache={cache_dir}", f"data.skip_report={report}")
    batch = first_batch(SpeechDataModule(config, model.llm.prompts, encoder=model.encoder))
    assert cuts[2].id not in batch.cut_ids and len(batch.cut_ids) == 5
    assert [tuple(pair) for pair in batch.skipped] == [(cuts[2].id, "non-finite samples")]
    assert report.read_text().splitlines()[1] == f"{cuts[2].id}\tnon-finite samples"


def test_cache_command_builds_once_and_reuses(tiny_model_overrides, corpus, tmp_path, capsys):
    cache_dir = tmp_path / "cache"
    argv = ["cache", str(_write_config(tmp_path, corpus)), *tiny_model_overrides, "--out", str(cache_dir)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "6 computed, 0 reused" in captured.out
    # Not a terminal: one progress summary line per manifest on stderr, no live bar
    assert re.search(r"^cache \S+: 6 cuts in \d+\.\d s$", captured.err, re.M), captured.err
    assert main(argv) == 0  # every manifest of data.train/val/test, nothing recomputed
    assert "0 computed, 6 reused" in capsys.readouterr().out
    (subdir,) = [p for p in cache_dir.iterdir() if p.is_dir()]
    assert len(list(subdir.glob("arrays/*/*.npy"))) == 6
    stored = np.load(next(subdir.glob("arrays/*/*.npy")))
    assert stored.dtype == np.float16 and stored.ndim == 2


def test_cache_command_builds_the_encoder_as_training_does(tiny_model_overrides, corpus, tmp_path, capsys):
    """trainer.precision=bf16-true trains on a bf16 encoder: the cache is computed (and keyed) so."""
    from speechllm.training import prepare_model_config

    cache_dir = tmp_path / "cache"
    overrides = [*tiny_model_overrides, "trainer.precision=bf16-true"]
    assert main(["cache", str(_write_config(tmp_path, corpus)), *overrides, "--out", str(cache_dir)]) == 0
    cfg = prepare_model_config(load_config(_write_config(tmp_path, corpus), overrides))
    encoder = ENCODERS.build(dict(cfg.model.encoder))
    assert "dtype=bfloat16" in encoder.cache_key()
    cache = EncoderCache(cache_dir, encoder.cache_key())  # training's lookup: found, not refused
    assert cache.load(next(iter(load_manifest(corpus)))) is not None


def _write_config(tmp_path: Path, manifest: Path) -> Path:
    path = tmp_path / "conf.yaml"
    path.write_text(f"data:\n  train:\n    - path: {manifest}\n")
    return path


def test_sweep_reuses_one_cache_across_adapters(model, tiny_model_overrides, corpus, tmp_path):
    """Another adapter on the same encoder reads the same cache: the key ignores the adapter."""
    cache_dir = tmp_path / "cache"
    build_encoder_cache(model.encoder, corpus, cache_dir)
    torch.manual_seed(0)
    conv = SpeechLLM.from_config(load_config(None, [*tiny_model_overrides, "model.adapter.name=conv"]).model)
    dm = SpeechDataModule(
        data_config(corpus, f"data.encoder_cache={cache_dir}"), conv.llm.prompts, encoder=conv.encoder
    )
    batch = first_batch(dm)
    assert torch.isfinite(conv(batch).loss)
    assert [p.name for p in cache_dir.iterdir() if p.is_dir()] == [
        EncoderCache(cache_dir, model.encoder.cache_key()).dir.name
    ]


def test_cache_batches_sort_each_window_by_duration_and_keep_every_cut_once() -> None:
    from types import SimpleNamespace

    from speechllm.prepare.encoder_cache_writer import duration_sorted_batches

    durations = [5.0, 1.0, 3.0, 9.0, 2.0, 4.0, 12.0, 1.5]
    cuts = [SimpleNamespace(id=str(i), duration=d) for i, d in enumerate(durations)]
    batches = list(duration_sorted_batches(cuts, max_duration=6.0, window=4))
    assert sorted(c.id for batch in batches for c in batch) == sorted(c.id for c in cuts)
    for batch in batches:  # within the limit, except a single cut longer than it
        assert len(batch) == 1 or sum(c.duration for c in batch) <= 6.0
    # The first window (5, 1, 3, 9) sorted: [1, 3], [5], [9]; then (2, 4, 12, 1.5): [1.5, 2], [4], [12].
    assert [[c.duration for c in batch] for batch in batches] == [
        [1.0, 3.0],
        [5.0],
        [9.0],
        [1.5, 2.0],
        [4.0],
        [12.0],
    ]


def test_the_cache_key_follows_the_weights_not_their_path(tiny_dirs, corpus, tmp_path):
    """New weights saved where the old ones were give another key: the stale cache is not served."""
    from transformers import WhisperForConditionalGeneration

    path = tmp_path / "whisper"
    shutil.copytree(tiny_dirs["tiny-random-whisper"], path)
    spec = {"name": "whisper", "path": str(path), "pad_to_30s": False}
    old = ENCODERS.build(dict(spec))
    assert ENCODERS.build(dict(spec)).cache_key() == old.cache_key()  # same weights, same key
    cache_dir = tmp_path / "cache"
    build_encoder_cache(old, corpus, cache_dir)
    model = WhisperForConditionalGeneration.from_pretrained(path)
    with torch.no_grad():
        model.model.encoder.layers[0].fc1.weight.add_(0.01)
    model.save_pretrained(path)
    new = ENCODERS.build(dict(spec)).cache_key()
    assert new != old.cache_key() and new.split("|weights=")[0] == old.cache_key().split("|weights=")[0]
    EncoderCache(cache_dir, old.cache_key())  # the old weights' cache is there...
    with pytest.raises(EncoderCacheError):
        EncoderCache(cache_dir, new)  # ...and never served to the new ones


def test_a_truncated_entry_skips_its_cut_naming_it_and_the_cache_command_rebuilds_it(model, corpus, tmp_path):
    cache_dir = tmp_path / "cache"
    build_encoder_cache(model.encoder, corpus, cache_dir)
    cache = EncoderCache(cache_dir, model.encoder.cache_key())
    damaged_cut = next(iter(load_manifest(corpus)))
    from speechllm.data.encoder_cache import entry_key

    array = cache.array_path(entry_key(damaged_cut))
    array.write_bytes(array.read_bytes()[:40])  # truncated mid-header
    report = tmp_path / "skipped.tsv"
    dm = SpeechDataModule(
        data_config(corpus, f"data.encoder_cache={cache_dir}", f"data.skip_report={report}"),
        model.llm.prompts,
        encoder=model.encoder,
    )
    batch = first_batch(dm)
    assert damaged_cut.id not in batch.cut_ids and len(batch.cut_ids) == 5
    (line,) = report.read_text().splitlines()[1:]
    assert line.startswith(f"{damaged_cut.id}\tunreadable encoder-cache entry") and "speechllm cache" in line
    counts = build_encoder_cache(model.encoder, corpus, cache_dir)
    assert counts["computed"] == 1 and counts["reused"] == 5
    assert np.load(array).shape[-1] == model.encoder.dim
