"""Degenerate outputs: empty, looping, prompt-copying and capped outputs are counted per group."""

from __future__ import annotations

from speechllm.evaluation.decoding import SentenceRecords
from speechllm.evaluation.scoring import score_group
from speechllm.metrics.degenerate import copies_prompt, count_degenerate, repeats_ngram

PROMPT = "Transcribe the audio in English."


def test_a_phrase_four_times_in_a_row_is_a_loop_and_three_times_is_not() -> None:
    assert repeats_ngram("the cat sat the cat sat the cat sat the cat sat".split())
    assert repeats_ngram("no no no no".split())
    assert not repeats_ngram("no no no".split())
    # the same word often, but not back to back, is speech
    assert not repeats_ngram("the cat and the dog and the bird and the fish".split())


def test_an_output_holding_the_prompt_or_a_long_piece_of_it_copies_it() -> None:
    prompt = "transcribe the audio in english".split()
    assert copies_prompt("sure transcribe the audio in english please".split(), prompt)
    assert copies_prompt("the audio in".split(), prompt)
    assert not copies_prompt("the audio".split(), prompt)  # two words: too short to tell
    assert not copies_prompt("queen of clubs".split(), prompt)


def test_count_degenerate_counts_each_kind() -> None:
    hyps = ["", "  ...  ", "go go go go go", "Transcribe the audio in English", "queen of clubs"]
    counts = count_degenerate(hyps, [PROMPT] * len(hyps), [False, False, True, False, False])
    assert (counts.empty, counts.repeating, counts.prompt_copy, counts.capped) == (2, 1, 1, 1)


def test_every_scored_group_records_its_degenerate_counts() -> None:
    records = SentenceRecords(
        "st",
        "en",
        "de",
        ["a", "b", "c"],
        ["eins", "zwei", "drei"],
        ["", "ja ja ja ja", "drei"],
        ["one", "two", "three"],
        [False, True, False],
        [PROMPT] * 3,
    )
    metrics = score_group(records).metrics
    assert metrics["num_empty_st_en-de"] == 1
    assert metrics["num_repeating_st_en-de"] == 1
    assert metrics["num_prompt_copy_st_en-de"] == 0
    assert metrics["num_capped_st_en-de"] == 1
