"""recipes/study: the cells it trains, how each is configured, resuming, and the whole pipeline in small.

The end-to-end test runs the study's own driver and report on the tiny random models (``--preset
tiny``) with a few steps per cell, on a few espeak-ng sentences (English ASR and German → English
ST): every stage the real study runs, in about two minutes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from helpers.paths import REPO
from helpers.recipe_modules import recipe_module

cells = recipe_module("study", "cells")


def _settings(tmp_path: Path, **kwargs):
    values = {"out": tmp_path / "out", "sets": tmp_path / "sets", "data": tmp_path / "data", "minutes": 5.0}
    return cells.Settings(**{**values, **kwargs})


def test_the_study_trains_two_encoders_times_five_adapters_for_asr_and_five_st_cells_on_whisper_base():
    trained = cells.study_cells()
    asr = {(c.encoder, c.adapter) for c in trained if c.task == "asr" and c.prealign}
    assert asr == {(e, a) for e in ("whisper-tiny.en", "whisper-base") for a in cells.ADAPTERS}
    assert {(c.encoder, c.adapter) for c in trained if c.task == "st"} == {
        ("whisper-base", a) for a in cells.ADAPTERS
    }
    plain = [c for c in trained if not c.prealign]
    assert [(c.encoder, c.adapter, c.task) for c in plain] == [("whisper-tiny.en", "conv", "asr")]
    names = list(cells.all_cells())
    assert len(names) == len(set(names)) == 16 + 3
    assert all(c.untrained for c in cells.floor_cells())
    # one Table 3 group per encoder; the plain and untrained cells are labelled apart from the paper's five
    assert {c.sfm_label for c in trained} == {"Whisper tiny.en", "Whisper base"}
    assert plain[0].adapter_label == "Conv-based, no pre-alignment"
    assert {c.adapter_label for c in trained if c.prealign} == {
        "Base", "CIF-based", "Conv-based", "CTC-based", "WLQ-former"
    }  # fmt: skip


def test_every_cell_config_loads_and_differs_from_the_demos_only_where_the_cell_says(tmp_path: Path):
    (tmp_path / "data" / "encoder_cache_base").mkdir(parents=True)  # only Whisper base's cache exists
    settings = _settings(tmp_path, minutes=5.0, prealign_share=0.8)
    for cell in cells.all_cells().values():
        cfg = cells.load_cell_config(cell, settings)  # validated like any training config
        assert cfg.model.adapter.name == cell.adapter
        assert cfg.model.encoder.path == cell.encoder
        assert cfg.model.llm.path == "smollm2-135m-instruct"
        assert cfg.output_dir == str(settings.cell_dir(cell) / "train")
        assert cfg.data.train[0].task == cell.task and cfg.data.train[0].path.endswith(
            f"{cell.task}_train.jsonl.gz"
        )
        assert cfg.data.get("encoder_cache") == (
            str(tmp_path / "data" / "encoder_cache_base") if cell.encoder == "whisper-base" else None
        )
        if cell.prealign:
            assert cfg.prealign.objective == "auto" and cfg.prealign.minutes == pytest.approx(4.0)
            assert (cfg.prealign.lr, cfg.prealign.warmup_steps) == (
                cells.PREALIGN_LR,
                cells.PREALIGN_WARMUP_STEPS,
            )
            assert cfg.model.prealign.copy_ratio == (0.5 if cell.task == "asr" else 0.0)
            assert cells.llm_minutes(cell, settings) == pytest.approx(1.0)
        else:  # all five minutes in the LLM stage, the adapter trained through the LLM
            assert cfg.prealign.objective == "none" and cfg.model.prealign is None
            assert cfg.optim.adapter_lr is None
            assert cells.llm_minutes(cell, settings) == pytest.approx(5.0)
    tiny = cells.load_cell_config(cells.study_cells()[0], _settings(tmp_path, preset="tiny"))
    assert (tiny.model.encoder.path, tiny.model.llm.path) == ("tiny-random-whisper", "tiny-random-llama")


def test_equal_steps_replace_the_pre_alignment_minutes_and_reach_the_cells_own_process(tmp_path: Path):
    settings = _settings(tmp_path, minutes=5.0, prealign_steps=300)
    for cell in cells.study_cells():
        cfg = cells.load_cell_config(cell, settings)
        if cell.prealign:
            assert (cfg.prealign.steps, cfg.prealign.minutes) == (300, None)
            assert cells.llm_minutes(cell, settings) == pytest.approx(1.0)
        else:
            assert cfg.prealign.objective == "none"
    rebuilt = cells._parser().parse_args(["cell", "asr_tiny.en_conv", *cells.settings_arguments(settings)])
    assert rebuilt.prealign_steps == 300
    # No pre-alignment ran yet: its measured minutes are 0, not the share of the budget.
    assert cells.prealign_minutes(cells.all_cells()["asr_tiny.en_conv"], settings) == 0.0


def test_a_finished_cell_is_skipped_and_a_failing_one_is_recorded_without_stopping_the_others(tmp_path: Path):
    settings = _settings(tmp_path)
    done, first, second = "asr_tiny.en_conv", "asr_tiny.en_cif", "asr_base_base"
    (settings.out / "cells" / done).mkdir(parents=True)
    (settings.out / "cells" / done / "done.json").write_text("{}", encoding="utf-8")
    outcomes = cells.run_all([done, first, second], settings, python=shutil.which("false"))
    assert outcomes[done] == "done earlier"
    for name in (first, second):  # both tried: the first failure did not stop the study
        assert outcomes[name].startswith("failed (exit status 1")
        assert (settings.out / "cells" / name / "failed.txt").is_file()


def test_report_columns_are_named_for_their_test_set():
    report = recipe_module("study", "report")
    assert report.set_column("asr_wer_en", "asr_test") == "asr_wer_en"
    assert report.set_column("asr_wer_en", "real_en") == "asr_wer_real-en"
    assert report.set_column("st_bleu_nl-en", "real_st") == "st_bleu_real-nl-en"
    assert report.set_column("st_chrf_de-en", "st_test") == "st_chrf_de-en"


def test_the_full_model_is_shown_beside_its_adapter_alone_on_every_set_of_the_cell():
    from speechllm.metrics.tables import RunResult

    report = recipe_module("study", "report")
    cell = cells.Cell("whisper-tiny.en", "conv", "asr")
    study = report.Study(cells={cell.name: {"cell": asdict(cell)}})
    for column, value in (("asr_wer_en", 40.0), ("asr_wer_real-en", 60.0)):  # one run directory per set
        run = RunResult(Path(column), cell.sfm_label, cells.LLM_LABEL, cell.adapter_label)
        run.scores[column] = value
        study.trained.append(run)
    study.alone[cell.name] = {"asr_wer_en": 45.0, "asr_wer_real-en": 70.0}
    study.joint[cell.name] = {"asr_wer_en": 38.0}  # joint decoding of one set only: the other is "–"
    assert "| asr_tiny.en_conv | 40.0 / 38.0 / 45.0 | 60.0 / – / 70.0 |" in report.alone_table(study)


SENTENCES = (
    ("Open the window please.", "Öffne bitte das Fenster."),
    ("We need to buy bread.", "Wir müssen Brot kaufen."),
    ("The children played football.", "Die Kinder spielten Fußball."),
    ("Please call the doctor.", "Bitte ruf den Arzt an."),
    ("The train leaves at noon.", "Der Zug fährt mittags ab."),
    ("My sister reads a book.", "Meine Schwester liest ein Buch."),
    ("It is raining today.", "Heute regnet es."),
    ("Where is the station?", "Wo ist der Bahnhof?"),
)
FEW_STEPS = (
    "prealign.minutes=null", "prealign.steps=4", "prealign.val_check_interval=2", "trainer.max_steps=3",
    "trainer.val_check_interval=2", "data.num_workers=0", "data.num_buckets=1",
    "trainer.enable_progress_bar=false", "trainer.logger=none",
)  # fmt: skip


def _run(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
def test_the_study_pipeline_on_tiny_models_writes_tables_plots_and_conclusions_and_resumes(tmp_path: Path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    from speechllm.prepare.synthetic import prepare_synthetic
    from speechllm.prepare.text_sources import TextItem

    items = [TextItem({"en": en, "de": de}, "test") for en, de in SENTENCES]
    prepare_synthetic(
        tmp_path / "data" / "synthetic", ["en", "de"], num_train=4, num_dev=2, num_test=2, items=items
    )
    sets, out = tmp_path / "sets", tmp_path / "out"
    _run("recipes/demo/subsets.py", str(tmp_path / "data"), str(sets), "--num-test", "2", "--num-dev", "2",
         "--num-st-test", "2", "--num-probe", "2")  # fmt: skip
    chosen = [
        "asr_tiny.en_base",
        "asr_tiny.en_conv",
        "st_base_cif",
        "asr_tiny.en_conv_plain",
        "asr_tiny.en_conv_untrained",
    ]
    study = ["recipes/study/cells.py", "run", "--out", str(out), "--sets", str(sets), "--minutes", "1",
             "--preset", "tiny", "--threads", "1", "--cells", *chosen]  # fmt: skip
    for item in FEW_STEPS:
        study += ["--override", item]
    first = _run(*study)
    assert f"cells: {len(chosen)} done, 0 failed" in first.stdout
    for name in chosen:
        done = json.loads((out / "cells" / name / "done.json").read_text(encoding="utf-8"))
        assert done["sets"] == (["st_test"] if name.startswith("st") else ["asr_test"])  # no real speech here
    assert (out / "cells" / "asr_tiny.en_conv" / "eval_alone" / "asr_test" / "run.json").is_file()
    assert not (out / "cells" / "asr_tiny.en_conv_plain" / "eval_alone").exists()  # nothing pre-aligned
    joint = json.loads(
        (out / "cells" / "asr_tiny.en_conv" / "eval_joint" / "asr_test" / "run.json").read_text()
    )
    assert joint["decoding"]["ctc_weight"] == cells.JOINT_CTC_WEIGHT
    assert not (out / "cells" / "asr_tiny.en_conv_plain" / "eval_joint").exists()  # no CTC head
    assert not (out / "cells" / "asr_tiny.en_conv_untrained" / "eval_joint").exists()
    again = _run(*study)  # resumes: nothing left to train
    assert again.stdout.count("done earlier, skipped") == len(chosen)
    # Cells finished before joint decoding existed get it without training again.
    shutil.rmtree(out / "cells" / "asr_tiny.en_conv" / "eval_joint")
    added = _run("recipes/study/cells.py", "joint", *study[2:])
    assert "asr_tiny.en_conv: joint decoding of asr_test" in added.stdout
    assert "asr_tiny.en_base: joint decoding done earlier" in added.stdout
    assert (out / "cells" / "asr_tiny.en_conv" / "eval_joint" / "asr_test" / "run.json").is_file()

    _run("recipes/study/report.py", str(out), "--resamples", "200")
    markdown = (out / "report.md").read_text(encoding="utf-8")
    for heading in ("## Table 3", "## Table 1", "## The paper's conclusions", "## Untrained floors"):
        assert heading in markdown
    table3 = (out / "table3.csv").read_text(encoding="utf-8")
    rows = (
        "Whisper tiny.en,SmolLM2-135M,Base",
        "Whisper tiny.en,SmolLM2-135M,Conv-based",
        "Whisper base,SmolLM2-135M,CIF-based",
        'Whisper tiny.en,SmolLM2-135M,"Conv-based, no pre-alignment"',
    )
    for row in rows:
        assert row in table3, table3
    assert "st_bleu_de-en" in table3 and "asr_wer_en" in table3
    table1 = (out / "table1.csv").read_text(encoding="utf-8")
    assert "Conv-based" in table1 and "no pre-alignment" not in table1  # Table 1: the paper's adapters
    verdicts = json.loads((out / "conclusions.json").read_text(encoding="utf-8"))
    assert [v["claim"][:3] for v in verdicts] == ["(a)", "(b)", "(c)"]
    assert all(v["verdict"] in ("held", "not held", "inconclusive") and v["evidence"] for v in verdicts)
    assert (out / "quality_by_adapter.png").is_file()

    docs = tmp_path / "docs" / "study.md"
    docs.parent.mkdir()
    results = "<!-- study results: begin -->\nSTALE RESULTS\n<!-- study results: end -->"
    docs.write_text(f"# Study\n\nintro\n\n{results}\n\nend\n")
    _run("recipes/study/report.py", str(out), "--resamples", "200", "--docs", str(docs))
    written = docs.read_text(encoding="utf-8")
    assert (
        written.startswith("# Study\n\nintro")
        and written.endswith("end\n")
        and "STALE RESULTS" not in written
    )
    assert "### Table 3" in written and "](study_quality_by_adapter.png)" in written
    assert (docs.parent / "study_quality_by_adapter.png").is_file()


def test_a_named_results_section_is_replaced_and_the_default_one_left_as_it_was(tmp_path: Path):
    report = recipe_module("study", "report")
    out = tmp_path / "out"
    out.mkdir()
    (out / "quality_by_adapter.png").write_bytes(b"png")
    docs = tmp_path / "study.md"
    minutes = "<!-- study results: begin -->\nMINUTES RUN\n<!-- study results: end -->"
    steps = "<!-- study results steps: begin -->\nSTALE\n<!-- study results steps: end -->"
    docs.write_text(f"# Study\n\n{minutes}\n\n{steps}\n\nend\n", encoding="utf-8")
    report.write_docs("## Report\n\n![q](quality_by_adapter.png)", out, docs, "steps")
    written = docs.read_text(encoding="utf-8")
    assert "MINUTES RUN" in written and "STALE" not in written and written.endswith("end\n")
    assert "### Report" in written and "](study_steps_quality_by_adapter.png)" in written
    assert (tmp_path / "study_steps_quality_by_adapter.png").read_bytes() == b"png"
    with pytest.raises(SystemExit, match="study results other: begin"):
        report.write_docs("## Report", out, docs, "other")
