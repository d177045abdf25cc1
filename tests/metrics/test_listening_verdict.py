"""The listening check's numbers and its verdict in words."""

from __future__ import annotations

import pytest

from speechllm.metrics.listening import listening_scores, listening_verdict, unchanged_share

REFS = ["ace of spades", "two of hearts", "queen of clubs", "king of diamonds"]


def test_a_model_that_says_the_same_whatever_the_audio_is_flagged_as_not_listening() -> None:
    same = ["hello there"] * 4
    record = listening_scores(REFS, same, same, same)
    assert record["unchanged_swapped"] == 1.0 == record["unchanged_silence"]
    flagged, words = listening_verdict(record)
    assert flagged and words.startswith("NOT LISTENING") and "ignores the audio" in words


def test_outputs_that_change_but_are_no_closer_with_the_right_audio_are_flagged() -> None:
    record = listening_scores(
        REFS, ["a b c", "d e f", "g h i", "j k l"], ["d e f", "g h i", "j k l", "a b c"]
    )
    assert record["unchanged_swapped"] == 0.0
    flagged, words = listening_verdict(record)
    assert flagged and words.startswith("NOT FOLLOWING THE AUDIO")


def test_a_model_right_with_its_audio_and_wrong_with_another_listens() -> None:
    swapped = REFS[1:] + REFS[:1]
    record = listening_scores(REFS, REFS, swapped, [""] * 4)
    assert record["wer_true"] == 0.0 and record["wer_swapped"] > 50
    assert record["wer_silence"] == 100.0
    flagged, words = listening_verdict(record)
    assert not flagged and words.startswith("listening")


def test_unchanged_share_compares_after_normalization() -> None:
    assert unchanged_share(["Hello, there!", "a"], ["hello there", "b"]) == 0.5
    with pytest.raises(ValueError):
        unchanged_share([], [])


@pytest.mark.parametrize(
    ("true", "swapped", "flagged"),
    [
        (238.5, 252.6, True),  # the demo's untrained model: 14 points apart, both far above 100 %
        (48.5, 121.6, False),  # the demo's trained model on synthetic speech
        (76.3, 155.6, False),  # ... and on real recorded speech
        (30.0, 38.0, True),  # under 10 points apart
    ],
)
def test_the_right_audio_must_beat_another_clips_by_10_points_and_a_quarter(
    true: float, swapped: float, flagged: bool
) -> None:
    record = {"clips": 20, "unchanged_swapped": 0.0, "wer_true": true, "wer_swapped": swapped}
    assert listening_verdict(record)[0] is flagged
