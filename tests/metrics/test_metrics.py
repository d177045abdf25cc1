"""WER normalization and variants, BLEU/chrF against sacrebleu, and the packaged paper tables."""

from __future__ import annotations

import pytest
import sacrebleu

from speechllm.metrics.bleu import corpus_bleu, corpus_chrf, sentence_bleus
from speechllm.metrics.paper import (
    ASR_LANGUAGES,
    ST_DIRECTIONS,
    canonical_adapter,
    canonical_llm,
    canonical_sfm,
    paper_compression,
    paper_result,
    paper_table1,
    paper_table3,
)
from speechllm.metrics.wer import corpus_wer, mean_sentence_wer, normalize_text, sentence_wers


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Hello, World! It's a state-of-the-art model.", "hello world it's a state of the art model"),
        ("Straße? Über „Größe“ — ÄRGER!", "straße über größe ärger"),
        ("¿Qué tal, Señor Núñez?", "qué tal señor núñez"),
        ("L’homme «aimé» : où est-il ?", "l'homme aimé où est il"),
        ("Dell'acqua, perché? È così…", "dell'acqua perché è così"),
        ("50% of $10 costs 9,99 € ♪", "50 of 10 costs 9 99"),
        ("'Quoted' rock 'n' roll", "quoted rock n roll"),
        ("  many\t spaces\n here  ", "many spaces here"),
    ],
)
def test_normalize_text(raw: str, normalized: str) -> None:
    assert normalize_text(raw) == normalized


def test_normalize_composes_decomposed_accents() -> None:
    decomposed = "Cafe\u0301 ÉTE\u0301"  # e + combining acute accent
    assert normalize_text(decomposed) == "café été"
    assert normalize_text(decomposed) == normalize_text("café été")


# Hand-computed: sentence 1 has 6 reference words, "sat"→"sit" (S) and a dropped "the" (D);
# sentence 2 has 2 reference words and one inserted "big" (I). Case and punctuation are free.
REFS = ["The cat sat on the mat.", "Hello, world!"]
HYPS = ["the cat SIT on mat", "hello big world"]


def test_corpus_wer_hand_example() -> None:
    assert corpus_wer(REFS, HYPS) == pytest.approx(100 * 3 / 8)


def test_sentence_and_mean_wer_hand_example() -> None:
    assert sentence_wers(REFS, HYPS) == pytest.approx([100 * 2 / 6, 100 * 1 / 2])
    assert mean_sentence_wer(REFS, HYPS) == pytest.approx((100 * 2 / 6 + 50.0) / 2)


def test_wer_without_normalization_counts_case_and_punctuation() -> None:
    assert sentence_wers(["Hello world."], ["hello world"], normalize=False) == pytest.approx([100.0])


def test_empty_reference_conventions() -> None:
    refs = ["", "...", "a b"]
    hyps = ["", "x y", "a b"]
    assert sentence_wers(refs, hyps) == [0.0, 100.0, 0.0]
    # The empty references add their insertions to the numerator and nothing to the denominator.
    assert corpus_wer(refs, hyps) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="every reference is empty"):
        corpus_wer(["", "?"], ["a", ""])


def test_empty_hypothesis_is_all_deletions() -> None:
    assert sentence_wers(["one two three"], [""]) == [100.0]


def test_wer_rejects_mismatched_or_string_inputs() -> None:
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        corpus_wer(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="not a single string"):
        corpus_wer("a b", "a b")


BLEU_REFS = [
    "The cat is sitting on the mat.",
    "There is a dog running in the park today.",
    "I would like a cup of coffee, please.",
]
BLEU_HYPS = [
    "The cat sits on the mat.",
    "A dog runs in the park today.",
    "I would like one cup of coffee please.",
]


def test_corpus_bleu_and_chrf_equal_sacrebleu() -> None:
    assert corpus_bleu(BLEU_REFS, BLEU_HYPS) == sacrebleu.corpus_bleu(BLEU_HYPS, [BLEU_REFS]).score
    assert corpus_chrf(BLEU_REFS, BLEU_HYPS) == sacrebleu.corpus_chrf(BLEU_HYPS, [BLEU_REFS]).score
    assert corpus_bleu(BLEU_REFS, BLEU_HYPS, tokenize="intl") == (
        sacrebleu.corpus_bleu(BLEU_HYPS, [BLEU_REFS], tokenize="intl").score
    )
    assert 0 < corpus_bleu(BLEU_REFS, BLEU_HYPS) < 100


def test_sentence_bleu_equals_sacrebleu_and_perfect_is_100() -> None:
    expected = [sacrebleu.sentence_bleu(h, [r]).score for r, h in zip(BLEU_REFS, BLEU_HYPS)]
    assert sentence_bleus(BLEU_REFS, BLEU_HYPS) == expected
    assert corpus_bleu(BLEU_REFS, BLEU_REFS) == pytest.approx(100.0)


def test_table3_has_the_papers_rows_and_best_averages() -> None:
    rows = paper_table3()
    assert len(rows) == 20
    best_st = max(rows, key=lambda r: r.scores["st_comet_avg"])
    assert (best_st.sfm, best_st.llm, best_st.adapter) == ("SeamlessM4T", "Llama 3.1", "WLQ-former")
    assert best_st.scores["st_comet_avg"] == 85.44
    best_asr = min(rows, key=lambda r: r.scores["asr_wer_avg"])
    assert (best_asr.sfm, best_asr.llm, best_asr.adapter) == ("SeamlessM4T", "Mistral", "Base")
    assert best_asr.scores["asr_wer_avg"] == 7.78


def test_table3_averages_are_means_of_their_columns() -> None:
    for row in paper_table3():
        for prefix, keys in (("st_comet", ST_DIRECTIONS), ("asr_wer", ASR_LANGUAGES)):
            mean = sum(row.scores[f"{prefix}_{k}"] for k in keys) / len(keys)
            # The paper averaged unrounded scores: its averages are within 0.05 of the rounded ones.
            assert row.scores[f"{prefix}_avg"] == pytest.approx(mean, abs=0.05), (row, prefix)


def test_table3_stars_parse_as_not_significant() -> None:
    row = next(
        r for r in paper_table3() if (r.sfm, r.llm, r.adapter) == ("SeamlessM4T", "Mistral", "WLQ-former")
    )
    assert row.not_significant == {
        "st_comet_de-en",
        "st_comet_es-en",
        "asr_wer_en",
        "asr_wer_fr",
        "asr_wer_de",
    }
    assert row.scores["st_comet_de-en"] == 84.71
    assert all(not r.not_significant for r in paper_table3() if r.adapter == "Base")


def test_paper_result_lookup_accepts_config_names() -> None:
    assert paper_result("whisper", "llama", "conv", "asr_wer_en") == 9.90
    assert paper_result("seamless", "mistral", "wlq_former", "st_comet_avg") == 85.17
    assert paper_result("Whisper", "Llama 3.1", "CTC-based", "st_comet_de-en") == 73.80
    assert paper_result("whisper", "qwen", "base", "asr_wer_en") is None
    assert paper_result("whisper", "llama", "base", "no_such_metric") is None


def test_table1_ratios_and_rates_agree_with_encoder_frame_rates() -> None:
    rows = paper_table1()
    assert len(rows) == 10
    frame_rate = {"SeamlessM4T": 6.25, "Whisper": 50.0}
    for row in rows:
        # Hz × ratio recovers the encoder's frame rate (the paper rounds ratios like ~25:1).
        assert row.sampling_rate_hz * row.compression_ratio == pytest.approx(frame_rate[row.sfm], rel=0.04)
    cif = paper_compression("whisper", "cif")
    assert cif is not None and (cif.compression_ratio, cif.sampling_rate_hz) == (25.0, 2.0)
    assert paper_compression("seamless", "base").sampling_rate_hz == 6.25


def test_canonical_names() -> None:
    assert [canonical_sfm(n) for n in ("whisper", "seamless", "Seamless", "SeamlessM4T")] == [
        "Whisper",
        "SeamlessM4T",
        "SeamlessM4T",
        "SeamlessM4T",
    ]
    assert [canonical_llm(n) for n in ("llama", "mistral", "Llama 3.1")] == [
        "Llama 3.1",
        "Mistral",
        "Llama 3.1",
    ]
    assert [canonical_adapter(n) for n in ("base", "conv", "cif", "ctc", "wlq_former")] == [
        "Base",
        "Conv-based",
        "CIF-based",
        "CTC-based",
        "WLQ-former",
    ]
    assert canonical_adapter("my_adapter") == "my_adapter"
