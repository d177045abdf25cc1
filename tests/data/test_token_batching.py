"""``data.max_llm_tokens``: batches filled by LLM input tokens (prompt + adapter outputs + target)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from speechllm.adapters.conv import conv_out_lens
from speechllm.config import ConfigError, load_config
from speechllm.data.datamodule import SpeechDataModule
from speechllm.data.token_batching import LLMLength, adapter_rate_hz
from speechllm.llms.prompts import PromptBuilder

RATE_HZ = 12.5  # the Conv adapter on Whisper


@pytest.fixture(scope="module")
def prompts(tiny_dirs) -> PromptBuilder:
    return PromptBuilder(AutoTokenizer.from_pretrained(tiny_dirs["tiny-random-llama"]))


def token_config(tones_dir: Path, *overrides: str):
    train = tones_dir / "tones_cuts_train.jsonl.gz"
    return load_config(None, [f"data.train=[{{path: {train}}}]", "data.num_workers=0", *overrides]).data


def epoch(dm: SpeechDataModule) -> list[list]:
    """One epoch of the training sampler's batches (cuts; no audio read)."""
    manifests = dm.config.train
    length = dm.llm_length(manifests[0].task, True)
    sampler = dm._sampler(dm.cuts(manifests), True, world_size=1, rank=0, length=length)
    return [list(batch) for batch in sampler]


@pytest.mark.parametrize("num_buckets", [1, 3])
def test_no_batch_over_the_budget_and_every_cut_once(num_buckets, prompts, tones_dir):
    config = token_config(tones_dir, "data.max_llm_tokens=400", f"data.num_buckets={num_buckets}")
    dm = SpeechDataModule(config, prompts, seed=0, llm_rate_hz=RATE_HZ)
    length = dm.llm_length("asr", True)
    batches = epoch(dm)
    for batch in batches:  # the padded LLM input: clips × the longest clip
        assert len(batch) * max(length(cut) for cut in batch) <= 400
    seen = [cut.id for batch in batches for cut in batch]
    all_ids = [cut.id for cut in dm.cuts(config.train)]
    assert sorted(seen) == sorted(all_ids) and len(all_ids) == 24
    assert max(len(batch) for batch in batches) > 1  # batches are filled, not one clip each


def test_counted_length_is_the_rows_real_length(prompts, tones_dir):
    # prompt + target ids as the dataset builds them for the same cut, plus ceil(seconds × rate).
    config = token_config(tones_dir, "data.max_llm_tokens=200", "data.num_buckets=1", "data.shuffle=false")
    dm = SpeechDataModule(config, prompts, seed=5, llm_rate_hz=RATE_HZ)
    length = dm.llm_length("asr", True)
    cuts = {cut.id: cut for cut in dm.cuts(config.train)}
    batch = next(iter(dm.train_dataloader()))
    for i, cut_id in enumerate(batch.cut_ids):
        text = int(batch.prefix_lens[i] + batch.suffix_lens[i] + batch.target_lens[i])
        assert length(cuts[cut_id]) == text + length.audio_tokens(cuts[cut_id].duration)


def test_a_clip_alone_over_the_budget_is_skipped_and_reported(prompts, tones_dir, tmp_path):
    report = tmp_path / "skipped.tsv"
    probe = SpeechDataModule(
        token_config(tones_dir, "data.max_llm_tokens=1000"), prompts, llm_rate_hz=RATE_HZ
    )
    sizes = sorted(probe.llm_length("asr", True)(cut) for cut in probe.cuts(probe.config.train))
    budget = sizes[-3]  # the longest clips do not fit even alone
    over = sum(size > budget for size in sizes)
    assert over >= 1
    config = token_config(tones_dir, f"data.max_llm_tokens={budget}", f"data.skip_report={report}")
    dm = SpeechDataModule(config, prompts, llm_rate_hz=RATE_HZ)
    dm.report.start()
    batches = epoch(dm)
    assert sum(len(batch) for batch in batches) == len(sizes) - over
    lines = report.read_text().splitlines()[1:]
    assert len(lines) == over
    assert all(f"more than data.max_llm_tokens={budget}" in line for line in lines)


def test_without_a_rate_the_error_names_the_key(prompts, tones_dir):
    dm = SpeechDataModule(token_config(tones_dir, "data.max_llm_tokens=100"), prompts)
    with pytest.raises(ValueError, match="data.llm_rate_hz"):
        dm.train_dataloader()
    with pytest.raises(ConfigError, match="data.max_llm_tokens=0"):
        from speechllm.config.validation import validate_values

        validate_values(load_config(None, ["data.max_llm_tokens=0"]))


def test_adapter_rates_match_the_adapters_lengths():
    whisper = {"name": "whisper"}
    assert adapter_rate_hz({"name": "base"}, whisper, 50.0)[0] == 50.0
    # Conv (two stride-2 convolutions): 10 s of Whisper frames (500) become 125 outputs, 12.5 per second.
    rate, _ = adapter_rate_hz({"name": "conv"}, whisper, 50.0)
    assert int(conv_out_lens(conv_out_lens(torch.tensor([500])))[0]) == round(10 * rate) == 125
    assert adapter_rate_hz({"name": "wlq_former"}, whisper, 50.0)[0] == pytest.approx(50 / 16)
    assert adapter_rate_hz({"name": "cif"}, whisper, 50.0)[0] == pytest.approx(2.0)  # Table 1: 25:1
    assert adapter_rate_hz({"name": "ctc"}, {"name": "seamless"}, 6.25)[0] == pytest.approx(3.125)
    assert adapter_rate_hz({"name": "mine"}, whisper, 50.0)[0] == 50.0  # unknown: no compression


def test_whisper_padding_to_30s_counts_30_s_for_every_clip(prompts):
    length = LLMLength(prompts, RATE_HZ, fixed_seconds=30.0)
    assert length.audio_tokens(2.0) == length.audio_tokens(14.0) == 375
    assert LLMLength(prompts, RATE_HZ).audio_tokens(2.0) == 25
