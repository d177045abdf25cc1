"""A frozen Hugging Face causal LM (optionally with LoRA) with its tokenizer and prompt builder: the
built-in implementation of the :class:`~speechllm.llms.base.LLM` interface."""

from __future__ import annotations

import inspect
from typing import Any

from torch import Tensor, nn

from speechllm.dtypes import resolve_dtype
from speechllm.llms.prompts import PromptBuilder, PromptConfig
from speechllm.registry import register_llm


@register_llm("hf_causal_lm")
class CausalLM(nn.Module):
    """``AutoModelForCausalLM`` + tokenizer from a hub name, a local dir or a GGUF file.

    The LLM is frozen (``requires_grad=False``); with ``lora`` set, peft LoRA matrices are added
    and are the only trainable LLM parameters.

    Args:
        path: hub name (``meta-llama/Llama-3.1-8B-Instruct``) or local directory (a preset name is
            resolved by :mod:`speechllm.builders`).
        gguf_file: a GGUF file inside ``path`` to load (dequantized) instead of safetensors.
        dtype: weights' dtype for the frozen model (``float32``, ``bfloat16``, ``float16``).
        lora: ``{r, alpha, dropout, target_modules}`` or None (the paper trains the adapter alone).
        prompt: :class:`PromptConfig` options (system prompt, instruction paraphrases).
        gradient_checkpointing: recompute LLM activations in backward (saves memory).
        attn_implementation: passed to transformers (``sdpa``, ``eager``, ``flash_attention_2``).
    """

    def __init__(
        self,
        path: str,
        *,
        gguf_file: str | None = None,
        dtype: str = "float32",
        lora: dict[str, Any] | None = None,
        prompt: dict[str, Any] | None = None,
        gradient_checkpointing: bool = False,
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        local = str(path)
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(local, **extra)
        model = AutoModelForCausalLM.from_pretrained(
            local, dtype=resolve_dtype(dtype, "llm dtype"), attn_implementation=attn_implementation, **extra
        )
        model.requires_grad_(False)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.lora_config = dict(lora) if lora else None
        if self.lora_config:
            model = add_lora(model, self.lora_config)
        self.model = model
        self.prompt_config = PromptConfig(**(prompt or {}))
        self.prompts = PromptBuilder(self.tokenizer, self.prompt_config, stop_ids=self._stop_ids())
        self._cache_kw = (
            "cache"
            if "cache" in inspect.signature(self.base_model.forward).parameters
            else ("past_key_values")
        )

    @property
    def base_model(self) -> nn.Module:
        """The ``*ForCausalLM`` module (unwrapped from peft)."""
        return self.model.get_base_model() if self.lora_config else self.model

    # -- the LLM interface (speechllm.llms.base.LLM) ------------------------------------------------
    @property
    def dim(self) -> int:
        """The hidden size D."""
        return int(self.base_model.config.hidden_size)

    @property
    def vocab_size(self) -> int:
        """Rows of the input-embedding matrix V (may exceed the tokenizer's length: padded tables)."""
        return int(self.base_model.get_input_embeddings().num_embeddings)

    @property
    def max_positions(self) -> int | None:
        """The config's ``max_position_embeddings``, read on each call (None if it has none)."""
        limit = getattr(self.base_model.config, "max_position_embeddings", None)
        return int(limit) if limit is not None else None

    @property
    def pad_id(self) -> int:
        """Pad id, else eos: also the CTC adapter's default blank.

        Raises:
            ValueError: the tokenizer has neither (the CTC adapter then needs ``blank_id`` set).
        """
        pad = self.tokenizer.pad_token_id
        pad = pad if pad is not None else self.tokenizer.eos_token_id
        if pad is None:
            raise ValueError(
                f"{self.tokenizer.name_or_path}: the tokenizer has neither a pad nor an eos token, so there "
                "is no default CTC blank; set model.adapter.blank_id to a token id of its vocabulary"
            )
        return int(pad)

    def embed(self, ids: Tensor) -> Tensor:
        """(B, L) ids → (B, L, D) input embeddings."""
        return self.base_model.get_input_embeddings()(ids)

    def input_embeddings(self) -> Tensor:
        """The (V, D) input-embedding matrix (frozen; pre-alignment scores against its rows)."""
        return self.base_model.get_input_embeddings().weight

    def hidden_states(self, embeds: Tensor, attention_mask: Tensor, position_ids: Tensor) -> Tensor:
        """Decoder stack without the LM head: (B, L, D) embeds → (B, L, D) last hidden states."""
        decoder = self.base_model.get_decoder()
        out = decoder(
            inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        )
        return out.last_hidden_state

    def logits(self, hidden: Tensor) -> Tensor:
        """(..., D) hidden states → (..., V) logits."""
        return self.base_model.get_output_embeddings()(hidden)

    def step(
        self,
        *,
        attention_mask: Tensor,
        position_ids: Tensor,
        embeds: Tensor | None = None,
        ids: Tensor | None = None,
        cache: Any = None,
    ) -> tuple[Tensor, Any]:
        """One incremental decoding call; returns (logits of the last position (B, V), new cache)."""
        kwargs = {self._cache_kw: cache} if cache is not None else {}
        out = self.model(
            input_ids=ids,
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            logits_to_keep=1,
            **kwargs,
        )
        new_cache = getattr(out, "cache", None)
        if new_cache is None:
            new_cache = out.past_key_values
        return out.logits[:, -1], new_cache

    def reorder_cache(self, cache: Any, rows: Tensor) -> Any:
        """The cache rows ``rows`` (N,), in that order (beam search); transformers' caches do it."""
        if hasattr(cache, "reorder_cache"):
            cache.reorder_cache(rows)
            return cache
        # Legacy tuple caches: ((key, value) per layer), batch first.
        return tuple(tuple(t.index_select(0, rows.to(t.device)) for t in layer) for layer in cache)

    def train(self, mode: bool = True) -> CausalLM:
        # The frozen LLM stays in eval mode (no dropout) unless LoRA is trained.
        super().train(mode)
        if not self.lora_config:
            self.model.eval()
        return self

    def _stop_ids(self) -> list[int]:
        ids = [self.tokenizer.eos_token_id]
        # Chat models end a turn with their own token (Llama 3: <|eot_id|>; ChatML: <|im_end|>).
        for token in ("<|eot_id|>", "<|im_end|>", "<|end|>", "</s>"):
            tid = self.tokenizer.convert_tokens_to_ids(token)
            unk = self.tokenizer.unk_token_id
            if isinstance(tid, int) and tid != unk and tid not in ids and tid < self.vocab_size:
                ids.append(tid)
        return [i for i in ids if i is not None]


def add_lora(model: nn.Module, options: dict[str, Any]) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    valid = {"r", "alpha", "dropout", "target_modules"}
    unknown = set(options) - valid
    if unknown:
        raise ValueError(f"unknown lora option(s) {sorted(unknown)}; valid: {sorted(valid)}")
    config = LoraConfig(
        r=int(options.get("r", 8)),
        lora_alpha=int(options.get("alpha", 16)),
        lora_dropout=float(options.get("dropout", 0.05)),
        target_modules=list(options.get("target_modules", ["q_proj", "v_proj"])),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)
