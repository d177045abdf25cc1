"""evaluate reads each test manifest through the data module's own test loader (one loader for
training's test split and the evaluation runner)."""

from __future__ import annotations

from pathlib import Path

from lhotse import load_manifest

from speechllm import SpeechLLM, load_config
from speechllm.data.batch import Batch
from speechllm.data.datamodule import SpeechDataModule
from speechllm.evaluation.runner import evaluation_data


def test_the_runner_uses_the_data_modules_test_loader_in_manifest_order(
    tones_dir: Path, tiny_model_overrides: list[str]
) -> None:
    model = SpeechLLM.from_config(load_config("recipes/tiny/conf/asr.yaml", tiny_model_overrides).model)
    manifest = tones_dir / "tones_cuts_test.jsonl.gz"
    batching = {"max_duration": None, "max_cuts": 4, "num_workers": 0}
    data = evaluation_data(model, manifest, "asr", batching, trust_sources=False)
    assert isinstance(data, SpeechDataModule)
    # A test set is scored whole and in order: no bucketing, no shuffling, no duration filter.
    assert data.config.num_buckets == 1 and not data.config.shuffle
    assert data.config.max_cut_duration == float("inf")
    batches = list(data.test_dataloader())
    assert all(isinstance(batch, Batch) and len(batch.cut_ids) <= 4 for batch in batches)
    assert [cut_id for batch in batches for cut_id in batch.cut_ids] == [
        c.id for c in load_manifest(manifest)
    ]
