"""LLM wrappers; importing this package registers them."""

from speechllm.llms.base import LLM
from speechllm.llms.causal_lm import CausalLM
from speechllm.llms.prompts import PromptBuilder, PromptConfig

__all__ = ["LLM", "CausalLM", "PromptBuilder", "PromptConfig"]
