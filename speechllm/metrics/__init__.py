"""Evaluation: WER, BLEU/chrF, COMET, paired significance tests, the paper's tables, reports.

COMET (:mod:`speechllm.metrics.comet`) and the report's plots import their optional
dependencies lazily, so importing this package needs only the core dependencies.
"""

from speechllm.metrics.bleu import corpus_bleu, corpus_chrf, sentence_bleus
from speechllm.metrics.paper import paper_compression, paper_result, paper_table1, paper_table3
from speechllm.metrics.significance import (
    SignificanceResult,
    is_significant,
    paired_approximate_randomization,
    paired_bootstrap,
)
from speechllm.metrics.wer import corpus_wer, mean_sentence_wer, normalize_text, sentence_wers

__all__ = [
    "SignificanceResult",
    "corpus_bleu",
    "corpus_chrf",
    "corpus_wer",
    "is_significant",
    "mean_sentence_wer",
    "normalize_text",
    "paired_approximate_randomization",
    "paired_bootstrap",
    "paper_compression",
    "paper_result",
    "paper_table1",
    "paper_table3",
    "sentence_bleus",
    "sentence_wers",
]
