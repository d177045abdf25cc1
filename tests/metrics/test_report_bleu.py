"""Table 3 without a COMET model: ST BLEU and chrF columns read from ``bleu_st_*.tsv``; reference rows
never marked best; the clips each column rests on; Table 1's adapter outputs beside what the LLM reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speechllm.metrics.bleu import corpus_chrf, sentence_chrfs
from speechllm.metrics.paper import paper_compression, sfm_family
from speechllm.metrics.run_report import load_run
from speechllm.metrics.table_output import table1_markdown, table3_markdown
from speechllm.metrics.tables import compute_table1, compute_table3
from speechllm.rundir import Compression, write_compression

REFERENCES = ["the cat sat on the mat", "open the window please", "we need bread and milk", "call me later"]
HYPOTHESES = {  # adapter → its translations of REFERENCES
    "base": ["the cat sat on the mat", "open the window", "we need bread", "call me"],
    "conv": ["a cat", "open it", "bread", "call"],
    "untrained": ["hello", "hello", "hello", "hello"],
}


def _run_dir(root: Path, adapter: str) -> Path:
    """An ST run directory as ``speechllm evaluate`` writes it without COMET, plus an ASR column."""
    run_dir = root / adapter
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(
        json.dumps({"sfm": "Whisper base", "llm": "SmolLM2", "adapter": adapter})
    )
    hyps = HYPOTHESES[adapter]
    bleu = [100.0 * (h == r) for r, h in zip(REFERENCES, hyps)]  # any per-sentence score
    lines = ["id\treference\thypothesis\tscore"] + [
        f"s{i}\t{r}\t{h}\t{b}" for i, (r, h, b) in enumerate(zip(REFERENCES, hyps, bleu))
    ]
    (run_dir / "bleu_st_de-en.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    wer = {"base": 10.0, "conv": 30.0, "untrained": 5.0}[adapter]  # the floor scores best on purpose
    asr = ["id\treference\thypothesis\tscore"] + [f"a{i}\tr\th\t{wer}" for i in range(3)]
    (run_dir / "hyps_asr_en.tsv").write_text("\n".join(asr) + "\n", encoding="utf-8")
    metrics = {
        "st_bleu_de-en": 42.0 if adapter == "base" else 7.0,
        "st_chrf_de-en": corpus_chrf(REFERENCES, hyps),
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    out_len = {"base": 100.0, "conv": 25.0, "untrained": 25.0}[adapter]
    write_compression(
        run_dir, Compression(50.0, 100.0, out_len, mean_read_len=5.0 if adapter == "base" else None)
    )
    return run_dir


@pytest.fixture
def runs(tmp_path: Path):
    return [load_run(_run_dir(tmp_path, adapter), bleu=True) for adapter in HYPOTHESES]


def test_bleu_and_chrf_columns_come_from_the_bleu_files(runs) -> None:
    base = runs[0]
    assert set(base.scores) == {"st_bleu_de-en", "st_chrf_de-en", "asr_wer_en"}
    assert base.scores["st_bleu_de-en"] == 42.0  # the corpus score of metrics.json
    assert base.sentence_scores["st_bleu_de-en"]["s0"] == 100.0
    chrfs = sentence_chrfs(REFERENCES, HYPOTHESES["base"])
    assert list(base.sentence_scores["st_chrf_de-en"].values()) == chrfs and chrfs[0] == 100.0
    assert "st_bleu_de-en" not in load_run(base.run_dir).scores  # only when asked


def test_table3_shows_bleu_chrf_then_wer_with_the_clips_and_no_best_mark_on_references(runs) -> None:
    table = compute_table3(runs, reference_adapters={"untrained"})
    assert table.columns == [
        "st_bleu_de-en", "st_bleu_avg", "st_chrf_de-en", "st_chrf_avg", "asr_wer_en", "asr_wer_avg",
    ]  # fmt: skip
    markdown = table3_markdown(table, with_paper=False, clips=True)
    header, _, base_row, _, floor_row, clips = markdown.splitlines()
    assert "ST BLEU ↑ de-en" in header and "ST chrF ↑ de-en" in header and "ASR WER ↓ en" in header
    assert "**42.00**" in base_row
    # the floor's WER (5.0) is the lowest, but a reference row is never marked best: Base's 10.00 is
    assert "| 5.00" in floor_row and "**5.00**" not in floor_row and "**10.00**" in base_row
    assert clips == "| clips | | | 4 |  | 4 |  | 3 |  |"


def test_table1_keeps_the_adapters_own_outputs_beside_what_the_llm_reads(runs) -> None:
    rows = {r.adapter: r for r in compute_table1(runs)}
    base = rows["Base"]
    assert (base.adapter_compression_ratio, base.adapter_output_hz) == (1.0, 50.0)
    assert (base.compression_ratio, base.output_hz) == (20.0, 2.5)  # the readout: 5 vectors of 100 frames
    assert (base.paper_compression_ratio, base.paper_output_hz) == (1.0, 50.0)  # Whisper base is a Whisper
    markdown = table1_markdown(list(rows.values()), adapter_outputs=True)
    assert "ratio (adapter outputs) | Hz (adapter outputs) | ratio (LLM reads)" in markdown
    assert "| Whisper base | Base | SmolLM2 | 1.0:1 | 50.00 | 20.0:1 | 2.50 | 1:1 | 50.00 |" in markdown
    assert "adapter outputs" not in table1_markdown(list(rows.values())).splitlines()[0]


def test_table1_compares_every_size_of_an_encoder_family_with_the_papers_row() -> None:
    names = ("Whisper tiny.en", "whisper-base", "seamless", "tiny-random-whisper")
    assert [sfm_family(n) for n in names] == ["Whisper", "Whisper", "SeamlessM4T", "tiny-random-whisper"]
    assert paper_compression("Whisper tiny.en", "conv").compression_ratio == 4.0
    assert paper_compression("tiny-random-whisper", "conv") is None
