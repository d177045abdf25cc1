"""The Adapter base: a subclass writes only its length stage (``compress``); the base zeroes padding
around it, runs the modality adapter and fills the common stats. And the user adapter example of
docs/adapters.md, run as written: on its own and in a training step of the tiny models."""

from __future__ import annotations

import importlib
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers.adapters import (
    IN_DIM,
    NAMES,
    OUT_DIM,
    TINY,
    build,
    garbage_padded,
    modality_input,
    random_targets,
)
from helpers.paths import REPO
from lhotse import CutSet
from omegaconf import OmegaConf

from speechllm.adapters.interface import Adapter, AdapterTargets, Compressed
from speechllm.config import load_config
from speechllm.data.dataset import SpeechDataset
from speechllm.model import SpeechLLM
from speechllm.registry import ADAPTERS

DOCS = REPO / "docs" / "adapters.md"
OWN_STATS = {"cif": {"alpha_sum"}, "ctc": {"blank_frames"}}


class ShiftedStage(Adapter):
    """Hands the modality adapter its input plus one (non-zero past ``lens``), and records it."""

    def compress(
        self, hidden: torch.Tensor, lens: torch.Tensor, targets: AdapterTargets | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.seen = hidden
        return hidden + 1.0, lens


class HalvingStage(Adapter):
    """Every other frame, with an aux loss and a stat of its own."""

    def compress(
        self, hidden: torch.Tensor, lens: torch.Tensor, targets: AdapterTargets | None = None
    ) -> Compressed:
        return Compressed(hidden[:, ::2], (lens + 1) // 2, torch.tensor(0.5), {"mine": lens * 10})


def test_the_length_stage_sees_zero_padding_and_its_own_padding_is_zeroed_after_it():
    adapter = ShiftedStage(IN_DIM, OUT_DIM, **TINY).eval()
    lens = torch.tensor([9, 4, 1])
    hidden = garbage_padded(torch.randn(3, 9, IN_DIM), lens)
    with torch.no_grad():
        stage, stage_lens, output = modality_input(adapter, hidden, lens)
    valid = (torch.arange(9)[None, :] < lens[:, None]).unsqueeze(-1)
    assert torch.equal(adapter.seen, torch.where(valid, hidden, 0.0))
    assert torch.equal(stage, torch.where(valid, hidden + 1.0, 0.0))
    assert torch.equal(stage_lens, lens) and torch.equal(output.lens, lens)
    assert set(output.stats) == {"in_lens", "out_lens"} and output.aux_loss is None
    assert torch.all(output.embeds[~valid.squeeze(-1)] == 0)


def test_a_length_stage_may_return_compressed_with_its_aux_loss_and_stats():
    adapter = HalvingStage(IN_DIM, OUT_DIM, **TINY).eval()
    lens = torch.tensor([7, 2])
    with torch.no_grad():
        output = adapter(torch.randn(2, 7, IN_DIM), lens)
    assert output.lens.tolist() == [4, 1] and output.embeds.shape == (2, 4, OUT_DIM)
    assert output.aux_loss == 0.5
    assert list(output.stats) == ["in_lens", "out_lens", "mine"]
    assert torch.equal(output.stats["in_lens"], lens) and torch.equal(output.stats["mine"], lens * 10)


def test_an_adapter_without_a_length_stage_names_itself():
    with pytest.raises(NotImplementedError, match="Adapter must implement compress"):
        Adapter(IN_DIM, OUT_DIM, **TINY)(torch.randn(1, 3, IN_DIM), torch.tensor([3]))


@pytest.mark.parametrize("name", NAMES)
def test_builtin_stats_are_the_common_ones_plus_their_own(name):
    adapter = build(name).train()
    generator = torch.Generator().manual_seed(1)
    lens = torch.tensor([30, 12])
    output = adapter(torch.randn(2, 30, IN_DIM, generator=generator), lens, random_targets(2, generator))
    assert set(output.stats) == {"in_lens", "out_lens"} | OWN_STATS.get(name, set())
    assert torch.equal(output.stats["in_lens"], lens) and torch.equal(output.stats["out_lens"], output.lens)
    assert (output.aux_loss is not None) == (name in OWN_STATS)


# ---------------------------------------------------------------- docs/adapters.md worked example


def _code_block(language: str, holding: str) -> str:
    """The first ```language block of the docs that holds the text ``holding``."""
    blocks = re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), flags=re.S)
    matching = [block for block in blocks if holding in block]
    assert matching, f"{DOCS} has no ```{language} block holding {holding!r}"
    return matching[0]


@pytest.fixture
def docs_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The docs' ``my_adapters.py`` importable from ``tmp_path``; returns the docs' ``config.yaml`` there."""
    (tmp_path / "my_adapters.py").write_text(_code_block("python", "@register_adapter("))
    (tmp_path / "config.yaml").write_text(_code_block("yaml", "# config.yaml"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_adapters", raising=False)
    yield tmp_path / "config.yaml"
    sys.modules.pop("my_adapters", None)


def test_docs_user_adapter_example_is_short_and_compresses_by_its_stride(docs_example):
    code = _code_block("python", "@register_adapter(")
    assert len(code.strip().splitlines()) <= 12  # the whole block: imports, decorator, class, methods
    cfg = OmegaConf.load(docs_example)
    for module in cfg.imports:  # what speechllm.config does with `imports:`
        importlib.import_module(module)
    adapter_cfg = OmegaConf.to_container(OmegaConf.merge(cfg.model.adapter, TINY))
    adapter = ADAPTERS.build(adapter_cfg, in_dim=IN_DIM, out_dim=OUT_DIM).eval()
    stride = cfg.model.adapter.stride
    lens = torch.tensor([13, 5, 1])
    hidden = torch.randn(3, 13, IN_DIM)
    with torch.no_grad():
        output = adapter(garbage_padded(hidden, lens, extra=6), lens)
        alone = adapter(hidden[1:2, :5], lens[1:2])
    assert output.lens.tolist() == [math.ceil(int(n) / stride) for n in lens]
    assert output.embeds.shape == (3, math.ceil(19 / stride), OUT_DIM)
    assert torch.equal(output.stats["out_lens"], output.lens)
    # Padding never changes a clip's outputs (the base zeroes it before the stage).
    torch.testing.assert_close(output.embeds[1, :2], alone.embeds[0], atol=1e-5, rtol=1e-4)


def test_docs_user_adapter_example_trains_in_the_tiny_speechllm(
    docs_example, tiny_model_overrides, tones_dir
):
    cfg = load_config(docs_example, tiny_model_overrides)
    torch.manual_seed(0)
    model = SpeechLLM.from_config(cfg.model, imports=cfg.imports)
    assert type(model.adapter).__name__ == "StackAdapter" and model.adapter.stride == 4
    cuts = CutSet.from_file(tones_dir / "tones_cuts_train.jsonl.gz").subset(first=3)
    batch = SpeechDataset(model.llm.prompts)[cuts]
    model.train()
    out = model(batch)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    missing = [n for n, p in model.adapter.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"
    frames = model.encoder.output_lengths(batch.audio_lens)
    assert out.stats["out_lens"].tolist() == [math.ceil(int(n) / 4) for n in frames]
    texts = model.eval().generate(batch.audio, batch.audio_lens, max_new_tokens=2)
    assert len(texts) == 3
