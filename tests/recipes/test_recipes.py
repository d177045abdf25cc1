"""Every recipe config validates and builds (with tiny models swapped in), so no recipe can rot."""

from __future__ import annotations

import pytest
from helpers.paths import REPO

from speechllm.cli import main
from speechllm.config import load_config
from speechllm.model import SpeechLLM

RECIPES = REPO / "recipes"
PAIR_CONFIGS = sorted(p for p in RECIPES.glob("*_*/conf/*.yaml"))
REAL_MODELS = {
    "whisper": "openai/whisper-large-v3",
    "seamless": "facebook/seamless-m4t-v2-large",
    "llama": "meta-llama/Llama-3.1-8B-Instruct",
    "mistral": "mistralai/Mistral-7B-Instruct-v0.3",
}


def test_every_pair_has_asr_and_st_configs_and_a_run_script():
    pairs = {p.parents[1].name for p in PAIR_CONFIGS}
    assert pairs == {"whisper_llama", "whisper_mistral", "seamless_llama", "seamless_mistral"}
    for pair in pairs:
        assert {p.name for p in (RECIPES / pair / "conf").iterdir()} == {"asr.yaml", "st.yaml"}
        assert (RECIPES / pair / "run.sh").is_file() and (RECIPES / pair / "README.md").is_file()


@pytest.mark.parametrize("config", PAIR_CONFIGS, ids=lambda p: f"{p.parents[1].name}/{p.stem}")
def test_recipe_config_names_the_papers_models_and_settings(config):
    cfg = load_config(config)
    sfm, llm = config.parents[1].name.split("_")
    assert cfg.model.encoder.name == sfm and cfg.model.encoder.path == REAL_MODELS[sfm]
    assert cfg.model.llm.path == REAL_MODELS[llm]
    assert cfg.optim.lr == 1e-4 and cfg.optim.warmup_ratio == 0.03 and cfg.optim.scheduler == "cosine"
    assert cfg.model.llm.lora is None and cfg.trainer.precision == "bf16-mixed"
    assert {m.task for m in cfg.data.train} == {config.stem}
    assert (cfg.model.adapter.modality_dim, cfg.model.adapter.modality_layers) == (768, 4)
    if sfm == "whisper":
        assert cfg.model.encoder.pad_to_30s is True  # the paper's setting


@pytest.mark.parametrize("config", PAIR_CONFIGS, ids=lambda p: f"{p.parents[1].name}/{p.stem}")
def test_recipe_builds_with_tiny_models(config, tiny_dirs):
    sfm, llm = config.parents[1].name.split("_")
    cfg = load_config(
        config,
        [
            f"model.encoder.path={tiny_dirs['tiny-random-' + sfm]}",
            f"model.llm.path={tiny_dirs['tiny-random-' + llm]}",
            "model.adapter.modality_dim=32",
            "model.adapter.modality_heads=4",
            "model.adapter.modality_layers=1",
        ],
    )
    model = SpeechLLM.from_config(cfg.model)
    assert model.adapter.in_dim == model.encoder.dim and model.adapter.out_dim == model.llm.dim
    assert cfg.output_dir == f"runs/{config.parents[1].name}/{config.stem}_base"


def test_print_config_resolves_a_pair_recipe_without_loading_weights(capsys):
    config = RECIPES / "whisper_llama" / "conf" / "asr.yaml"
    assert main(["train", str(config), "--print-config", "model.adapter.name=wlq_former"]) == 0
    printed = capsys.readouterr().out
    assert "name: wlq_former" in printed and "output_dir: runs/whisper_llama/asr_wlq_former" in printed


@pytest.mark.parametrize("pair", ["whisper_llama", "whisper_mistral", "seamless_llama", "seamless_mistral"])
def test_dry_run_prints_every_stage_command_without_running_it(pair, tmp_path):
    import subprocess

    result = subprocess.run(
        ["bash", str(RECIPES / pair / "run.sh"), "--dry-run", "--task", "st", "--adapter", "ctc"],
        capture_output=True, text=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    commands = [line[2:] for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert [c.split()[1] for c in commands] == ["prepare", "cache", "train", "evaluate", "report"]
    train = commands[2]
    assert f"recipes/{pair}/conf/st.yaml model.adapter.name=ctc output_dir=runs/{pair}/st_ctc" in train
    assert "--comet-model Unbabel/wmt22-comet-da" in commands[3]
    assert not (RECIPES.parent / "runs" / pair / "st_ctc").exists()  # nothing ran
