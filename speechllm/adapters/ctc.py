"""The paper's CTC adapter: a CTC head over the LLM vocabulary decides which frames to merge."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechllm.adapters.interface import Adapter, AdapterTargets, Compressed
from speechllm.adapters.vocabulary import class_index, kept_ids, to_classes
from speechllm.masking import lengths_to_mask
from speechllm.registry import register_adapter


def ctc_compress(
    hidden: Tensor, labels: Tensor, lens: Tensor, max_len: int | None = None
) -> tuple[Tensor, Tensor]:
    """Average every run of consecutive frames that share a label (blank runs included).

    Vectorized: a run starts where the label changes, so ``cumsum`` of the change flags numbers
    the runs, and one ``index_add`` over all (B·T) frames sums each run (padding frames and runs
    past ``max_len`` go to a discarded row).

    Args:
        hidden: (B, T, C) frames.
        labels: (B, T) per-frame labels (the CTC head's argmax).
        lens: (B,) valid frames per clip.
        max_len: keep at most this many runs per clip (the first ones); None keeps all.
    Returns:
        pooled (B, K, C) in ``hidden``'s dtype (averaged in fp32), zero past ``out_lens``;
        out_lens (B,) long: the number of runs, ≥ 1 for every clip with ≥ 1 frame.
    """
    batch, frames, channels = hidden.shape
    valid = lengths_to_mask(lens, frames)
    starts = torch.ones_like(valid)
    starts[:, 1:] = labels[:, 1:] != labels[:, :-1]
    run_index = torch.cumsum(starts & valid, dim=1) - 1  # (B, T): which run each frame belongs to
    out_lens = (starts & valid).sum(dim=1)
    if max_len is not None:
        out_lens = out_lens.clamp(max=max_len)
    max_out = max(int(out_lens.max()), 1)
    rows = max_out + 1  # row max_out of each clip collects padding and overflow, then is dropped
    keep = valid & (run_index < out_lens.unsqueeze(1))
    index = (
        torch.where(keep, run_index, max_out) + torch.arange(batch, device=hidden.device).unsqueeze(1) * rows
    )
    index = index.flatten()
    # One pass over the frames: padding and overflow land in the dropped row, so nothing is masked.
    sums = hidden.new_zeros(batch * rows, channels, dtype=torch.float32)
    sums = sums.index_add(0, index, hidden.reshape(-1, channels).float())
    counts = torch.bincount(index, minlength=batch * rows).clamp(min=1)
    pooled = sums / counts.unsqueeze(-1)
    pooled = pooled.view(batch, rows, channels)[:, :max_out]
    return pooled.to(hidden.dtype), out_lens


VOCABS = ("all", "transcripts")


@register_adapter("ctc")
class CTCAdapter(Adapter):
    """CTC-based compression (Gaido et al., 2021) → modality adapter.

    A CTC head, ``Linear(C → vocab_size)`` directly on the encoder frames (no extra projection,
    so the head is as simple as the paper's), predicts an LLM-vocabulary label per frame. Runs of
    consecutive frames with the same argmax label, blank runs included, are averaged into one
    frame (:func:`ctc_compress`)::

        labels   a a ∅ ∅ ∅ b a a      (∅ = blank)
        outputs  [a a] [∅ ∅ ∅] [b] [a a]  → 4 frames, each the mean of its run

    With ``targets``, the CTC loss of the head against the LLM-tokenized transcript (log-softmax
    in fp32, ``zero_infinity``, mean over the batch of the per-token loss) times ``ctc_weight`` is
    the aux loss.

    ``vocab: transcripts`` scores only the blank and the token ids of the training transcripts
    (:meth:`set_vocab`, which training calls before the first step; :mod:`speechllm.adapters.vocabulary`):
    the head's weight keeps all V rows, so a checkpoint's shape does not depend on the data, but each
    frame's product runs over K + 1 of them (K ≈ 10 000 of SmolLM2's 49 152 on the demo's
    transcripts: the step that dominated this adapter's time on a CPU, docs/benchmarks.md).
    Transcript ids outside the kept set are dropped from the CTC target. The kept ids are saved
    with the model (``vocab_ids``).

    Args:
        in_dim: encoder hidden size C.
        out_dim: LLM embedding size D.
        vocab_size: LLM vocabulary size (filled in by the model).
        blank_id: CTC blank id (the model passes the tokenizer's pad id, else its eos id).
        ctc_weight: weight of the CTC loss (paper: 0.1).
        vocab: ``all`` (the paper's head over the whole vocabulary) or ``transcripts``.
        max_len: keep at most this many runs per clip (first ones); None keeps all.
        **modality_options: options of the shared modality adapter.

    Shapes: hidden (B, T, C) → embeds (B, K, D); stats also hold ``blank_frames`` (B,).
    """

    learned_length = True

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        vocab_size: int,
        blank_id: int,
        ctc_weight: float = 0.1,
        vocab: str = "all",
        max_len: int | None = None,
        **modality_options: Any,
    ) -> None:
        super().__init__(in_dim, out_dim, modality_in_dim=in_dim, **modality_options)
        if not 0 <= blank_id < vocab_size:
            raise ValueError(
                f"ctc adapter: `blank_id` {blank_id} is outside the vocabulary [0, {vocab_size})"
            )
        if max_len is not None and max_len < 1:
            raise ValueError(f"ctc adapter: `max_len` must be ≥ 1 or null, got {max_len}")
        self.vocab_size = vocab_size
        self.blank_id = blank_id
        self.ctc_weight = ctc_weight
        self.max_len = max_len
        if vocab not in VOCABS:
            raise ValueError(f"ctc adapter: `vocab` must be one of {', '.join(VOCABS)}, got {vocab!r}")
        self.vocab = vocab
        self.head = nn.Linear(in_dim, vocab_size)
        if vocab == "transcripts":  # every id until set_vocab: a fresh model still runs
            every = torch.arange(vocab_size, device="cpu")  # on "cpu" even where modules build on "meta"
            self.register_buffer("vocab_ids", kept_ids(every, vocab_size, drop=blank_id))
            self.register_buffer("_rows", torch.empty(0, dtype=torch.long), persistent=False)
            self.register_buffer("_index", torch.empty(0, dtype=torch.long), persistent=False)
            self._set_classes()

    # -- vocabulary ---------------------------------------------------------------------------------
    def set_vocab(self, ids: Tensor) -> None:
        """Score only the blank and these LLM token ids (``vocab: transcripts``); (K,) ids."""
        if self.vocab != "transcripts":
            raise ValueError("ctc adapter: set_vocab needs `vocab: transcripts`")
        self.vocab_ids = kept_ids(ids.to(self.head.weight.device), self.vocab_size, drop=self.blank_id)
        self._set_classes()

    def _set_classes(self) -> None:
        # Rows of the head scored, blank first (class 0), and the id → class map of the targets.
        blank = self.vocab_ids.new_tensor([self.blank_id])
        self._rows = torch.cat([blank, self.vocab_ids])
        self._index = class_index(self.vocab_ids, self.vocab_size)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        saved = state_dict.get(prefix + "vocab_ids")
        if saved is not None and self.vocab == "transcripts":  # its own length: adopt it before loading
            self.set_vocab(saved)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def logits(self, hidden: Tensor) -> Tensor:
        """(B, T, C) → (B, T, V) scores over the vocabulary, or (B, T, K + 1) over the blank (0) and
        the kept ids with ``vocab: transcripts``."""
        if self.vocab == "all":
            return self.head(hidden)
        return F.linear(hidden, self.head.weight[self._rows], self.head.bias[self._rows])

    @property
    def blank_class(self) -> int:
        """The blank's index among :meth:`logits`' classes."""
        return self.blank_id if self.vocab == "all" else 0

    def compress(self, hidden: Tensor, lens: Tensor, targets: AdapterTargets | None = None) -> Compressed:
        """Args: hidden (B, T, C) zero past lens, lens (B,), targets (training).
        Returns: pooled runs (B, K, C), out_lens (B,), the weighted CTC loss (with targets),
        ``blank_frames`` (B,)."""
        logits = self.logits(hidden)  # (B, T, V) or (B, T, K + 1)
        labels = logits.argmax(dim=-1)
        aux_loss = None
        if targets is not None:
            aux_loss = self.ctc_weight * self.ctc_loss(logits, lens, targets)
        pooled, out_lens = ctc_compress(hidden, labels, lens, self.max_len)
        valid = lengths_to_mask(lens, hidden.shape[1])
        blank_frames = ((labels == self.blank_class) & valid).sum(dim=1)
        return Compressed(pooled, out_lens, aux_loss, {"blank_frames": blank_frames})

    def planned_compress(self, hidden: Tensor, lens: Tensor, out_len: int) -> Compressed:
        """:meth:`compress` for a plan: the head's product, and a loss on the logits that reaches the
        head as the CTC loss does (the loss and the run averaging are no matrix products, and the
        runs are not differentiable in the head: their labels are an argmax)."""
        logits = self.logits(hidden)
        aux_loss = self.ctc_weight * logits.float().mean()
        pooled = hidden.mean(dim=1, keepdim=True).expand(-1, out_len, -1)
        out_lens = torch.full((hidden.shape[0],), out_len, dtype=torch.long, device=hidden.device)
        return Compressed(pooled, out_lens, aux_loss)

    def ctc_loss(self, logits: Tensor, lens: Tensor, targets: AdapterTargets) -> Tensor:
        """Unweighted CTC loss. logits (B, T, V or K + 1) from :meth:`logits`, lens (B,), targets ids
        (B, N) / lens (B,) → scalar."""
        log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (T, B, V), fp32 for bf16 safety
        if self.vocab == "transcripts":
            targets = to_classes(targets, self._index)
        # Ids past a row's length may be a padding value such as -100; ctc_loss must not see them.
        target_valid = lengths_to_mask(targets.lens, targets.ids.shape[1])
        ids = torch.where(target_valid, targets.ids, 0)
        return F.ctc_loss(
            log_probs, ids, lens, targets.lens, blank=self.blank_class, reduction="mean", zero_infinity=True
        )
