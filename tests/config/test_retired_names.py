"""Names retired in 0.2 still work for one release, each with a warning naming the new one."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from speechllm import SpeechLLM, load_config
from speechllm.config import ConfigError
from speechllm.deprecations import SpeechLLMDeprecationWarning
from speechllm.model_dir import MODEL_CONFIG, TRAINED_WEIGHTS
from speechllm.prealign.head import PreAlignHead

TINY_RECIPE = Path("recipes/tiny/conf/asr.yaml")


def _yaml(path: Path, content: dict) -> Path:
    path.write_text(yaml.safe_dump(content))
    return path


def test_old_config_sections_are_read_under_their_new_names(tmp_path: Path) -> None:
    old = _yaml(
        tmp_path / "old.yaml",
        {
            "extends": str(TINY_RECIPE.resolve()),
            "pretrain": {"objective": "ctc", "steps": 7},
            "model": {"alignment": {"readout": "compress"}},
        },
    )
    with pytest.warns(SpeechLLMDeprecationWarning, match=r"pretrain .*use prealign") as record:
        cfg = load_config(old)
    assert any("model.alignment" in str(w.message) and "model.prealign" in str(w.message) for w in record)
    assert cfg.prealign.objective == "ctc" and cfg.prealign.steps == 7
    assert cfg.model.prealign.readout == "compress"


def test_old_section_names_in_overrides_are_renamed() -> None:
    with pytest.warns(SpeechLLMDeprecationWarning, match="command line: the config key pretrain"):
        cfg = load_config(TINY_RECIPE, ["pretrain.objective=ctc", "pretrain.steps=3"])
    assert cfg.prealign.steps == 3 and cfg.model.prealign is not None  # the stage adds its head


def test_a_file_with_both_the_old_and_the_new_name_is_refused(tmp_path: Path) -> None:
    both = _yaml(tmp_path / "both.yaml", {"pretrain": {"steps": 1}, "prealign": {"steps": 2}})
    with pytest.raises(ConfigError, match="both pretrain .*and prealign are set"):
        load_config(both)


def test_unknown_keys_are_still_refused_under_the_new_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="prealign.stepz"):
        load_config(TINY_RECIPE, ["prealign.stepz=3"])


def test_a_model_saved_before_the_rename_loads(tmp_path: Path, tiny_model_overrides: list[str]) -> None:
    cfg = load_config(TINY_RECIPE, [*tiny_model_overrides, "model.prealign.readout=frames"])
    model = SpeechLLM.from_config(cfg.model)
    with torch.no_grad():
        model.prealign.output_scale.fill_(3.5)
    directory = model.save_pretrained(tmp_path / "model")
    # Rewrite it as 0.1 wrote it: the head's section and tensors named "alignment".
    config = yaml.safe_load((directory / MODEL_CONFIG).read_text())
    config["model"]["alignment"] = config["model"].pop("prealign")
    (directory / MODEL_CONFIG).write_text(yaml.safe_dump(config))
    tensors = load_file(str(directory / TRAINED_WEIGHTS))
    old = {
        ("alignment." + k[len("prealign.") :] if k.startswith("prealign.") else k): v
        for k, v in tensors.items()
    }
    assert any(k.startswith("alignment.") for k in old)
    save_file(old, str(directory / TRAINED_WEIGHTS))
    with pytest.warns(SpeechLLMDeprecationWarning, match="model.alignment"):
        loaded = SpeechLLM.from_pretrained(directory)
    assert float(loaded.prealign.output_scale) == pytest.approx(3.5)


def test_the_old_decoder_and_preset_names_work(
    tiny_model_overrides: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPEECHLLM_CACHE", str(tmp_path))  # the tiny preset is built here, not in ~/.cache
    cfg = load_config(TINY_RECIPE, [*tiny_model_overrides, "model.prealign.readout=frames"])
    model = SpeechLLM.from_config(cfg.model).eval()
    audio, lens = torch.zeros(1, 8000), torch.tensor([8000])
    with pytest.warns(SpeechLLMDeprecationWarning, match="decoder 'alignment'.*'prealign'"):
        old = model.generate(audio, lens, decoder="alignment")
    assert old == model.generate(audio, lens, decoder="prealign")

    from speechllm.presets import resolve_model_path

    with pytest.warns(SpeechLLMDeprecationWarning, match="preset 'tiny-whisper'.*'tiny-random-whisper'"):
        path = resolve_model_path("tiny-whisper")
    assert Path(path) == Path(resolve_model_path("tiny-random-whisper")) and Path(path).is_relative_to(
        tmp_path
    )


def test_the_old_module_names_still_import() -> None:
    import speechllm.adapters.base as base_shim
    import speechllm.alignment as alignment_shim

    for shim, new in (
        (alignment_shim, "speechllm.prealign.head"),
        (base_shim, "speechllm.adapters.interface"),
    ):
        with pytest.warns(SpeechLLMDeprecationWarning, match=new):
            importlib.reload(shim)
    assert alignment_shim.AlignmentHead is PreAlignHead
    from speechllm import Adapter

    assert base_shim.Adapter is Adapter
