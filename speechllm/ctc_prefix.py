"""CTC prefix scores of LLM hypotheses: the adapter's CTC head keeps the LLM's output on the audio.

Joint decoding (Watanabe et al., 2017, "Hybrid CTC/attention"; here with the LLM in the decoder's
place) ranks each next token ``c`` of a hypothesis ``g`` by::

    (1 - λ) · log p_LLM(c | g, audio)  +  λ · (log p_CTC(g c ...) - log p_CTC(g ...))

where ``log p_CTC(h ...)`` is the CTC *prefix* probability: the total probability of every CTC
path over the adapter's frames whose labelling starts with ``h``. For the stop token it is the
probability of exactly ``g``. A token the audio does not support (a repeat the LLM loops on, an
"The audio is ..." preamble) gets a low CTC score however likely the LLM finds it, and the LLM's
prior picks among the spellings the audio leaves open.

The scorer holds, per hypothesis, the forward variables of the standard CTC prefix algorithm:
``r_n[t]`` / ``r_b[t]``, the log probability that frames ``0..t`` spell the prefix ending in a
non-blank / blank frame. Extending a prefix by a candidate is one pass over the frames, batched
over hypotheses and candidates.

Shapes: B clips, N hypotheses (rows; each belongs to one clip), M candidates per row, T frames,
C = K + 1 head classes (blank at 0), V the LLM vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

NEG_INF = float("-inf")
# Stands in for log 0 inside the closed-form recurrence, whose cumulative sums need finite steps;
# every position it reaches is set back to -inf after.
FLOOR = -1.0e4


@dataclass
class PrefixState:
    """The CTC state of N hypotheses.

    Attributes:
        clip: (N,) the clip each row belongs to.
        r_n, r_b: (N, T) forward log probabilities of the prefix ending in a label / a blank frame.
        score: (N,) the prefix's CTC prefix score (0 for the empty prefix).
        last: (N,) the prefix's last class (-1: empty prefix).
    """

    clip: Tensor
    r_n: Tensor
    r_b: Tensor
    score: Tensor
    last: Tensor

    def rows(self, index: Tensor) -> PrefixState:
        """The states of rows ``index`` (N',): beams reordered or repeated."""
        return PrefixState(
            self.clip[index], self.r_n[index], self.r_b[index], self.score[index], self.last[index]
        )


@dataclass
class Extensions:
    """Every row's candidates scored: what :meth:`CTCPrefixScorer.extend` returns.

    Attributes:
        scores: (N, M) CTC prefix score of each extended prefix (for a stop candidate: the
            probability of exactly the row's prefix); -inf where the head cannot spell it.
        r_n, r_b: (N, M, T) forward variables of each extended prefix.
        classes: (N, M) each candidate's head class (0: not a class the head scores, or a stop).
        stop: (N, M) bool, the candidate is a stop token.
    """

    scores: Tensor
    r_n: Tensor
    r_b: Tensor
    classes: Tensor
    stop: Tensor

    def chosen(self, state: PrefixState, rows: Tensor, picks: Tensor) -> PrefixState:
        """The new state after row ``rows[i]`` took its candidate ``picks[i]`` (both (N',))."""
        return PrefixState(
            state.clip[rows],
            self.r_n[rows, picks],
            self.r_b[rows, picks],
            self.scores[rows, picks],
            self.classes[rows, picks],
        )


class CTCPrefixScorer:
    """CTC prefix scores over one batch of clips' head outputs.

    Args:
        log_probs: (B, T, C) log posteriors of the CTC head per frame (blank at class 0).
        lens: (B,) valid frames per clip.
        token_classes: (V,) each LLM token id's head class, 0 where the head does not score it.
        stop_ids: LLM tokens that end a hypothesis (scored as "exactly this prefix").
    """

    def __init__(self, log_probs: Tensor, lens: Tensor, token_classes: Tensor, stop_ids: list[int]) -> None:
        batch, frames, _ = log_probs.shape
        valid = torch.arange(frames, device=log_probs.device)[None, :] < lens[:, None]  # (B, T)
        # Past a clip's end every frame is a certain blank: r_b then carries the whole prefix
        # probability to the last frame, and no label can be added there.
        padded = torch.full_like(log_probs.float(), NEG_INF)
        padded[..., 0] = 0.0
        self.x = torch.where(valid[..., None], log_probs.float(), padded)  # (B, T, C)
        self.x_by_time = self.x.transpose(0, 1).contiguous()  # (T, B, C)
        self.frames = frames
        self.token_classes = token_classes.to(log_probs.device)
        self.stop_ids = torch.tensor(stop_ids, dtype=torch.long, device=log_probs.device)
        self.batch = batch

    def initial(self, clip: Tensor) -> PrefixState:
        """The empty prefix for each row's clip ``clip`` (N,): all blank frames so far."""
        blank = self.x[clip, :, 0]  # (N, T)
        r_b = torch.cumsum(blank, dim=1)
        r_n = torch.full_like(r_b, NEG_INF)
        score = torch.zeros(clip.shape[0], device=r_b.device)
        return PrefixState(clip, r_n, r_b, score, torch.full_like(clip, -1))

    def end_scores(self, state: PrefixState) -> Tensor:
        """(N,) log probability that the clip's frames spell exactly each row's prefix."""
        return torch.logaddexp(state.r_n[:, -1], state.r_b[:, -1])

    def extend(self, state: PrefixState, candidates: Tensor) -> Extensions:
        """Score each row's candidate tokens (N, M) as the prefix's next token."""
        rows, width = candidates.shape
        known = self.token_classes.numel()  # an LM head may be wider than the embedding table
        classes = self.token_classes[candidates.clamp(max=known - 1)].masked_fill(candidates >= known, 0)
        stop = torch.isin(candidates, self.stop_ids)
        classes = torch.where(stop, torch.zeros_like(classes), classes)
        # Each candidate's label posterior per frame (T, N, M), read without copying the rows'
        # (T, C) posteriors; -inf for a token the head does not score.
        x_c = self.x_by_time[:, state.clip[:, None], classes].masked_fill(~(classes > 0)[None], NEG_INF)
        x_blank = self.x_by_time[:, state.clip, :1]  # (T, N, 1)
        r_n_prev, r_b_prev = state.r_n.t()[..., None], state.r_b.t()[..., None]  # (T, N, 1)
        # phi[t]: the prefix is spelled by frame t and the candidate may start at t + 1; a repeat
        # of the last label must be separated from it by a blank.
        repeat = (classes == state.last[:, None])[None]  # (1, N, M)
        phi = torch.where(repeat, r_b_prev, torch.logaddexp(r_b_prev, r_n_prev))  # (T, N, M)
        empty = (state.last < 0)[None, :, None]  # (1, N, 1): only a first label may start at frame 0
        first = torch.where(empty, 0.0, NEG_INF).expand(1, rows, width)
        # r_n[t] = (r_n[t-1] ⊕ phi[t-1]) ⊗ x_c[t], r_n[0] = x_c[0] for the empty prefix; frames
        # where the candidate cannot be spelled (past the clip's end, a token the head lacks) are -inf.
        spellable = torch.isfinite(x_c)
        r_n = _linear_recurrence(torch.cat([first, phi[:-1]], dim=0), x_c.masked_fill(~spellable, FLOOR))
        r_n = r_n.masked_fill(~spellable, NEG_INF)
        # r_b[t] = (r_n[t-1] ⊕ r_b[t-1]) ⊗ blank[t], r_b[0] = -inf.
        blank_start = torch.cat([torch.full_like(r_n[:1], NEG_INF), r_n[:-1]], dim=0)
        r_b = _linear_recurrence(blank_start, x_blank.expand_as(r_n))
        starts = torch.cat([r_n[:1], phi[:-1] + x_c[1:]], dim=0)
        scores = torch.logsumexp(starts, dim=0)  # (N, M)
        scores = torch.where(stop, self.end_scores(state)[:, None].expand_as(scores), scores)
        return Extensions(scores, r_n.permute(1, 2, 0), r_b.permute(1, 2, 0), classes, stop)


def _linear_recurrence(start: Tensor, step: Tensor) -> Tensor:
    """y[t] = (y[t-1] ⊕ start[t]) ⊗ step[t] in the log semiring, y[-1] = -inf, along dim 0.

    Closed form, without a loop over frames: with S[t] = Σ_{u≤t} step[u],
    ``y[t] = S[t] + log Σ_{s≤t} exp(start[s] - S[s-1])``. In float64: S grows to thousands of nats
    over a long clip, and y is a difference of such sums. ``step`` must be finite (floor it).
    """
    cumulative = torch.cumsum(step.double(), dim=0)
    before = torch.cat([torch.zeros_like(cumulative[:1]), cumulative[:-1]], dim=0)
    return (cumulative + torch.logcumsumexp(start.double() - before, dim=0)).to(step.dtype)


def joint_increments(llm_logprobs: Tensor, state: PrefixState, ext: Extensions, ctc_weight: float) -> Tensor:
    """(N, M) each candidate's joint score increment: ``(1 - λ) log p_LLM + λ Δ log p_CTC``.

    ``llm_logprobs``: (N, M) the LLM's log probability of each candidate. A prefix the head cannot
    spell is -inf (never NaN, even where the row's own prefix was already impossible).
    """
    delta = ext.scores - state.score[:, None]
    delta = delta.masked_fill(ext.scores == NEG_INF, NEG_INF)
    if ctc_weight >= 1.0:  # CTC alone (the LLM only proposes the candidates): no 0 · -inf
        return delta
    return (1.0 - ctc_weight) * llm_logprobs + ctc_weight * delta
