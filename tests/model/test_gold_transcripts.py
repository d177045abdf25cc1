"""generate_from_transcripts: the LLM reads the given transcripts where the adapter's CTC transcript
would be, as if the adapter spelled them perfectly (the ceiling of a ``tokens`` readout model)."""

from __future__ import annotations

import pytest
import torch

from speechllm.config import load_config
from speechllm.model import SpeechLLM
from speechllm.search import DecodingOptions, greedy


def _model(overrides: list[str], readout: str) -> SpeechLLM:
    torch.manual_seed(0)
    cfg = load_config(None, [*overrides, f"model.prealign.readout={readout}"])
    return SpeechLLM.from_config(cfg.model).eval()


@torch.no_grad()
def test_the_llm_reads_the_transcripts_embeddings_between_the_prompts_halves(tiny_model_overrides) -> None:
    model = _model(tiny_model_overrides, "tokens")
    transcripts = ["hello world", "a much longer sentence than the first one"]
    decoded = model.generate_from_transcripts(
        transcripts, task="st", src_lang="de", tgt_lang="en", max_new_tokens=6
    )
    prompts, llm = model.llm.prompts, model.llm
    for text, got in zip(transcripts, decoded.texts):  # each alone, built by hand: no padding, no splice
        prefix, suffix = prompts.prompt_ids("st", "de", "en")
        ids = torch.tensor([prefix + prompts.text_ids(text) + suffix])
        mask, positions = torch.ones_like(ids), torch.arange(ids.shape[1])[None]
        (row,) = greedy(
            llm, llm.embed(ids), mask, positions, prompts.stop_ids, DecodingOptions(max_new_tokens=6)
        )
        assert got == llm.tokenizer.decode(row, skip_special_tokens=True).strip()
    assert any(decoded.num_tokens)


def test_a_model_whose_llm_reads_vectors_is_refused(tiny_model_overrides) -> None:
    model = _model(tiny_model_overrides, "frames")
    with pytest.raises(ValueError, match="readout: tokens"):
        model.generate_from_transcripts(["hello"], task="asr")
