"""`speechllm evaluate`: a tiny model decodes the tone test set into a run directory the report reads."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from lhotse import load_manifest

from speechllm.audio import load_mono_16k
from speechllm.cli import main
from speechllm.config import load_config
from speechllm.errors import UsageError
from speechllm.evaluation import evaluate
from speechllm.evaluation.scoring import run_names
from speechllm.metrics.run_report import build_report
from speechllm.metrics.wer import corpus_wer, sentence_wers
from speechllm.model import SpeechLLM
from speechllm.rundir import Compression, read_compression, read_hypotheses

try:  # COMET is an optional extra (the tiny_comet_dir fixture needs it)
    import comet  # noqa: F401

    HAVE_COMET = True
except ImportError:
    HAVE_COMET = False

MAX_NEW_TOKENS = 6


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_overrides: list[str]) -> Path:
    """An untrained tiny Whisper + Base + Llama, saved like a trained one."""
    model = SpeechLLM.from_config(load_config(None, tiny_model_overrides).model)
    return model.save_pretrained(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture(scope="module")
def test_manifest(tones_dir: Path) -> Path:
    return tones_dir / "tones_cuts_test.jsonl.gz"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, model_dir: Path, test_manifest: Path) -> Path:
    """ASR then ST evaluated into one run directory."""
    out = tmp_path_factory.mktemp("runs") / "tiny_run"
    # float32: the tests below decode clips alone in float32 and compare.
    common = {"out_dir": out, "max_new_tokens": MAX_NEW_TOKENS, "device": "cpu", "precision": "32"}
    evaluate(model_dir, test_manifest, task="asr", batch_size=4, **common)
    evaluate(model_dir, test_manifest, task="st", max_duration=5.0, batch_size=None, **common)
    return out


def test_run_dir_holds_the_documented_files(run_dir: Path, test_manifest: Path) -> None:
    cuts = load_manifest(test_manifest)
    info = json.loads((run_dir / "run.json").read_text())
    assert (info["sfm"], info["llm"], info["adapter"]) == ("whisper", "llama", "base")
    assert info["tasks"] == ["asr", "st"]
    assert info["precision"] == {"precision": "32", "reason": "explicit"}
    assert info["max_new_tokens"] == MAX_NEW_TOKENS
    assert sorted(p.name for p in run_dir.glob("*.tsv")) == ["bleu_st_en-de.tsv", "hyps_asr_en.tsv"]

    asr = read_hypotheses(run_dir / "hyps_asr_en.tsv")
    st = read_hypotheses(run_dir / "bleu_st_en-de.tsv")
    # Every test cut once, with the right reference: the transcript for ASR, the translation for
    # ST (and the transcript as its source).
    assert list(asr) == [c.id for c in cuts]
    assert set(st) == {c.id for c in cuts}
    for cut in cuts:
        sup = cut.supervisions[0]
        assert asr[cut.id]["reference"] == sup.text
        assert st[cut.id]["reference"] == sup.custom["translation"]
        assert st[cut.id]["source"] == sup.text

    compression = json.loads((run_dir / "compression.json").read_text())
    assert compression["encoder_frame_rate_hz"] == 50.0
    # Base does not shorten the sequence: the adapter emits one vector per encoder frame.
    assert compression["mean_out_len"] == compression["mean_in_len"] > 0
    # The one compression.json schema (the training monitor writes the same keys).
    assert set(compression) == set(Compression(1.0, 1.0, 1.0).to_json())
    assert compression["split"] == "eval" and compression["adapter"] == "base"
    assert compression["num_utterances"] == len(cuts)  # the later (ST) evaluation's measurement
    assert read_compression(run_dir).compression_ratio == 1.0


def test_sentence_scores_agree_with_metrics(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    asr = read_hypotheses(run_dir / "hyps_asr_en.tsv")
    refs = [r["reference"] for r in asr.values()]
    hyps = [r["hypothesis"] for r in asr.values()]
    scores = [r["score"] for r in asr.values()]
    assert scores == pytest.approx(sentence_wers(refs, hyps))
    assert metrics["asr_mean_sentence_wer_en"] == pytest.approx(sum(scores) / len(scores))
    assert metrics["asr_wer_en"] == pytest.approx(corpus_wer(refs, hyps))
    assert metrics["num_sentences_asr_en"] == len(asr) == metrics["num_sentences_st_en-de"]
    for key in ("st_bleu_en-de", "st_chrf_en-de"):
        assert 0.0 <= metrics[key] <= 100.0
    assert "st_comet_en-de" not in metrics  # no COMET model given


def test_batched_hypotheses_equal_one_clip_at_a_time(run_dir: Path, model_dir: Path, test_manifest: Path):
    """Rows are decoded and written under their own ids: batching changes nothing."""
    model = SpeechLLM.from_pretrained(model_dir).eval()
    asr = read_hypotheses(run_dir / "hyps_asr_en.tsv")
    for cut in load_manifest(test_manifest):
        audio, _ = load_mono_16k(cut)
        (alone,) = model.generate(
            audio[None], audio.new_tensor([audio.shape[0]]).long(), "asr", "en", max_new_tokens=MAX_NEW_TOKENS
        )
        assert asr[cut.id]["hypothesis"] == " ".join(alone.split())


def test_report_reads_the_run_dir(run_dir: Path, tmp_path: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report = build_report([run_dir], tmp_path / "report", n_resamples=50, plots=False)
    key = ("Whisper", "Llama 3.1", "Base")
    assert report.table3.rows == [key]
    assert report.table3.values[key]["asr_wer_en"] == pytest.approx(metrics["asr_wer_en"])
    (row,) = report.table1
    assert row.compression_ratio == pytest.approx(1.0)
    assert (tmp_path / "report" / "report.md").is_file()


def test_run_names_from_config_and_overrides() -> None:
    cfg = {
        "encoder": {"name": "seamless"},
        "adapter": {"name": "wlq_former"},
        "llm": {"name": "hf_causal_lm", "path": "mistralai/Mistral-7B-Instruct-v0.3"},
    }
    assert run_names(cfg) == {"sfm": "seamless", "llm": "mistral", "adapter": "wlq_former"}
    cfg["llm"]["path"] = "/models/Meta-Llama-3.1-8B/"
    assert run_names(cfg)["llm"] == "llama"
    cfg["llm"]["path"] = "/models/smollm2-135m"
    assert run_names(cfg)["llm"] == "smollm2-135m"
    assert run_names(cfg, sfm="w", llm="l", adapter="a") == {"sfm": "w", "llm": "l", "adapter": "a"}


def test_cli_evaluate_with_labels_and_refusing_another_models_dir(
    model_dir: Path, test_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli_run"
    args = ["evaluate", "--model", str(model_dir), "--manifest", str(test_manifest), "--out", str(out)]
    args += ["--max-new-tokens", "2", "--device", "cpu", "--batch-size", "6"]
    assert main([*args, "--llm", "my-llm"]) == 0
    assert "asr_wer_en" in capsys.readouterr().out
    assert json.loads((out / "run.json").read_text())["llm"] == "my-llm"
    # The same directory, another label: refused before decoding, with the file named.
    assert main([*args, "--llm", "other-llm", "--task", "st"]) == 2
    error = capsys.readouterr().err
    assert "run.json" in error and "my-llm" in error
    assert not (out / "bleu_st_en-de.tsv").exists()


def test_st_without_translation_names_the_cut(model_dir: Path, tones_dir: Path, tmp_path: Path) -> None:
    cuts = load_manifest(tones_dir / "tones_cuts_test.jsonl.gz").subset(first=3).to_eager()
    cuts[1].supervisions[0].custom = None
    path = tmp_path / "no_translation.jsonl.gz"
    cuts.to_file(path)
    common = {"task": "st", "max_new_tokens": 2, "device": "cpu"}
    with pytest.raises(UsageError, match=rf"1 of 3 cuts .* are unusable \({cuts[1].id}:"):
        evaluate(model_dir, path, out_dir=tmp_path / "run", **common)
    assert not (tmp_path / "run").exists()  # nothing written
    metrics = evaluate(model_dir, path, out_dir=tmp_path / "allowed", allow_missing=True, **common)
    assert json.loads((tmp_path / "allowed" / "run.json").read_text())["st_skipped_cuts"] == 1
    assert sum(v for k, v in metrics.items() if k.startswith("num_sentences_st")) == 2


def test_evaluation_only_languages_are_evaluated_and_unknown_ones_refused_before_loading(
    model_dir: Path, tones_dir: Path, tmp_path: Path
) -> None:
    """nl/cs → en (the fillets set) is scored per direction; a code nobody knows fails, naming the
    cut, before the model loads (a missing model directory would fail otherwise)."""
    cuts = load_manifest(tones_dir / "tones_cuts_test.jsonl.gz").subset(first=4).to_eager()
    for cut, language in zip(cuts, ("nl", "nl", "cs", "cs")):
        cut.supervisions[0].language = language
        cut.supervisions[0].custom = {"translation": "one two", "tgt_lang": "en"}
    path = tmp_path / "nl_cs.jsonl.gz"
    cuts.to_file(path)
    common = {"task": "st", "max_new_tokens": 2, "device": "cpu"}
    metrics = evaluate(model_dir, path, out_dir=tmp_path / "run", **common)
    assert (metrics["num_sentences_st_nl-en"], metrics["num_sentences_st_cs-en"]) == (2, 2)
    assert "st_bleu_nl-en" in metrics and "st_bleu_cs-en" in metrics
    asr = evaluate(model_dir, path, out_dir=tmp_path / "asr", **{**common, "task": "asr"})
    assert asr["num_sentences_asr_nl"] == 2
    cuts[3].supervisions[0].language = "pt"
    cuts.to_file(path)
    with pytest.raises(UsageError, match=rf"nl_cs.jsonl.gz: cut '{cuts[3].id}': unknown language \('pt'"):
        evaluate(tmp_path / "no_model_here", path, out_dir=tmp_path / "refused", **common)
    assert not (tmp_path / "refused").exists()


@pytest.mark.assets
@pytest.mark.skipif(not HAVE_COMET, reason="unbabel-comet not installed: pip install --no-deps unbabel-comet")
def test_st_with_comet_writes_the_report_column(
    model_dir: Path, test_manifest: Path, tiny_comet_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "comet_run"
    metrics = evaluate(
        model_dir,
        test_manifest,
        task="st",
        out_dir=out,
        max_new_tokens=MAX_NEW_TOKENS,
        comet_model=tiny_comet_dir,
        device="cpu",
    )
    rows = read_hypotheses(out / "hyps_st_en-de.tsv")
    scores = [r["score"] for r in rows.values()]
    assert len(scores) == 6 and all(math.isfinite(s) for s in scores)
    assert metrics["st_comet_en-de"] == pytest.approx(sum(scores) / len(scores))
    report = build_report([out], tmp_path / "report", n_resamples=50, plots=False)
    (key,) = report.table3.rows
    assert report.table3.values[key]["st_comet_en-de"] == pytest.approx(metrics["st_comet_en-de"])


def test_a_shrunken_test_set_is_refused_unless_allowed_and_then_reported(
    model_dir: Path, tones_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cuts = load_manifest(tones_dir / "tones_cuts_test.jsonl.gz").subset(first=6).to_eager()
    for cut in cuts:  # each clip copied, so that two can go missing without touching the fixture
        source = Path(cut.recording.sources[0].source)
        copy = tmp_path / "audio" / source.name
        copy.parent.mkdir(exist_ok=True)
        copy.write_bytes(source.read_bytes())
        cut.recording.sources[0].source = str(copy)
    manifest = tmp_path / "cuts.jsonl.gz"
    cuts.to_file(manifest)
    for cut in list(cuts)[:2]:
        Path(cut.recording.sources[0].source).unlink()
    out = tmp_path / "run"
    args = ["evaluate", "--model", str(model_dir), "--manifest", str(manifest), "--out", str(out)]
    args += ["--max-new-tokens", "2", "--device", "cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "speechllm: error: 2 of 6 cuts in" in err and "--allow-missing" in err
    assert not (out / "run.json").exists()  # refused before anything was written

    assert main([*args, "--allow-missing"]) == 0
    captured = capsys.readouterr()
    assert re.search(r"^evaluate cuts\.jsonl\.gz: 4/6 cuts in \d+\.\d s$", captured.err, re.M), captured.err
    info = json.loads((out / "run.json").read_text())
    assert (info["asr_skipped_cuts"], info["asr_cuts"]) == (2, 6)
    report = build_report([out], tmp_path / "report", plots=False, n_resamples=10)
    assert f"- {out} (asr): 2 of 6 cuts not scored" in report.markdown


def test_beam_search_and_the_guard_are_recorded_and_reported(
    model_dir: Path, test_manifest: Path, tmp_path: Path
) -> None:
    out = tmp_path / "beam_run"
    decoding = {"num_beams": 2, "no_repeat_ngram_size": 3}
    evaluate(model_dir, test_manifest, out_dir=out, max_new_tokens=3, device="cpu", decoding=decoding)
    info = json.loads((out / "run.json").read_text())
    assert info["decoding"] == {
        "max_new_tokens": 3,
        "num_beams": 2,
        "length_penalty": 1.0,
        "no_repeat_ngram_size": 3,
        "repetition_penalty": 1.0,
        "max_new_tokens_per_second": 20.0,
        "chunk_seconds": None,
        "ctc_weight": 0.0,
        "ctc_candidates": 8,
    }
    report = build_report([out], tmp_path / "report", plots=False, n_resamples=10)
    assert f"{out}: beam 2 (length penalty 1.0), no repeated 3-grams" in report.markdown
    with pytest.raises(UsageError, match="num_beam"):
        evaluate(model_dir, test_manifest, out_dir=tmp_path / "x", device="cpu", decoding={"num_beam": 2})


def test_an_empty_manifest_or_an_unwritable_run_directory_fails_before_decoding(
    model_dir: Path, test_manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gzip

    empty = tmp_path / "empty.jsonl.gz"
    with gzip.open(empty, "wt"):
        pass
    with pytest.raises(UsageError, match=r"empty\.jsonl\.gz holds no cut"):
        evaluate(model_dir, empty, out_dir=tmp_path / "run", device="cpu")
    blocker = tmp_path / "a_file"  # a run directory under a file cannot be created, even by root
    blocker.write_text("not a directory")
    decoded: list[int] = []
    generate = SpeechLLM.generate
    monkeypatch.setattr(SpeechLLM, "generate", lambda *a, **k: decoded.append(1) or generate(*a, **k))
    with pytest.raises(UsageError, match="cannot write the run directory"):
        evaluate(model_dir, test_manifest, out_dir=blocker / "run", device="cpu", max_new_tokens=2)
    assert decoded == []  # refused before a single clip was decoded
