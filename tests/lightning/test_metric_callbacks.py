"""ASRMetrics / STMetrics inside a short fit of the tiny recipe: logged scores and run directories."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import lightning as L
import pytest
from helpers.paths import TINY_RECIPE
from lhotse import load_manifest
from lightning.pytorch.loggers import CSVLogger

from speechllm.config import load_config
from speechllm.data.datamodule import SpeechDataModule
from speechllm.lightning.metric_callbacks import ASRMetrics, STMetrics
from speechllm.lightning.module import SpeechLLMModule
from speechllm.metrics.run_report import build_report
from speechllm.metrics.wer import corpus_wer
from speechllm.model import SpeechLLM
from speechllm.rundir import read_hypotheses
from speechllm.training import train

try:  # COMET is an optional extra (the tiny_comet_dir fixture needs it)
    import comet  # noqa: F401

    HAVE_COMET = True
except ImportError:
    HAVE_COMET = False

STEPS = 2
MAX_NEW_TOKENS = 5


def _config(tiny_dirs: dict[str, Path], tones_dir: Path, out: Path, extra: list[str] = ()):
    dev = tones_dir / "tones_cuts_dev.jsonl.gz"
    test = tones_dir / "tones_cuts_test.jsonl.gz"
    return load_config(
        TINY_RECIPE,
        [
            f"output_dir={out}",
            f"model.encoder.path={tiny_dirs['tiny-random-whisper']}",
            f"model.llm.path={tiny_dirs['tiny-random-llama']}",
            f"data.train=[{{path: {tones_dir / 'tones_cuts_train.jsonl.gz'}}}]",
            # The dev set twice, once per task: validation batches mix ASR and ST rows.
            f"data.val=[{{path: {dev}, task: asr}}, {{path: {dev}, task: st}}]",
            f"data.test=[{{path: {test}, task: asr}}]",
            f"trainer.max_steps={STEPS}",
            f"trainer.val_check_interval={STEPS}",
            "trainer.limit_val_batches=null",
            "trainer.enable_progress_bar=false",
            *extra,
        ],
    )


def _logged(output_dir: Path) -> dict[str, float]:
    """The last logged value of every metric in the CSV logs under ``output_dir``."""
    values: dict[str, float] = {}
    for path in sorted(output_dir.glob("logs/version_*/metrics.csv")):
        with path.open() as handle:
            for row in csv.DictReader(handle):
                values.update({k: float(v) for k, v in row.items() if v not in ("", None)})
    return values


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory, tiny_dirs: dict[str, Path], tones_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("fit") / "run"
    cfg = _config(tiny_dirs, tones_dir, out)
    train(
        cfg, callbacks=[ASRMetrics(max_new_tokens=MAX_NEW_TOKENS), STMetrics(max_new_tokens=MAX_NEW_TOKENS)]
    )
    return out


def test_validation_scores_are_logged_per_language_and_direction(fitted: Path) -> None:
    logged = _logged(fitted)
    for name in ("val/wer_en", "val/wer_avg", "val/mean_sentence_wer_en", "val/bleu_en-de", "val/chrf_en-de"):
        assert name in logged and math.isfinite(logged[name]), name
    assert logged["val/wer_avg"] == logged["val/wer_en"]  # one language: its average is itself
    assert not any(name.startswith("val/comet") for name in logged)  # no COMET model configured


def test_validation_writes_one_run_dir_for_both_tasks(fitted: Path, tones_dir: Path) -> None:
    # The sanity check before training is not decoded: the only run directory is the one at STEPS.
    (run_dir,) = (fitted / "eval").iterdir()
    assert run_dir.name == f"val_step{STEPS:06d}"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["tasks"] == ["asr", "st"] and info["global_step"] == STEPS
    assert (info["sfm"], info["llm"], info["adapter"]) == ("whisper", "llama", "base")

    dev = {c.id: c.supervisions[0] for c in load_manifest(tones_dir / "tones_cuts_dev.jsonl.gz")}
    asr = read_hypotheses(run_dir / "hyps_asr_en.tsv")
    st = read_hypotheses(run_dir / "bleu_st_en-de.tsv")
    assert set(asr) == set(st) == set(dev)  # every dev cut, once per task
    assert all(asr[i]["reference"] == dev[i].text for i in dev)
    assert all(st[i]["reference"] == dev[i].custom["translation"] for i in dev)

    # The logged WER is the corpus WER of the written hypotheses.
    refs = [r["reference"] for r in asr.values()]
    hyps = [r["hypothesis"] for r in asr.values()]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["asr_wer_en"] == pytest.approx(corpus_wer(refs, hyps))
    assert _logged(fitted)["val/wer_en"] == pytest.approx(metrics["asr_wer_en"], rel=1e-5)
    # And `speechllm report` reads it.
    report = build_report([run_dir], run_dir / "report", n_resamples=20, plots=False)
    assert report.table3.values[("Whisper", "Llama 3.1", "Base")]["asr_wer_en"] == pytest.approx(
        metrics["asr_wer_en"]
    )


def test_test_stage_logs_and_writes_its_own_run_dir(fitted: Path, tiny_dirs, tones_dir, tmp_path) -> None:
    cfg = _config(tiny_dirs, tones_dir, tmp_path)
    model = SpeechLLM.from_pretrained(fitted / "model")
    data = SpeechDataModule(cfg.data, model.llm.prompts)
    callback = ASRMetrics(output_dir=tmp_path / "hyps", max_new_tokens=MAX_NEW_TOKENS)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=CSVLogger(tmp_path, name="logs"),
        callbacks=[callback, STMetrics(max_new_tokens=MAX_NEW_TOKENS)],  # no ST rows: logs nothing
        enable_progress_bar=False,
        use_distributed_sampler=False,
    )
    trainer.test(SpeechLLMModule(model), datamodule=data)  # the module's own test_step: the loss
    logged = _logged(tmp_path)
    assert "test/loss" in logged and "test/wer_en" in logged
    assert not any(k.startswith("test/bleu") for k in logged)
    (run_dir,) = (tmp_path / "hyps").iterdir()
    assert run_dir.name == "test_step000000"
    assert len(read_hypotheses(run_dir / "hyps_asr_en.tsv")) == 6
    assert callback.last_metrics["wer_en"] == pytest.approx(logged["test/wer_en"], rel=1e-5)


@pytest.mark.assets
@pytest.mark.skipif(not HAVE_COMET, reason="unbabel-comet not installed: pip install --no-deps unbabel-comet")
def test_st_metrics_with_comet_logs_comet_per_direction(
    fitted: Path, tiny_dirs, tones_dir, tiny_comet_dir: Path, tmp_path: Path
) -> None:
    cfg = _config(tiny_dirs, tones_dir, tmp_path)
    model = SpeechLLM.from_pretrained(fitted / "model")
    callback = STMetrics(
        output_dir=tmp_path / "hyps", max_new_tokens=MAX_NEW_TOKENS, comet_model=tiny_comet_dir
    )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=CSVLogger(tmp_path, name="logs"),
        callbacks=[callback],
        enable_progress_bar=False,
        use_distributed_sampler=False,
    )
    trainer.validate(SpeechLLMModule(model), datamodule=SpeechDataModule(cfg.data, model.llm.prompts))
    logged = _logged(tmp_path)
    (run_dir,) = (tmp_path / "hyps").iterdir()
    rows = read_hypotheses(run_dir / "hyps_st_en-de.tsv")
    scores = [r["score"] for r in rows.values()]
    assert len(scores) == 6 and all(math.isfinite(s) for s in scores)
    assert logged["val/comet_en-de"] == pytest.approx(sum(scores) / len(scores), rel=1e-5)
    assert logged["val/comet_avg"] == logged["val/comet_en-de"]
