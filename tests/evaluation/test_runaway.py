"""A model that never stops generating is stopped by a token limit tied to each clip's duration;
`evaluate` and `transcribe` record and report how many hypotheses hit it, and show their progress
(one summary line per set on a pipe)."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import pytest
import torch
from helpers.paths import REPO

from speechllm.cli import main
from speechllm.config import ConfigError, load_config
from speechllm.evaluation import evaluate
from speechllm.languages import EXTRA_NEW_TOKENS, MAX_NEW_TOKENS_PER_SECOND
from speechllm.lightning.metric_callbacks import ASRMetrics
from speechllm.lightning.trainer import default_callbacks
from speechllm.llms.causal_lm import CausalLM
from speechllm.model import SpeechLLM

TINY_RECIPE = REPO / "recipes" / "tiny" / "conf" / "asr.yaml"


def cap(seconds: float, max_new_tokens: int = 200) -> int:
    """The documented limit: min(max_new_tokens, ceil(20 × seconds) + 20)."""
    return min(max_new_tokens, math.ceil(MAX_NEW_TOKENS_PER_SECOND * seconds) + EXTRA_NEW_TOKENS)


@pytest.fixture
def never_stops(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every LLM's stop tokens made impossible: generation never ends by itself (a runaway).
    Returns the list that counts the LLM's decoding steps."""
    steps: list[int] = []
    step = CausalLM.step

    def runaway_step(self: CausalLM, *args, **kwargs):
        logits, cache = step(self, *args, **kwargs)
        logits[:, self.prompts.stop_ids] = float("-inf")
        steps.append(1)
        return logits, cache

    monkeypatch.setattr(CausalLM, "step", runaway_step)
    return steps


@pytest.fixture(scope="module")
def model(tiny_model_overrides) -> SpeechLLM:
    torch.manual_seed(0)
    return SpeechLLM.from_config(load_config(None, tiny_model_overrides).model).eval()


@pytest.fixture(scope="module")
def model_dir(model: SpeechLLM, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model.save_pretrained(tmp_path_factory.mktemp("runaway") / "model")


def two_clips() -> tuple[torch.Tensor, torch.Tensor]:
    """(2, S) noise: a 0.5 s and a 3 s clip in one batch, and their lengths (2,)."""
    generator = torch.Generator().manual_seed(0)
    lens = torch.tensor([8_000, 48_000])
    audio = 0.1 * torch.randn(2, 48_000, generator=generator)
    audio[0, 8_000:] = 0
    return audio, lens


@pytest.mark.parametrize("num_beams", [1, 3])
def test_a_runaway_stops_at_the_limit_of_its_own_clips_duration(model, never_stops, num_beams) -> None:
    audio, lens = two_clips()
    decoded = model.generate_detailed(audio, lens, num_beams=num_beams)  # max_new_tokens: 200
    limits = [cap(0.5), cap(3.0)]
    assert limits == [30, 80]  # a short and a long clip of one batch get different limits
    assert decoded.token_limits == limits
    assert decoded.num_tokens == limits and decoded.capped == [True, True]
    # The LLM ran one step over the prompt, then one per further token of the longest limit, not 200.
    assert len(never_stops) == max(limits)
    assert model.generate(audio, lens, num_beams=num_beams) == decoded.texts


@pytest.mark.parametrize("num_beams", [1, 3])
def test_a_progress_bar_hears_of_each_clip_as_it_finishes(model, never_stops, num_beams) -> None:
    audio, lens = two_clips()
    finished: list[tuple[int, int]] = []  # (clips, LLM steps so far)
    model.generate_detailed(
        audio, lens, num_beams=num_beams, on_clip_done=lambda n: finished.append((n, len(never_stops)))
    )
    assert finished == [(1, cap(0.5)), (1, cap(3.0))]  # the short clip at its limit, long before the other


def test_chunked_decoding_sums_the_chunks_and_reports_the_clip_once(model, never_stops) -> None:
    audio, lens = two_clips()
    finished: list[int] = []
    decoded = model.generate_detailed(audio, lens, chunk_seconds=1.0, on_clip_done=finished.append)
    assert decoded.token_limits == [cap(0.5), 3 * cap(1.0)]  # the 3 s clip: three 1 s chunks
    assert decoded.num_tokens == decoded.token_limits and decoded.capped == [True, True]
    assert sum(finished) == 2


def test_each_clip_gets_the_tokens_it_would_get_alone(model, never_stops) -> None:
    audio, lens = two_clips()
    together = model.generate_detailed(audio, lens)
    alone = [model.generate_detailed(audio[i : i + 1, : int(n)], lens[i : i + 1]) for i, n in enumerate(lens)]
    assert together.texts == [one.texts[0] for one in alone]
    assert together.num_tokens == [one.num_tokens[0] for one in alone]


def test_the_limit_follows_max_new_tokens_per_second_and_can_be_turned_off(model, never_stops) -> None:
    audio, lens = two_clips()
    assert model.generate_detailed(audio, lens, max_new_tokens_per_second=4).num_tokens == [22, 32]
    assert model.generate_detailed(audio, lens, max_new_tokens=25).num_tokens == [25, 25]
    off = model.generate_detailed(audio, lens, max_new_tokens=50, max_new_tokens_per_second=None)
    assert off.num_tokens == [50, 50] and off.capped == [True, True]
    with pytest.raises(ValueError, match="max_new_tokens_per_second must be > 0"):
        model.generate_detailed(audio, lens, max_new_tokens_per_second=0)


def test_cached_encoder_outputs_get_the_limit_of_their_duration(model, never_stops) -> None:
    audio, lens = two_clips()
    hidden, hidden_lens = model.encoder(audio, lens)  # 50 frames per second
    decoded = model.generate_detailed(encoder_hidden=hidden, encoder_lens=hidden_lens)
    assert decoded.token_limits == [cap(0.5), cap(3.0)]


def test_a_model_that_stops_by_itself_is_not_counted(model) -> None:
    audio, lens = two_clips()
    decoded = model.generate_detailed(audio, lens, max_new_tokens=200)
    for n, limit, capped in zip(decoded.num_tokens, decoded.token_limits, decoded.capped):
        assert n <= limit and capped == (n == limit)


def test_evaluate_records_the_limit_and_the_runaways_and_shows_one_line_per_set(
    model, never_stops, tones_dir, tmp_path, capsys, caplog
) -> None:
    manifests = [tones_dir / "tones_cuts_test.jsonl.gz", tones_dir / "tones_cuts_dev.jsonl.gz"]
    with caplog.at_level(logging.WARNING):
        metrics = evaluate(model, manifests, out_dir=tmp_path / "run", device="cpu", precision="32")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["decoding"]["max_new_tokens_per_second"] == MAX_NEW_TOKENS_PER_SECOND
    assert info["capped_hypotheses"] == 12  # every clip of both sets ran to its limit
    assert metrics["num_capped_asr_en"] == 12 == metrics["num_sentences_asr_en"]
    assert "12 of 12 hypotheses" in caplog.text and "token limit" in caplog.text
    lines = capsys.readouterr().err.splitlines()
    summaries = [line for line in lines if line.startswith("evaluate tones_cuts_")]
    assert [line.split(":")[0] for line in summaries] == [f"evaluate {m.name}" for m in manifests]
    assert all(": 6 cuts in " in line for line in summaries)


def test_evaluate_on_the_command_line_takes_the_rate_and_zero_turns_it_off(
    model_dir, never_stops, tones_dir, tmp_path, capsys
) -> None:
    out = tmp_path / "run"
    manifest = str(tones_dir / "tones_cuts_test.jsonl.gz")
    argv = ["evaluate", "--model", str(model_dir), "--manifest", manifest, "--out", str(out)]
    assert (
        main([*argv, "--max-new-tokens", "6", "--max-new-tokens-per-second", "0", "--precision", "32"]) == 0
    )
    info = json.loads((out / "run.json").read_text())
    assert info["decoding"]["max_new_tokens_per_second"] is None and info["capped_hypotheses"] == 6
    assert "--max-new-tokens-per-second RATE" in _help("evaluate", capsys)


def test_transcribe_stops_runaways_warns_and_shows_one_summary_line(
    model_dir, never_stops, tones_dir, tmp_path, capsys, caplog
) -> None:
    wavs = [shutil.copy(wav, tmp_path) for wav in sorted((tones_dir / "wav").glob("*.wav"))[:3]]
    with caplog.at_level(logging.WARNING):
        code = main(["transcribe", "--model", str(model_dir), "--precision", "32", *map(str, wavs)])
    out, err = capsys.readouterr()
    assert code == 0 and sum(line.startswith(str(tmp_path)) for line in out.split("\n")) == 3
    (summary,) = [line for line in err.splitlines() if line.startswith("transcribe")]
    assert summary.startswith("transcribe: 3 files in ")
    assert "3 of 3 files stopped at their token limit" in caplog.text
    assert "default 20" in _help("transcribe", capsys)


def test_the_metric_callbacks_take_the_rate_from_the_eval_section() -> None:
    cfg = load_config(TINY_RECIPE, ["eval.asr_metrics=true", "eval.max_new_tokens_per_second=8"])
    (metrics,) = [cb for cb in default_callbacks(cfg, export=False) if isinstance(cb, ASRMetrics)]
    assert metrics.decoding["max_new_tokens_per_second"] == 8
    with pytest.raises(ConfigError, match=r"eval\.max_new_tokens_per_second=0\.0: must be > 0 or null"):
        load_config(TINY_RECIPE, ["eval.max_new_tokens_per_second=0.0"])


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())
