"""Shared fixtures, seen by the tests in every folder: tiny random models of the real classes, a small
tone corpus, a tiny COMET model; each test's registrations undone after it. (Plain helpers: helpers/.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the test suite may reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"tiny-random-llama": dir, "tiny-random-mistral": dir, "tiny-random-whisper": dir}``, built
    from configs."""
    from speechllm.presets.tiny import TINY_PRESETS, tiny_preset_dir

    root = tmp_path_factory.mktemp("tiny_models")
    return {name: tiny_preset_dir(name, root) for name in TINY_PRESETS}


@pytest.fixture(scope="session")
def tones_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small tone-word corpus (see speechllm.prepare.tones) with train/dev/test manifests."""
    from speechllm.prepare.tones import prepare_tones

    root = tmp_path_factory.mktemp("tones")
    prepare_tones(root, num_train=24, num_dev=6, num_test=6, seed=0)
    return root


@pytest.fixture(scope="session")
def tiny_model_overrides(tiny_dirs: dict[str, Path]) -> list[str]:
    """Overrides that make any config use the tiny Whisper + tiny Llama + small adapter."""
    return [
        "model.encoder.name=whisper",
        f"model.encoder.path={tiny_dirs['tiny-random-whisper']}",
        "model.encoder.pad_to_30s=false",
        "model.llm.name=hf_causal_lm",
        f"model.llm.path={tiny_dirs['tiny-random-llama']}",
        "model.adapter.modality_dim=32",
        "model.adapter.modality_heads=4",
        "model.adapter.modality_layers=1",
        "model.adapter.dropout=0.0",
    ]


@pytest.fixture(scope="module")
def monkeypatch_module():
    """A module-wide ``monkeypatch``, offline for Hugging Face."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        yield patch


@pytest.fixture(scope="module")
def tiny_comet_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch) -> Path:
    """A tiny random COMET model directory built offline (needs the optional unbabel-comet)."""
    from helpers.comet import build_tiny_comet

    return build_tiny_comet(tmp_path_factory.mktemp("tiny_comet"))


@pytest.fixture(autouse=True)
def _restore_registries():
    """Components a test registers (user adapters from docs or YAML) do not leak into other tests."""
    from speechllm.registry import ADAPTERS, ENCODERS, LLMS

    with ADAPTERS.isolated(), ENCODERS.isolated(), LLMS.isolated():
        yield
