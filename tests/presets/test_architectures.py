"""The paper's four models, built on ``meta`` from the shipped configs, have their published sizes."""

from __future__ import annotations

import pytest

from speechllm.presets.architectures import (
    ARCHITECTURES,
    LLAMA_31_8B_INSTRUCT,
    MISTRAL_7B_INSTRUCT_V03,
    SEAMLESS_M4T_V2_LARGE,
    WHISPER_LARGE_V3,
    architecture_config,
    count_parameters,
    meta_causal_lm,
    meta_speech_encoder,
    meta_whole_model,
)


@pytest.mark.parametrize("name", [LLAMA_31_8B_INSTRUCT, MISTRAL_7B_INSTRUCT_V03])
def test_llms_have_their_published_parameter_counts(name):
    model = meta_causal_lm(architecture_config(name))
    assert all(p.is_meta for p in model.parameters())
    assert count_parameters(model) == pytest.approx(ARCHITECTURES[name].published_params, rel=0.005)


@pytest.mark.parametrize("name", [WHISPER_LARGE_V3, SEAMLESS_M4T_V2_LARGE])
def test_speech_models_have_their_published_totals(name):
    """Whisper large-v3 1.55 B and SeamlessM4T v2 large 2.3 B, decoder / text model / vocoder included."""
    assert count_parameters(meta_whole_model(name)) == pytest.approx(
        ARCHITECTURES[name].published_params, rel=0.005
    )


def test_whisper_large_v3_encoder_is_637m():
    """The encoder the library loads: ≈ 637 M (2 convolutions, 1500 positions, 32 layers of 1280)."""
    assert count_parameters(meta_speech_encoder(architecture_config(WHISPER_LARGE_V3))) == pytest.approx(
        637e6, rel=0.005
    )


def test_seamless_speech_encoder_is_the_whole_models_speech_encoder():
    """The encoder built alone has the parameters of the whole model's ``speech_encoder`` (635.0 M:
    the w2v-BERT 2.0 conformer, published as ~600 M, plus the intermediate FFN and length adaptor)."""
    alone = count_parameters(meta_speech_encoder(architecture_config(SEAMLESS_M4T_V2_LARGE)))
    whole = meta_whole_model(SEAMLESS_M4T_V2_LARGE)
    assert alone == count_parameters(whole.speech_encoder)
    assert alone == pytest.approx(635.0e6, rel=0.001)


def test_a_local_directory_reads_its_own_config(tiny_dirs):
    config = architecture_config(tiny_dirs["tiny-random-llama"])
    assert config.model_type == "llama" and config.hidden_size < 1000
