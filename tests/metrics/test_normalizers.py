"""Whisper's normalizers beside the paper's: the same transcript scored under each."""

from __future__ import annotations

import importlib.util

import pytest

from speechllm.errors import UsageError
from speechllm.evaluation.decoding import SentenceRecords
from speechllm.evaluation.scoring import score_group
from speechllm.metrics.normalizers import SPELLING_ENV, get_normalizer, whisper_spelling_file
from speechllm.metrics.wer import corpus_wer, sentence_wers

# Whisper's spelling table ships in openai-whisper (scripts/setup.sh installs it with --no-deps)
needs_spelling = pytest.mark.skipif(
    importlib.util.find_spec("whisper") is None, reason="pip install --no-deps openai-whisper"
)


@needs_spelling
def test_a_spoken_number_written_as_digits_is_no_error_under_whisper_english_only() -> None:
    refs, hyps = ["four queen of clubs"], ["4 queen of clubs"]
    assert corpus_wer(refs, hyps, get_normalizer("whisper_english")) == 0.0
    assert corpus_wer(refs, hyps) == 25.0  # the paper's rule keeps digits as written


@needs_spelling
def test_whisper_english_folds_spellings_and_contractions_the_paper_does_not() -> None:
    refs = ["the colour of the centre", "we will not go"]
    hyps = ["The color of the center.", "we won't go"]
    assert sentence_wers(refs, hyps, get_normalizer("whisper_english")) == [0.0, 0.0]
    assert all(wer > 0 for wer in sentence_wers(refs, hyps))


def test_whisper_basic_drops_bracketed_events_and_keeps_accented_letters() -> None:
    basic = get_normalizer("whisper_basic")
    assert basic("Très bien ! [rires]").split() == ["très", "bien"]
    assert corpus_wer(["très bien"], ["Très bien ! [rires]"], basic) == 0.0
    assert corpus_wer(["très bien"], ["Très bien ! [rires]"]) == 50.0  # "rires" is an insertion


@needs_spelling
def test_score_group_adds_the_chosen_normalizer_beside_the_papers_wer() -> None:
    records = SentenceRecords(
        "asr", "en", None, ["a", "b"], ["four queen of clubs", "ace"], ["4 queen of clubs", "ace"]
    )
    scored = score_group(records, normalizer="whisper_english")
    assert scored.metrics["asr_wer_en"] == pytest.approx(20.0)  # Table 3's column stays the paper's
    assert scored.metrics["asr_wer_whisper_english_en"] == 0.0
    assert "asr_wer_whisper_english_en" not in score_group(records).metrics


def test_an_unknown_normalizer_names_the_valid_ones() -> None:
    with pytest.raises(UsageError, match="valid normalizers: paper, whisper_english, whisper_basic"):
        get_normalizer("nemo")


def test_a_missing_spelling_table_is_a_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(SPELLING_ENV, str(tmp_path / "normalizer.json"))
    with pytest.raises(UsageError, match="normalizer.json: no such file"):
        whisper_spelling_file()
    # the hub's normalizer.json (the same table) is read when named
    (tmp_path / "normalizer.json").write_text('{"colour": "color"}')
    assert whisper_spelling_file() == tmp_path / "normalizer.json"
