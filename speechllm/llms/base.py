"""The LLM interface: what the rest of speechllm uses from an LLM wrapper, and nothing more.

:class:`~speechllm.llms.causal_lm.CausalLM` (Hugging Face causal LMs, optional LoRA) implements it;
another LLM is any ``nn.Module`` with these members, registered with ``@register_llm``. The
model (:mod:`speechllm.model`) embeds prompt and target ids, splices the adapter's embeddings
between them, runs the decoder stack and the LM head, and decodes greedily with :meth:`LLM.step`;
builders read the sizes and the pad id; pre-alignment scores against :meth:`LLM.input_embeddings`.

Shapes: B batch, L positions, D the LLM width (:attr:`LLM.dim`), V the vocabulary
(:attr:`LLM.vocab_size`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from torch import Tensor

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from speechllm.llms.prompts import PromptBuilder


@runtime_checkable
class LLM(Protocol):
    """A frozen causal LM (trainable LoRA aside) as the model, builders and pre-alignment use it.

    An implementation is an ``nn.Module`` (the model registers it as a submodule, and training
    reads its parameters and modules). ``isinstance(x, LLM)`` checks only that the members exist.
    """

    tokenizer: PreTrainedTokenizerBase
    """Decodes generated ids (``decode(ids, skip_special_tokens=True)``)."""

    prompts: PromptBuilder
    """Prompt (prefix/suffix) ids around the audio slot, target ids and the stop ids."""

    @property
    def dim(self) -> int:
        """The LLM width D: the adapter's output size."""
        ...

    @property
    def vocab_size(self) -> int:
        """V, the number of input-embedding rows: the CTC adapter's head size."""
        ...

    @property
    def pad_id(self) -> int:
        """Pad id, else eos id: the CTC adapter's default blank; raises ``ValueError`` if neither."""
        ...

    @property
    def max_positions(self) -> int | None:
        """The context length in positions (prompt + audio + generated tokens), or None if unbounded."""
        ...

    def embed(self, ids: Tensor) -> Tensor:
        """(B, L) long ids → (B, L, D) input embeddings."""
        ...

    def input_embeddings(self) -> Tensor:
        """The frozen (V, D) input-embedding matrix (pre-alignment scores adapter outputs against it)."""
        ...

    def hidden_states(self, embeds: Tensor, attention_mask: Tensor, position_ids: Tensor) -> Tensor:
        """Decoder stack without the LM head: (B, L, D) embeds, (B, L) long mask and positions →
        (B, L, D) last hidden states."""
        ...

    def logits(self, hidden: Tensor) -> Tensor:
        """The LM head: (..., D) hidden states → (..., V) logits."""
        ...

    def step(
        self,
        *,
        attention_mask: Tensor,
        position_ids: Tensor,
        embeds: Tensor | None = None,
        ids: Tensor | None = None,
        cache: Any = None,
    ) -> tuple[Tensor, Any]:
        """One incremental decoding call, from ``embeds`` (B, L, D) or ``ids`` (B, L), with the
        (B, L_total) attention mask so far, (B, L) positions and the previous ``cache`` →
        (logits of the last position (B, V), the new cache)."""
        ...

    def reorder_cache(self, cache: Any, rows: Tensor) -> Any:
        """The cache of the sequences ``rows`` (N,) (row indices into the cache's batch, repeats
        allowed): how beam search follows, copies and drops beams."""
        ...
