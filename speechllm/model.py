"""SpeechLLM: frozen speech encoder → trained adapter → frozen LLM. The whole forward pass is here.

Each example's LLM input is ``[prefix][audio embeds][suffix][target + stop]``, left-padded, so
that training and batched generation share one layout and every row ends at the same position.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from speechllm.adapters.base import Adapter, AdapterOutput, AdapterTargets
from speechllm.alignment import AlignmentHead, resolve_objective
from speechllm.builders import build_adapter, build_encoder, build_llm
from speechllm.errors import CheckpointError
from speechllm.llms.base import LLM
from speechllm.masking import pad_ids
from speechllm.model_dir import MODEL_CONFIG, TRAINED_WEIGHTS, read_model_dir, write_model_dir


class ModelInputs(Protocol):
    """What :meth:`SpeechLLM.forward` reads from a batch: :class:`speechllm.data.batch.Batch` has it
    (documented there); a plain dict with these keys is read too, absent keys as None.

    ``audio`` (B, S) and ``audio_lens`` (B,), or ``encoder_hidden`` (B, T, C) and ``encoder_lens``
    (B,) (cached encoder outputs, which skip the encoder); ``*_ids`` (B, L_*) long right-padded
    with their ``*_lens`` (B,).
    """

    audio: Tensor | None
    audio_lens: Tensor
    encoder_hidden: Tensor | None
    encoder_lens: Tensor | None
    prefix_ids: Tensor
    prefix_lens: Tensor
    suffix_ids: Tensor
    suffix_lens: Tensor
    target_ids: Tensor
    target_lens: Tensor
    transcript_ids: Tensor
    transcript_lens: Tensor


@dataclass
class SpeechLLMOutput:
    """``loss`` = LM loss on target tokens + the adapter's (already weighted) ``aux_loss``."""

    loss: Tensor
    lm_loss: Tensor
    aux_loss: Tensor | None
    stats: dict[str, Tensor] = field(default_factory=dict)
    num_target_tokens: int = 0


class SpeechLLM(nn.Module):
    """A speech encoder, an adapter and a causal LM, usable without Lightning.

    Args:
        encoder: a :class:`~speechllm.encoders.base.SpeechEncoder` (frozen).
        adapter: an :class:`~speechllm.adapters.base.Adapter` (trained).
        llm: an :class:`~speechllm.llms.base.LLM` such as
            :class:`~speechllm.llms.causal_lm.CausalLM` (frozen, optional LoRA).
        config: the model config it was built from (saved by :meth:`save_pretrained`).
    """

    def __init__(
        self, encoder: nn.Module, adapter: Adapter, llm: LLM, config: Any = None, imports: Any = ()
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.adapter = adapter
        self.llm: LLM = llm
        self.config = config
        self.imports = list(imports)  # user modules that register components; saved with the model
        # The pre-alignment head (speechllm.alignment), when the config has ``model.alignment``.
        self.alignment: AlignmentHead | None = None

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Any, imports: Any = ()) -> SpeechLLM:
        """Build from a model config ``{encoder: {name, ...}, adapter: {name, ...}, llm: {name, ...}}``.

        ``imports``: modules to import first, so that user components register themselves.
        """
        from speechllm.config import import_user_modules

        import_user_modules(list(imports))
        cfg = _to_dict(cfg)
        encoder = build_encoder(cfg["encoder"])
        llm = build_llm(cfg["llm"])
        adapter = build_adapter(cfg["adapter"], encoder, llm)
        model = cls(encoder, adapter, llm, config=cfg, imports=imports)
        if cfg.get("alignment") is not None:
            model.alignment = AlignmentHead(llm.dim, llm.vocab_size, **cfg["alignment"])
        return model

    # -- training ---------------------------------------------------------------------------------
    def encode(
        self, audio: Tensor, audio_lens: Tensor, targets: AdapterTargets | None = None
    ) -> AdapterOutput:
        """(B, S) 16 kHz audio → adapter output in the LLM's embedding space."""
        hidden, lens = self.encoder(audio, audio_lens)
        return self.adapt(hidden, lens, targets)

    def adapt(self, hidden: Tensor, lens: Tensor, targets: AdapterTargets | None = None) -> AdapterOutput:
        """Encoder outputs (B, T, C) → what the LLM reads: the adapter, then the alignment readout.

        With ``model.alignment.aux_weight`` > 0 and targets, the alignment head's CTC loss on the
        adapter's outputs, times that weight, is added to the aux loss.
        """
        adapted = self.adapter(hidden, lens, targets)
        if self.alignment is None:
            return adapted
        table = self.llm.input_embeddings()
        if targets is not None and self.alignment.aux_weight > 0:
            ctc = self.alignment.aux_weight * self.alignment.loss("ctc", adapted, targets, table)
            adapted.aux_loss = ctc if adapted.aux_loss is None else adapted.aux_loss + ctc
        return self.alignment(adapted, table)

    def adapter_outputs(
        self, batch: ModelInputs | Mapping[str, Any], targets: AdapterTargets | None = None
    ) -> AdapterOutput:
        """The adapter's own outputs for a batch (audio or cached encoder outputs), before any readout."""
        batch = _as_inputs(batch)
        if batch.encoder_hidden is not None:
            return self.adapter(batch.encoder_hidden, batch.encoder_lens, targets)
        hidden, lens = self.encoder(batch.audio, batch.audio_lens)
        return self.adapter(hidden, lens, targets)

    def forward(self, batch: ModelInputs | Mapping[str, Any]) -> SpeechLLMOutput:
        """Loss on the target tokens only (prompt, audio and padding positions are masked).

        ``batch``: a :class:`~speechllm.data.batch.Batch` (see :class:`ModelInputs`). With
        ``encoder_hidden`` set (the encoder-output cache), the encoder is skipped.
        """
        batch = _as_inputs(batch)
        targets = AdapterTargets(batch.transcript_ids, batch.transcript_lens)
        if batch.encoder_hidden is not None:
            adapted = self.adapt(batch.encoder_hidden, batch.encoder_lens, targets)
        else:
            adapted = self.encode(batch.audio, batch.audio_lens, targets)
        segments = [
            (self.llm.embed(batch.prefix_ids), batch.prefix_lens),
            (adapted.embeds, adapted.lens),
            (self.llm.embed(batch.suffix_ids), batch.suffix_lens),
            (self.llm.embed(batch.target_ids), batch.target_lens),
        ]
        embeds, attention_mask, position_ids = splice(segments)
        # Position p predicts token p+1; targets are the last target_lens positions of each row.
        total = embeds.shape[1]
        target_mask = torch.arange(total, device=embeds.device)[None, :] >= total - batch.target_lens[:, None]
        predicts_target = torch.zeros_like(target_mask)
        predicts_target[:, :-1] = target_mask[:, 1:]
        hidden = self.llm.hidden_states(embeds, attention_mask, position_ids)
        # Logits only where a target is predicted: the LM head over a large vocabulary is costly.
        logits = self.llm.logits(hidden[predicts_target]).float()
        labels = _valid_targets(batch.target_ids, batch.target_lens)
        lm_loss = F.cross_entropy(logits, labels)
        loss = lm_loss if adapted.aux_loss is None else lm_loss + adapted.aux_loss
        return SpeechLLMOutput(loss, lm_loss, adapted.aux_loss, adapted.stats, int(labels.numel()))

    # -- inference --------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        audio: Tensor | None = None,
        audio_lens: Tensor | None = None,
        task: str = "asr",
        src_lang: str | list[str] = "en",
        tgt_lang: str | list[str] | None = None,
        max_new_tokens: int = 200,
        *,
        encoder_hidden: Tensor | None = None,
        encoder_lens: Tensor | None = None,
        decoder: str = "llm",
    ) -> list[str]:
        """Greedy decoding, batched. Returns one string per clip.

        Args:
            audio: (B, S) float 16 kHz; audio_lens: (B,) samples.
            task: ``"asr"`` or ``"st"``; src_lang / tgt_lang: a code or one code per clip.
            encoder_hidden / encoder_lens: (B, T, C) / (B,) cached encoder outputs, instead of audio.
            decoder: ``"llm"``, or ``"alignment"``: the transcript read off the adapter's outputs by
                the pre-alignment head (CTC greedy, or argmax per vector for CIF), without the LLM.

        An empty batch gives ``[]``. A clip stops at a stop token or after ``max_new_tokens``.
        Nothing is truncated: if prompt + audio embeddings + ``max_new_tokens`` exceed the LLM's
        context (``max_position_embeddings``), a ``ValueError`` says by how much.
        """
        if decoder not in ("llm", "alignment"):
            raise ValueError(f"generate: unknown decoder {decoder!r}; valid: llm, alignment")
        if encoder_hidden is not None and encoder_lens is not None:
            if encoder_hidden.shape[0] == 0:
                return []
        elif audio is not None and audio_lens is not None:
            if audio.shape[0] == 0:
                return []
            encoder_hidden, encoder_lens = self.encoder(audio, audio_lens)
        else:
            raise ValueError("generate needs audio and audio_lens, or encoder_hidden and encoder_lens")
        if decoder == "alignment":
            return self._decode_alignment(encoder_hidden, encoder_lens)
        adapted = self.adapt(encoder_hidden, encoder_lens)
        batch_size = adapted.embeds.shape[0]
        src = [src_lang] * batch_size if isinstance(src_lang, str) else list(src_lang)
        tgt = [tgt_lang] * batch_size if (tgt_lang is None or isinstance(tgt_lang, str)) else list(tgt_lang)
        prompts = [self.llm.prompts.prompt_ids(task, s, t) for s, t in zip(src, tgt)]
        device = adapted.embeds.device
        prefix_ids, prefix_lens = pad_ids([p for p, _ in prompts], device)
        suffix_ids, suffix_lens = pad_ids([s for _, s in prompts], device)
        embeds, attention_mask, position_ids = splice(
            [
                (self.llm.embed(prefix_ids), prefix_lens),
                (adapted.embeds, adapted.lens),
                (self.llm.embed(suffix_ids), suffix_lens),
            ]
        )
        self._check_context(embeds.shape[1], max_new_tokens)
        return self._greedy(embeds, attention_mask, position_ids, max_new_tokens)

    def _decode_alignment(self, hidden: Tensor, lens: Tensor) -> list[str]:
        """The adapter decoded alone by the pre-alignment head: no LLM forward pass."""
        if self.alignment is None:
            raise ValueError("decoder='alignment' needs a model with model.alignment (a pre-aligned adapter)")
        objective = resolve_objective("auto", str((self.config or {}).get("adapter", {}).get("name")))
        out = self.adapter(hidden, lens)
        ids = self.alignment.greedy_ids(objective, out, self.llm.input_embeddings())
        return [self.llm.tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids]

    def _check_context(self, input_len: int, max_new_tokens: int) -> None:
        """Refuse a generation whose positions would run past the LLM's context (silent garbage)."""
        limit = self.llm.max_positions
        if limit is not None and input_len + max_new_tokens > limit:
            raise ValueError(
                f"generate: prompt + audio take {input_len} positions (longest clip of the batch) and "
                f"max_new_tokens={max_new_tokens}: {input_len + max_new_tokens} > the LLM's context of "
                f"{limit} positions (max_position_embeddings). Split long audio into shorter clips, "
                "lower max_new_tokens, or use a more compressing adapter."
            )

    def _greedy(
        self, embeds: Tensor, attention_mask: Tensor, position_ids: Tensor, max_new_tokens: int
    ) -> list[str]:
        stop_ids = torch.tensor(self.llm.prompts.stop_ids, device=embeds.device)
        batch_size = embeds.shape[0]
        finished = torch.zeros(batch_size, dtype=torch.bool, device=embeds.device)
        tokens: list[Tensor] = []
        logits, cache = self.llm.step(embeds=embeds, attention_mask=attention_mask, position_ids=position_ids)
        next_pos = position_ids[:, -1:] + 1
        for _ in range(max_new_tokens):
            next_ids = logits.argmax(-1)
            next_ids = torch.where(finished, stop_ids[0], next_ids)
            tokens.append(next_ids)
            finished |= torch.isin(next_ids, stop_ids)
            if bool(finished.all()) or len(tokens) == max_new_tokens:
                break  # (no LLM call for a token that would not be kept)
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch_size, 1)], dim=1)
            logits, cache = self.llm.step(
                ids=next_ids[:, None], attention_mask=attention_mask, position_ids=next_pos, cache=cache
            )
            next_pos = next_pos + 1
        out = torch.stack(tokens, dim=1).tolist() if tokens else [[] for _ in range(batch_size)]
        stops = set(self.llm.prompts.stop_ids)
        texts = []
        for row in out:
            cut = next((i for i, t in enumerate(row) if t in stops), len(row))
            texts.append(self.llm.tokenizer.decode(row[:cut], skip_special_tokens=True).strip())
        return texts

    # -- artefacts --------------------------------------------------------------------------------
    def trainable_state_dict(self) -> dict[str, Tensor]:
        """Only the trained parameters (adapter, LoRA, alignment head and its vocabulary): what a
        checkpoint needs."""
        state = {name: p.detach() for name, p in self.named_parameters() if p.requires_grad}
        if self.alignment is not None:  # all of it, whichever of its parameters this stage trains
            state.update({f"alignment.{k}": v.detach() for k, v in self.alignment.state_dict().items()})
        return state

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``trainable.safetensors`` + ``config.yaml`` (frozen parts are rebuilt from their paths)."""
        tensors = {k: v.contiguous().cpu() for k, v in self.trainable_state_dict().items()}
        return write_model_dir(directory, tensors, self.imports, self.config)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, trust_imports: bool | list[str] = False, **overrides: Any
    ) -> SpeechLLM:
        """Rebuild from a :meth:`save_pretrained` directory; ``overrides`` replace model config keys.

        The directory is checked before anything is built (:func:`~speechllm.model_dir.read_model_dir`);
        modules it lists under ``imports:`` are imported only with ``trust_imports`` (``True``, or
        a list of the trusted module names).
        """
        saved = read_model_dir(directory, trust_imports, overrides or None)
        try:
            model = cls.from_config(saved.model_config, imports=saved.imports)
        except (OSError, ValueError, TypeError) as err:  # a frozen part's path or option is wrong
            detail = " ".join(str(err).split())[:300]
            raise CheckpointError(
                f"{saved.directory / MODEL_CONFIG}: cannot build the model it describes ({detail})"
            ) from err
        model.load_trainable(saved.tensors, source=str(saved.directory / TRAINED_WEIGHTS))
        return model

    def load_trainable(self, tensors: dict[str, Tensor], source: str = "checkpoint") -> None:
        """Load trained parameters; the key sets must match exactly."""
        expected = self.trainable_state_dict()
        missing, unexpected = set(expected) - set(tensors), set(tensors) - set(expected)
        if missing or unexpected:
            raise CheckpointError(
                f"{source}: trained parameters do not match this model "
                f"(missing: {sorted(missing)[:5]}, unexpected: {sorted(unexpected)[:5]})"
            )
        try:  # modules may resize on load (the alignment head's vocabulary); the rest must match
            self.load_state_dict(tensors, strict=False)
        except RuntimeError as err:
            detail = " ".join(str(err).split())[:300]
            raise CheckpointError(f"{source}: trained parameters do not fit this model ({detail})") from None


def splice(segments: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor, Tensor]:
    """Concatenate each row's valid parts of several right-padded segments, then left-pad.

    Args:
        segments: ``(embeds (B, L_k, D), lens (B,))`` pairs, in order.
    Returns:
        embeds (B, L, D), attention_mask (B, L) long, position_ids (B, L) long (0 at each row's
        first real position, so left padding does not shift positions).
    """
    dtype = segments[0][0].dtype
    rows = [
        torch.cat([emb[i, : int(lens[i])].to(dtype) for emb, lens in segments], dim=0)
        for i in range(segments[0][0].shape[0])
    ]
    embeds = pad_sequence(rows, batch_first=True, padding_side="left")
    row_lens = torch.tensor([r.shape[0] for r in rows], device=embeds.device)
    total = embeds.shape[1]
    attention_mask = (torch.arange(total, device=embeds.device)[None, :] >= total - row_lens[:, None]).long()
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return embeds, attention_mask, position_ids


def _valid_targets(ids: Tensor, lens: Tensor) -> Tensor:
    """Flatten the valid target ids of each row, in row order: (sum(lens),)."""
    return ids[torch.arange(ids.shape[1], device=ids.device)[None, :] < lens[:, None]]


def _as_inputs(batch: ModelInputs | Mapping[str, Any]) -> ModelInputs:
    """A :class:`ModelInputs` as it is; a plain dict (benchmarks, older callers) read by its keys."""
    if not isinstance(batch, Mapping):
        return batch
    inputs: Any = SimpleNamespace(**{name: batch.get(name) for name in ModelInputs.__annotations__})
    return inputs


def _to_dict(cfg: Any) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return json.loads(json.dumps(cfg)) if not isinstance(cfg, dict) else cfg
