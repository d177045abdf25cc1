"""The LLM interface: CausalLM satisfies it with the documented shapes, and the rest of the package
uses exactly its members from an LLM wrapper (besides what every ``nn.Module`` has)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from helpers.paths import REPO

from speechllm.llms.base import LLM
from speechllm.llms.causal_lm import CausalLM

PACKAGE = REPO / "speechllm"


@pytest.fixture(scope="module")
def tiny_causal_lm(tiny_dirs: dict[str, Path]) -> CausalLM:
    return CausalLM(str(tiny_dirs["tiny-random-llama"]))


def interface_members() -> set[str]:
    return set(LLM.__annotations__) | {name for name in vars(LLM) if not name.startswith("_")}


def test_causal_lm_is_an_llm_and_a_module_without_the_members_is_not(tiny_causal_lm):
    assert isinstance(tiny_causal_lm, LLM)
    assert not isinstance(torch.nn.Linear(2, 2), LLM)


def test_llm_members_have_the_documented_shapes(tiny_causal_lm):
    llm = tiny_causal_lm
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    mask = torch.ones(2, 3, dtype=torch.long)
    positions = torch.arange(3).expand(2, 3)
    embeds = llm.embed(ids)
    assert embeds.shape == (2, 3, llm.dim)
    assert llm.input_embeddings().shape == (llm.vocab_size, llm.dim)
    hidden = llm.hidden_states(embeds, mask, positions)
    assert hidden.shape == (2, 3, llm.dim)
    assert llm.logits(hidden).shape == (2, 3, llm.vocab_size)
    with torch.no_grad():
        logits, cache = llm.step(embeds=embeds, attention_mask=mask, position_ids=positions)
        # One more step from ids with the cache equals the last position of one longer pass.
        next_ids = logits.argmax(-1, keepdim=True)
        longer = torch.ones(2, 4, dtype=torch.long)
        stepped, _ = llm.step(
            ids=next_ids, attention_mask=longer, position_ids=positions[:, -1:] + 1, cache=cache
        )
        full_embeds = llm.embed(torch.cat([ids, next_ids], dim=1))
        full = llm.logits(llm.hidden_states(full_embeds, longer, torch.arange(4).expand(2, 4)))
    assert logits.shape == stepped.shape == (2, llm.vocab_size)
    torch.testing.assert_close(stepped, full[:, -1], atol=1e-4, rtol=1e-4)
    assert llm.max_positions == llm.base_model.config.max_position_embeddings
    assert isinstance(llm.pad_id, int) and 0 <= llm.pad_id < llm.vocab_size
    prefix, suffix = llm.prompts.prompt_ids("asr", "en")
    assert prefix and suffix and isinstance(llm.tokenizer.decode(prefix), str)


def test_the_package_uses_exactly_the_interface_of_an_llm():
    used: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "llms":  # the implementations themselves
            continue
        for name in re.findall(r"\bllm\.([A-Za-z_]\w*)", path.read_text(encoding="utf-8")):
            used.setdefault(name, set()).add(str(path.relative_to(PACKAGE)))
    module_members = set(dir(torch.nn.Module))
    beyond = {name: sorted(paths) for name, paths in used.items() if name not in interface_members()}
    assert set(beyond) <= module_members, f"LLM members used but not in speechllm.llms.base.LLM: {beyond}"
    assert interface_members() <= set(used), f"unused LLM members: {interface_members() - set(used)}"
