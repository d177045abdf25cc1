"""The pre-alignment objective is declared by the adapter class, so a user's subclass inherits it."""

from __future__ import annotations

from pathlib import Path

import torch

from speechllm import SpeechLLM, load_config
from speechllm.adapters.cif import CIFAdapter
from speechllm.adapters.conv import ConvAdapter
from speechllm.inference import load_audio_file
from speechllm.prealign.head import resolve_objective
from speechllm.registry import ADAPTERS, register_adapter


def test_auto_reads_the_adapter_class_attribute() -> None:
    assert CIFAdapter.prealign_objective == "ce" and ConvAdapter.prealign_objective == "ctc"
    assert resolve_objective("auto", CIFAdapter) == "ce"
    assert resolve_objective("auto", ConvAdapter) == "ctc"
    assert resolve_objective("ctc", CIFAdapter) == "ctc"  # an explicit objective is kept


def test_a_user_cif_subclass_under_another_name_gets_the_cif_objective(
    tmp_path: Path, tones_dir: Path, tiny_model_overrides: list[str]
) -> None:
    with ADAPTERS.isolated():

        @register_adapter("my_integrate_and_fire")
        class MyCIF(CIFAdapter):
            """A user's CIF, registered under a name that is not "cif"."""

        cfg = load_config(
            "recipes/tiny/conf/asr.yaml",
            [
                *tiny_model_overrides,
                "model.adapter.name=my_integrate_and_fire",
                "model.prealign.readout=frames",
            ],
        )
        model = SpeechLLM.from_config(cfg.model)
        assert isinstance(model.adapter, MyCIF)
        assert resolve_objective("auto", model.adapter) == "ce"
        # Decoding the adapter alone uses the same objective.
        seen: list[str] = []
        greedy_ids = model.prealign.greedy_ids
        model.prealign.greedy_ids = lambda objective, *a: seen.append(objective) or greedy_ids(objective, *a)
        audio = load_audio_file(sorted((tones_dir / "wav").glob("*.wav"))[0])
        texts = model.eval().generate(audio[None], torch.tensor([len(audio)]), decoder="prealign")
        assert seen == ["ce"] and len(texts) == 1
