"""Configs: validation errors that list valid choices, overrides, user components via `imports:`."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from helpers.paths import TINY_RECIPE

from speechllm.config import ConfigError, load_config
from speechllm.model import SpeechLLM
from speechllm.registry import ADAPTERS, Registry, UnknownComponentError


def test_unknown_top_level_and_nested_keys_name_the_key_and_the_valid_ones(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  max_stepz: 3\n")
    with pytest.raises(ConfigError, match=r"trainer\.max_stepz.*valid keys at trainer: .*max_steps"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"'optimiser'.*valid keys at the top level: .*optim"):
        load_config(None, ["optimiser.lr=1"])
    with pytest.raises(ConfigError, match=r"data\.train\[0\]\.paht.*path, task, weight"):
        load_config(None, ["data.train=[{paht: x.jsonl.gz}]"])


def test_wrong_type_is_an_error():
    with pytest.raises(ConfigError, match="lr"):
        load_config(None, ["optim.lr=fast"])


def test_unknown_adapter_name_lists_the_registered_ones():
    with pytest.raises(
        ConfigError, match=r"unknown adapter 'convolution'; valid: base, cif, conv, ctc, wlq_former"
    ):
        load_config(None, ["model.adapter.name=convolution"])
    with pytest.raises(UnknownComponentError, match="valid adapters: base, cif, conv"):
        ADAPTERS.build({"name": "nope", "in_dim": 4, "out_dim": 4})


def test_unknown_component_option_lists_the_constructor_options():
    with pytest.raises(
        ConfigError, match=r"model\.adapter\.kernel: unknown option of adapter 'base'.*modality_dim"
    ):
        load_config(None, ["model.adapter.kernel=3"])
    with pytest.raises(ConfigError, match=r"model\.encoder\.pad_to_60s.*pad_to_30s"):
        load_config(None, ["model.encoder.pad_to_60s=true"])


def test_registry_rejects_a_second_class_under_a_taken_name():
    registry: Registry[object] = Registry("widget")
    registry.register("a")(int)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a")(float)
    assert registry.names() == ["a"]


def test_overrides_apply_over_the_yaml():
    cfg = load_config(TINY_RECIPE, ["model.adapter.name=conv", "optim.lr=0.5", "trainer.max_steps=7"])
    assert cfg.model.adapter.name == "conv" and cfg.optim.lr == 0.5 and cfg.trainer.max_steps == 7
    assert cfg.optim.warmup_ratio == 0.03  # the paper's default survives


USER_MODULE = '''
import torch
from speechllm import Adapter, AdapterOutput, register_adapter


@register_adapter("user_mean_pool")
class MeanPool(Adapter):
    """Averages every `stride` frames, then the shared modality adapter."""

    def __init__(self, in_dim, out_dim, stride: int = 2, **modality):
        super().__init__(in_dim, out_dim, **modality)
        self.stride = stride

    def forward(self, hidden, lens, targets=None):
        b, t, c = hidden.shape
        pad = (-t) % self.stride
        hidden = torch.nn.functional.pad(hidden, (0, 0, 0, pad)).view(b, -1, self.stride, c).mean(2)
        out_lens = (lens + self.stride - 1) // self.stride
        embeds = self.modality(hidden, out_lens)
        return AdapterOutput(embeds, out_lens, None, {"in_lens": lens, "out_lens": out_lens})
'''


def test_user_adapter_registered_in_its_own_module_is_built_from_yaml(
    tmp_path, monkeypatch, tiny_model_overrides
):
    (tmp_path / "my_speech_adapters.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yaml = tmp_path / "user.yaml"
    yaml.write_text("imports: [my_speech_adapters]\nmodel:\n  adapter: {name: user_mean_pool, stride: 4}\n")
    try:
        cfg = load_config(yaml, [o for o in tiny_model_overrides if "adapter.dropout" not in o])
        model = SpeechLLM.from_config(cfg.model)
        assert type(model.adapter).__name__ == "MeanPool" and model.adapter.stride == 4
        out = model.encode(torch.randn(1, 16000), torch.tensor([16000]))
        assert out.lens.tolist() == [13]  # 50 frames / 4, rounded up
    finally:
        sys.modules.pop("my_speech_adapters", None)


def test_missing_import_is_a_clear_error():
    with pytest.raises(ConfigError, match="cannot import 'no_such_module_xyz'"):
        load_config(None, ["imports=[no_such_module_xyz]"])


def test_imports_resolve_modules_next_to_the_config_file(tmp_path) -> None:
    (tmp_path / "beside_config_adapter.py").write_text(
        "from speechllm.adapters.base_adapter import BaseAdapter\n"
        "from speechllm.registry import register_adapter\n\n"
        "@register_adapter('beside_config')\n"
        "class BesideConfig(BaseAdapter):\n"
        "    pass\n"
    )
    config = tmp_path / "run.yaml"
    config.write_text("imports: [beside_config_adapter]\nmodel:\n  adapter:\n    name: beside_config\n")
    cfg = load_config(config)
    assert cfg.model.adapter.name == "beside_config"
    with pytest.raises(ConfigError, match=r"imports: cannot import 'not_anywhere_module'.*PYTHONPATH"):
        load_config(None, ["imports=[not_anywhere_module]"])
