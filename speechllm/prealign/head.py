"""Pre-alignment: score an adapter's outputs against the LLM's own frozen input embeddings.

Trained through the LLM from random initialisation, an adapter needs thousands of clips before
the audio steers the output, each a forward and backward pass through every LLM layer. The
:class:`PreAlignHead` removes that wall: it treats the LLM's input-embedding matrix ``E`` as the
output layer of a recognizer over the adapter's vectors, so the adapter learns *where the LLM's
words live* without any LLM forward pass::

    logits[b, t] = s · cos(x[b, t], [blank; E[vocab]])        s = exp(log_scale), learned

Objectives (:data:`OBJECTIVES`):

- ``ctc``: CTC over those logits against the LLM-tokenized transcript (frame-rate adapters:
  Base, Conv, CTC; any adapter whose outputs outnumber the transcript's tokens);
- ``ce``: cross-entropy of each output vector against its token (CIF, which emits exactly one
  vector per transcript token in training).

After pre-alignment the head also decides what the LLM reads (``readout``):

- ``frames``: the adapter's outputs, times ``output_scale`` (set at the end of pre-alignment so
  their RMS matches the embedding rows');
- ``compress``: runs of frames with the same label averaged, blank runs dropped (the paper's CTC
  compression, on the pre-aligned head): about one vector per token;
- ``mix``: as ``compress``, each run then replaced by the posterior-weighted mix of the token
  embeddings (posterior at ``mix_temperature``), so the LLM reads vectors that lie exactly in its
  input-embedding space;
- ``tokens``: as ``compress``, each run then replaced by the embedding of its most likely token
  (the CTC transcript, as text); gradients reach the adapter through the posterior
  (straight-through), so the LLM stage still trains it.

An adapter that emits fewer vectors than its transcripts have tokens (the WLQ-former: 3.3 a
second, against about 4 tokens a second of speech) cannot meet CTC: a labelling longer than its
frames has no path. ``upsample: U`` lets each vector spell up to U labels: the head scores U
learned linear maps of it (initialised as random rotations), in order, as U consecutive frames. The
CTC loss, the adapter decoded alone, joint CTC decoding and the ``compress`` / ``mix`` / ``tokens``
readouts all read those U·T frames; the ``frames`` readout still gives the LLM the adapter's T
vectors, so the adapter's own compression is what the LLM reads.

Shapes: B batch, T adapter frames, D LLM width, K vocabulary kept (``vocab_ids``), K+1 with blank.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechllm.adapters.ctc import ctc_compress
from speechllm.adapters.interface import AdapterOutput, AdapterTargets
from speechllm.adapters.vocabulary import class_index, kept_ids, to_classes
from speechllm.masking import lengths_to_mask

OBJECTIVES = ("ctc", "ce")
READOUTS = ("frames", "compress", "mix", "tokens")
BLANK = 0  # index of the blank among the head's K+1 classes
# Head options that shape what pre-alignment learns; the others only shape the LLM stage, so a run
# starting from another's pre-alignment (prealign.init) may change them.
PREALIGNMENT_OPTIONS = ("vocab", "init_scale", "upsample")


def resolve_objective(objective: str, adapter: Any) -> str:
    """``auto`` → the adapter's own ``prealign_objective`` (a class attribute its subclasses inherit:
    ``ce`` for CIF, which emits one vector per token in training; ``ctc`` for the others)."""
    if objective == "auto":
        return str(getattr(adapter, "prealign_objective", "ctc"))
    return objective


class PreAlignHead(nn.Module):
    """Cosine classifier over the LLM's frozen input embeddings, plus a learned blank.

    The embedding matrix is not stored here (it is the LLM's); every call takes it as ``table``
    (V, D). Saved with the model: ``blank``, ``log_scale``, ``output_scale`` and the ``vocab_ids``
    buffer (resized on load, so a restricted vocabulary round-trips).

    Args:
        dim: LLM width D.
        vocab_size: LLM vocabulary size V (all ids kept until :meth:`set_vocab`).
        readout: what the LLM reads (see the module docstring): ``frames``, ``compress``, ``mix``,
            ``tokens``.
        vocab: ``transcripts`` (pre-alignment keeps the token ids of the training transcripts) or
            ``all`` (the whole vocabulary).
        init_scale: initial inverse temperature s of the cosine logits.
        mix_temperature: softmax temperature of the ``mix`` readout's posterior (below 1: sharper).
        aux_weight: weight of the CTC loss kept on as an auxiliary loss in the LLM stage (0: off).
        transcript_ratio: with the ``tokens`` readout, the fraction of LLM-stage training clips
            whose readout is replaced by their own transcript's token embeddings (text injection):
            what the LLM reads is then exactly what it must write, which teaches LoRA to copy
            the readout instead of completing it (0: off).
        matmul_dtype: dtype of the cosine matmul (``float32``; ``bfloat16``: faster on CPUs and
            GPUs with bf16 units, cosines rounded to 8 bits of mantissa; softmax and loss stay fp32).
        copy_ratio: with the ``tokens`` readout, the fraction of LLM-stage training clips whose
            *target* is replaced by the CTC transcript the LLM reads (plus the stop id): the LLM
            learns to copy what it reads, stopping where it ends, unless the other clips' targets
            (the references) make a correction more likely (0: off).
        upsample: U ≥ 1 labels each adapter vector may spell (see the module docstring; 1: off).
    """

    def __init__(
        self,
        dim: int,
        vocab_size: int,
        *,
        readout: str = "frames",
        vocab: str = "transcripts",
        init_scale: float = 20.0,
        mix_temperature: float = 1.0,
        aux_weight: float = 0.0,
        transcript_ratio: float = 0.0,
        copy_ratio: float = 0.0,
        matmul_dtype: str = "float32",
        upsample: int = 1,
    ) -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"model.prealign.readout: unknown {readout!r}; valid: {', '.join(READOUTS)}")
        if vocab not in ("transcripts", "all"):
            raise ValueError(f"model.prealign.vocab: unknown {vocab!r}; valid: transcripts, all")
        if init_scale <= 0:
            raise ValueError(f"model.prealign.init_scale must be > 0, got {init_scale}")
        self.readout = readout
        self.vocab = vocab
        self.aux_weight = aux_weight
        if mix_temperature <= 0:
            raise ValueError(f"model.prealign.mix_temperature must be > 0, got {mix_temperature}")
        self.mix_temperature = mix_temperature
        for name, ratio in (("transcript_ratio", transcript_ratio), ("copy_ratio", copy_ratio)):
            if not 0.0 <= ratio <= 1.0:
                raise ValueError(f"model.prealign.{name} must be in [0, 1], got {ratio}")
            if ratio > 0 and readout != "tokens":
                raise ValueError(f"model.prealign.{name} needs readout: tokens (the transcript it uses)")
        self.transcript_ratio = transcript_ratio
        self.copy_ratio = copy_ratio
        if matmul_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"model.prealign.matmul_dtype: {matmul_dtype!r}; valid: float32, bfloat16")
        self.matmul_dtype = getattr(torch, matmul_dtype)
        if not isinstance(upsample, int) or upsample < 1:
            raise ValueError(f"model.prealign.upsample must be an integer ≥ 1, got {upsample!r}")
        self.upsample = upsample
        # U maps of each vector, one per label it may spell: random rotations, so that the U frames of
        # one vector start apart (near-identical maps start as one label U times, which CTC merges,
        # and a toy sequence then learned the wrong order; tests/prealign/test_prealign_upsample.py).
        self.splits = (
            nn.Parameter(torch.stack([nn.init.orthogonal_(torch.empty(dim, dim)) for _ in range(upsample)]))
            if upsample > 1
            else None
        )
        self.blank = nn.Parameter(torch.randn(dim) / math.sqrt(dim))
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.output_scale = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("vocab_ids", torch.arange(vocab_size))
        self.register_buffer("_index", torch.arange(vocab_size) + 1, persistent=False)
        self.train_for_llm_stage()

    def train_for_llm_stage(self) -> None:
        """Train (``requires_grad``) only the parameters the LLM stage's loss reaches.

        The readout reaches ``output_scale`` (frames, compress) or ``log_scale`` (mix, tokens: the
        posterior's temperature); the CTC auxiliary loss (``aux_weight`` > 0) reaches ``blank`` and
        ``log_scale``. A parameter no loss reaches must not be trained: DDP would wait for its
        gradient. (:class:`~speechllm.prealign.module.PreAlignModule` sets its own.)
        """
        used = {"output_scale"} if self.readout in ("frames", "compress") else {"log_scale"}
        if self.upsample > 1 and self.readout != "frames":  # the readout reads the split frames
            used |= {"splits"}
        if self.aux_weight > 0:
            used |= {"blank", "log_scale"} | ({"splits"} if self.upsample > 1 else set())
        for name, param in self.named_parameters():
            param.requires_grad_(name in used)

    # -- vocabulary ---------------------------------------------------------------------------------
    def set_vocab(self, ids: Tensor) -> None:
        """Keep only these LLM token ids (sorted, unique) as classes; ``_index`` maps id → class."""
        vocab_size = self._index.numel()
        self.vocab_ids = kept_ids(ids.to(self.vocab_ids.device), vocab_size)
        self._index = class_index(self.vocab_ids, vocab_size)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        saved = state_dict.get(prefix + "vocab_ids")
        if saved is not None:  # a restricted vocabulary has its own length: adopt it before loading
            self.set_vocab(saved)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def id_classes(self) -> Tensor:
        """(V,) each LLM token id's class: 1..K for the kept ids, 0 for the others."""
        return self._index

    def class_targets(self, targets: AdapterTargets) -> AdapterTargets:
        """LLM token ids → class indices (1..K); ids outside the vocabulary are dropped."""
        return to_classes(targets, self._index)

    # -- scoring ------------------------------------------------------------------------------------
    def class_embeddings(self, table: Tensor) -> Tensor:
        """(V, D) LLM input embeddings → (K+1, D) fp32: blank first, then the kept rows."""
        return torch.cat([self.blank[None].float(), table[self.vocab_ids].float()], dim=0)

    def token_classes(self, table: Tensor) -> Tensor:
        """(K, D) unit-length kept rows of the frozen ``table``, in the matmul dtype, no gradient.

        Computed once per table, vocabulary and device and kept (not saved): the table is the
        LLM's frozen input embeddings, so normalising its 10 k+ rows again every step, and taking
        the gradient of the (B·T, K) matmul with respect to them, would be wasted work.
        """
        key = (table.data_ptr(), table._version, self.vocab_ids.data_ptr(), self.vocab_ids.numel())
        key += (self.matmul_dtype,)
        cached = self.__dict__.get("_token_classes")  # a plain attribute: no parameter, not saved
        if cached is None or cached[0] != key or cached[1]() is not table:
            with torch.no_grad():
                classes = F.normalize(table[self.vocab_ids].float(), dim=-1).to(self.matmul_dtype)
            cached = self.__dict__["_token_classes"] = (key, weakref.ref(table), classes)
        return cached[2]

    def logits(self, embeds: Tensor, table: Tensor) -> Tensor:
        """(B, T, D) vectors → (B, T, K+1) fp32 cosine logits × s (blank at index 0)."""
        if table.requires_grad:  # a trained table (not the library's setting): differentiate through it
            classes = F.normalize(self.class_embeddings(table), dim=-1).to(self.matmul_dtype)
            cosines = F.normalize(embeds.float(), dim=-1).to(self.matmul_dtype) @ classes.t()
            return self.log_scale.exp() * cosines.float()
        vectors = F.normalize(embeds.float(), dim=-1).to(self.matmul_dtype)
        blank = F.normalize(self.blank.float(), dim=-1).to(self.matmul_dtype)
        tokens = vectors @ self.token_classes(table).t()  # (B, T, K): the gradient reaches vectors only
        cosines = torch.cat([(vectors @ blank)[..., None].to(tokens.dtype), tokens], dim=-1)
        return self.log_scale.exp() * cosines.float()

    def scored(self, out: AdapterOutput) -> AdapterOutput:
        """The frames the head scores: the adapter's (B, T, D) outputs, or with ``upsample`` U their
        U maps per vector in order, (B, U·T, D) with lengths U·lens."""
        if self.splits is None:
            return out
        batch, frames, dim = out.embeds.shape
        split = torch.einsum("btd,ued->btue", out.embeds, self.splits.to(out.embeds.dtype))
        embeds = split.reshape(batch, frames * self.upsample, dim)
        return AdapterOutput(embeds, out.lens * self.upsample, out.aux_loss, out.stats)

    def loss(self, objective: str, out: AdapterOutput, targets: AdapterTargets, table: Tensor) -> Tensor:
        """Pre-alignment loss of adapter outputs against the transcript (mean per target token)."""
        if objective == "ctc":
            out = self.scored(out)
        logits = self.logits(out.embeds, table)
        classes = self.class_targets(targets)
        if objective == "ctc":
            log_probs = F.log_softmax(logits, dim=-1).transpose(0, 1)  # (T, B, K+1)
            return F.ctc_loss(
                log_probs,
                classes.ids,
                out.lens,
                classes.lens,
                blank=BLANK,
                reduction="mean",
                zero_infinity=True,
            )
        if objective == "ce":
            if out.embeds.shape[1] < classes.ids.shape[1] or bool((out.lens != targets.lens).any()):
                raise ValueError(
                    "prealign.objective=ce needs one adapter output per transcript token in training "
                    "(the CIF adapter); this adapter's output lengths differ: use objective ctc"
                )
            steps = classes.ids.shape[1]
            token_logits = logits[:, :steps, 1:]  # no blank: every output is a token
            mask = lengths_to_mask(classes.lens, steps)
            return F.cross_entropy(token_logits[mask], classes.ids[mask] - 1)
        raise ValueError(f"prealign.objective: unknown {objective!r}; valid: {', '.join(OBJECTIVES)}")

    @torch.no_grad()
    def greedy_ids(self, objective: str, out: AdapterOutput, table: Tensor) -> list[list[int]]:
        """Decode the adapter alone: CTC greedy (repeats merged, blanks dropped) or argmax per vector."""
        if objective == "ctc":
            out = self.scored(out)
        logits = self.logits(out.embeds, table)
        if objective == "ce":
            labels = logits[..., 1:].argmax(-1) + 1
        else:
            labels = logits.argmax(-1)
        decoded = []
        for row, length in zip(labels.tolist(), out.lens.tolist()):
            row = row[:length]
            if objective == "ctc":
                row = [c for i, c in enumerate(row) if c != BLANK and (i == 0 or c != row[i - 1])]
            decoded.append([int(self.vocab_ids[c - 1]) for c in row])
        return decoded

    # -- what the LLM reads -------------------------------------------------------------------------
    def forward(self, out: AdapterOutput, table: Tensor, frame_logits: Tensor | None = None) -> AdapterOutput:
        """Turn adapter outputs into the LLM's input (``readout``); the same as :meth:`read`."""
        return self.read(out, table, frame_logits)

    def read(self, out: AdapterOutput, table: Tensor, frame_logits: Tensor | None = None) -> AdapterOutput:
        """Turn adapter outputs into the LLM's input (``readout``).

        ``frame_logits``: the head's logits over :meth:`scored` frames (B, U·T, K+1) where the caller
        has them already (joint CTC decoding scores the same frames), so they are not computed twice.
        """
        adapter_lens = out.lens
        if self.readout == "frames":
            embeds, lens = out.embeds * self.output_scale.to(out.embeds.dtype), out.lens
        else:
            out = self.scored(out)
            logits = self.logits(out.embeds, table) if frame_logits is None else frame_logits
            labels = logits.argmax(-1)
            if self.readout == "compress":
                pooled, lens = _merge_runs(out.embeds, labels, out.lens)
                embeds = pooled * self.output_scale.to(pooled.dtype)
            else:
                weights, lens = _merge_runs(logits, labels, out.lens)
                # Each run's posterior over the tokens (blank excluded).
                mix = F.softmax(weights[..., 1:] / self.mix_temperature, dim=-1)
                rows = table[self.vocab_ids].float()
                embeds = mix @ rows
                if self.readout == "tokens":  # the top token's row forward, the mix's gradient backward
                    top = mix.argmax(-1)
                    embeds = rows[top] + (embeds - embeds.detach())
                    token_ids = torch.where(lengths_to_mask(lens, top.shape[1]), self.vocab_ids[top], 0)
                embeds = embeds.to(out.embeds.dtype)
                embeds = embeds * lengths_to_mask(lens, embeds.shape[1]).unsqueeze(-1).to(embeds.dtype)
        # ``out_lens`` is what the LLM reads (the compression monitors' input); the adapter's own stays.
        stats = {**out.stats, "adapter_lens": adapter_lens, "out_lens": lens}
        if self.readout == "tokens":
            stats["token_ids"] = token_ids  # (B, K) the CTC transcript the LLM reads, 0-padded
        return AdapterOutput(embeds=embeds, lens=lens, aux_loss=out.aux_loss, stats=stats)

    def inject_transcripts(
        self, read: AdapterOutput, targets: AdapterTargets, table: Tensor
    ) -> AdapterOutput:
        """Replace a random ``transcript_ratio`` of the rows by their transcript's token embeddings.

        (B, T', D) readout + (B, L) transcript ids → (B, max(T', L), D). The rows not picked are
        unchanged; the graph stays connected (``torch.where``), so DDP sees every gradient.
        """
        batch = read.embeds.shape[0]
        pick = torch.rand(batch, device=read.embeds.device) < self.transcript_ratio
        if not bool(pick.any()):
            return read
        width = max(read.embeds.shape[1], targets.ids.shape[1], 1)
        text = table[targets.ids.clamp(min=0)].to(read.embeds.dtype)
        text = text * lengths_to_mask(targets.lens, text.shape[1]).unsqueeze(-1).to(text.dtype)
        embeds = torch.where(pick[:, None, None], _pad_to(text, width), _pad_to(read.embeds, width))
        lens = torch.where(pick, targets.lens.to(read.lens.dtype), read.lens)
        return AdapterOutput(embeds, lens, read.aux_loss, {**read.stats, "out_lens": lens})

    def copy_targets(
        self,
        read: AdapterOutput,
        target_ids: Tensor,
        target_lens: Tensor,
        stop_id: int,
        eligible: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Replace a random ``copy_ratio`` of the rows' targets by the tokens they read, + ``stop_id``.

        ``read``: a ``tokens`` readout (its ``token_ids`` stat, (B, K)); targets (B, L) / (B,);
        ``eligible`` (B,) bool: rows that may be picked (ASR rows: a translation is not a copy).
        Returns the new (B, max(L, K + 1)) ids (0-padded) and lengths.
        """
        token_ids = read.stats["token_ids"]
        pick = torch.rand(token_ids.shape[0], device=token_ids.device) < self.copy_ratio
        if eligible is not None:
            pick &= eligible
        if not bool(pick.any()):
            return target_ids, target_lens
        width = max(target_ids.shape[1], token_ids.shape[1] + 1)
        copies = F.pad(token_ids, (0, width - token_ids.shape[1]))
        copies[torch.arange(copies.shape[0], device=copies.device), read.lens] = stop_id
        ids = torch.where(pick[:, None], copies, F.pad(target_ids, (0, width - target_ids.shape[1])))
        return ids, torch.where(pick, read.lens + 1, target_lens)

    @torch.no_grad()
    def match_scale(self, output_rms: float, table: Tensor) -> float:
        """Set ``output_scale`` so outputs of RMS ``output_rms`` get the kept embedding rows' RMS."""
        target = float(table[self.vocab_ids].float().pow(2).mean().sqrt())
        self.output_scale.fill_(target / max(output_rms, 1e-8))
        return float(self.output_scale)


def _pad_to(values: Tensor, width: int) -> Tensor:
    """(B, T, D) → (B, width, D), zeros appended (width ≥ T)."""
    return F.pad(values, (0, 0, 0, width - values.shape[1]))


def _merge_runs(values: Tensor, labels: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
    """Average runs of equal labels, then drop the blank runs. (B, T, C) → (B, K, C), lens (B,)."""
    # The label rides along as one more channel: a run's mean label is its label, exactly in fp32.
    with_label = torch.cat([values.float(), labels.unsqueeze(-1).float()], dim=-1)
    pooled, run_lens = ctc_compress(with_label, labels, lens)
    run_labels = pooled[..., -1].round().long()
    keep = lengths_to_mask(run_lens, pooled.shape[1]) & (run_labels != BLANK)
    out_lens = keep.sum(dim=1)
    # Stable sort moves kept runs to the front of each row, in order.
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices
    packed = torch.gather(pooled[..., :-1], 1, order.unsqueeze(-1).expand(-1, -1, values.shape[-1]))
    width = max(int(out_lens.max()) if out_lens.numel() else 0, 1)
    packed = packed[:, :width] * lengths_to_mask(out_lens, width).unsqueeze(-1).to(packed.dtype)
    return packed.to(values.dtype), out_lens
