"""Joint CTC decoding: prefix scores equal the sum over enumerated CTC paths, the CTC head steers
the LLM to what the audio spells, a batch decodes as its clips alone, and misuse is refused."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from speechllm.config import load_config
from speechllm.ctc_prefix import CTCPrefixScorer, PrefixState, joint_increments
from speechllm.llms.causal_lm import CausalLM
from speechllm.model import SpeechLLM
from speechllm.search import DecodingOptions, beam_search, greedy

CLASSES = 4  # blank + 3 labels
# LLM ids 0..5: ids 1, 2, 3 are the head's classes 1, 2, 3; id 4 is not kept; id 5 is the stop.
TOKEN_CLASSES = torch.tensor([0, 1, 2, 3, 0, 0])
STOP = 5


def _collapse(path: tuple[int, ...]) -> list[int]:
    labels, previous = [], None
    for c in path:
        if c != 0 and c != previous:
            labels.append(c)
        previous = c
    return labels


def _enumerated(log_probs: torch.Tensor, frames: int, prefix: list[int], exact: bool) -> float:
    """log Σ p(path) over every path of ``frames`` frames spelling ``prefix`` (exactly, or as a prefix)."""
    totals = [
        sum(float(log_probs[t, c]) for t, c in enumerate(path))
        for path in itertools.product(range(CLASSES), repeat=frames)
        if (_collapse(path) == prefix if exact else _collapse(path)[: len(prefix)] == prefix)
    ]
    return float(torch.logsumexp(torch.tensor(totals), 0)) if totals else float("-inf")


def _state_after(scorer: CTCPrefixScorer, clips: torch.Tensor, prefix: list[int]) -> PrefixState:
    state = scorer.initial(clips)
    for token in prefix:
        ext = scorer.extend(state, torch.full((len(clips), 1), token))
        state = ext.chosen(state, torch.arange(len(clips)), torch.zeros(len(clips), dtype=torch.long))
    return state


@pytest.mark.parametrize("prefix", [[], [1], [1, 1], [2, 1, 3]])
def test_prefix_scores_equal_the_sum_over_enumerated_ctc_paths(prefix) -> None:
    log_probs = torch.randn(2, 5, CLASSES, generator=torch.Generator().manual_seed(3)).log_softmax(-1)
    lens = torch.tensor([5, 3])  # the second clip is padded: its last two frames are not audio
    scorer = CTCPrefixScorer(log_probs, lens, TOKEN_CLASSES, [STOP])
    state = _state_after(scorer, torch.tensor([0, 1]), prefix)
    candidates = torch.tensor([[1, 2, 3, 4, STOP]] * 2)
    scores = scorer.extend(state, candidates).scores
    for clip in range(2):
        frames = int(lens[clip])
        for j, token in enumerate(candidates[clip].tolist()):
            if token == STOP:  # the stop: exactly the prefix, the whole clip spent
                expected = _enumerated(log_probs[clip], frames, prefix, exact=True)
            elif token == 4:  # a token the head does not score cannot be spelled
                expected = float("-inf")
            else:
                expected = _enumerated(log_probs[clip], frames, prefix + [token], exact=False)
            got = float(scores[clip, j])
            assert (math.isinf(got) and math.isinf(expected) and got < 0) or got == pytest.approx(
                expected, abs=1e-4
            ), (clip, token, got, expected)


def test_the_stop_score_is_minus_the_ctc_loss_of_the_hypothesis() -> None:
    log_probs = torch.randn(1, 12, CLASSES, generator=torch.Generator().manual_seed(7)).log_softmax(-1)
    scorer = CTCPrefixScorer(log_probs, torch.tensor([12]), TOKEN_CLASSES, [STOP])
    hypothesis = [2, 2, 3, 1]
    state = _state_after(scorer, torch.tensor([0]), hypothesis)
    loss = F.ctc_loss(
        log_probs.transpose(0, 1),
        torch.tensor([hypothesis]),
        torch.tensor([12]),
        torch.tensor([4]),
        reduction="sum",
    )
    assert float(scorer.end_scores(state)[0]) == pytest.approx(-float(loss), abs=1e-4)


def test_an_impossible_prefix_scores_minus_infinity_never_nan() -> None:
    log_probs = torch.randn(1, 2, CLASSES).log_softmax(-1)
    scorer = CTCPrefixScorer(log_probs, torch.tensor([2]), TOKEN_CLASSES, [STOP])
    state = _state_after(scorer, torch.tensor([0]), [1, 1])  # a repeat needs 3 frames: impossible in 2
    assert float(state.score[0]) == float("-inf")
    ext = scorer.extend(state, torch.tensor([[1, 2, STOP]]))
    increments = joint_increments(torch.zeros(1, 3), state, ext, 0.5)
    assert not torch.isnan(increments).any() and torch.isneginf(increments).all()
    assert not torch.isnan(joint_increments(torch.zeros(1, 3), state, ext, 1.0)).any()


@pytest.fixture(scope="module")
def llm(tiny_dirs) -> CausalLM:
    return CausalLM(str(tiny_dirs["tiny-random-llama"])).eval()


def _spelling(tokens: list[int], frames_per_token: int, vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Head posteriors (1, T, C) that spell ``tokens`` (ids; the head keeps every id, class = id + 1),
    each held for some frames then followed by a blank, at 0.9 probability per frame."""
    classes = []
    for token in tokens:
        classes += [token + 1] * frames_per_token + [0]
    probs = torch.full((1, len(classes), vocab + 1), 0.1 / vocab)
    probs[0, torch.arange(len(classes)), torch.tensor(classes)] = 0.9
    return probs.log(), torch.arange(vocab) + 1


@torch.no_grad()
@pytest.mark.parametrize("beams", [1, 3])
def test_the_ctc_head_steers_the_llm_to_what_the_audio_spells(llm, beams) -> None:
    generator = torch.Generator().manual_seed(11)
    embeds = torch.randn(1, 6, llm.dim, generator=generator) * float(llm.input_embeddings().std()) * 3
    mask, positions = torch.ones(1, 6, dtype=torch.long), torch.arange(6)[None]
    stops = llm.prompts.stop_ids
    spelled = [t for t in (7, 19, 19, 42, 5) if t not in stops]  # a repeat: a blank between the two
    log_probs, classes = _spelling(spelled, 2, llm.vocab_size)
    search = greedy if beams == 1 else beam_search
    alone = search(llm, embeds, mask, positions, stops, DecodingOptions(max_new_tokens=10, num_beams=beams))
    assert alone[0] != spelled  # the LLM alone writes something else
    scorer = CTCPrefixScorer(log_probs, torch.tensor([log_probs.shape[1]]), classes, stops)
    options = DecodingOptions(
        max_new_tokens=10, num_beams=beams, ctc_weight=0.8, ctc_candidates=llm.vocab_size
    )
    assert search(llm, embeds, mask, positions, stops, options, ctc=scorer) == [spelled]


@torch.no_grad()
@pytest.mark.parametrize("beams", [1, 3])
def test_joint_decoding_writes_only_tokens_the_head_keeps(llm, beams) -> None:
    generator = torch.Generator().manual_seed(5)
    embeds = torch.randn(2, 6, llm.dim, generator=generator) * float(llm.input_embeddings().std()) * 3
    mask, positions = torch.ones(2, 6, dtype=torch.long), torch.arange(6)[None].expand(2, -1)
    kept = torch.arange(3, 40)
    classes = torch.zeros(llm.vocab_size, dtype=torch.long)
    classes[kept] = torch.arange(1, kept.numel() + 1)
    log_probs = torch.randn(2, 30, kept.numel() + 1, generator=generator).log_softmax(-1)
    scorer = CTCPrefixScorer(log_probs, torch.tensor([30, 21]), classes, llm.prompts.stop_ids)
    options = DecodingOptions(
        max_new_tokens=8, num_beams=beams, ctc_weight=0.2, ctc_candidates=llm.vocab_size
    )
    search = greedy if beams == 1 else beam_search
    rows = search(llm, embeds, mask, positions, llm.prompts.stop_ids, options, ctc=scorer)
    assert all(row for row in rows)  # random audio frames are not silence: something is written
    assert all(3 <= token < 40 for row in rows for token in row)


@pytest.fixture(scope="module")
def prealigned(tiny_model_overrides) -> SpeechLLM:
    torch.manual_seed(0)
    cfg = load_config(None, [*tiny_model_overrides, "model.prealign.readout=tokens"])
    model = SpeechLLM.from_config(cfg.model).eval()
    assert model.prealign is not None
    model.prealign.set_vocab(torch.arange(3, 200))  # a restricted vocabulary, as pre-alignment keeps
    return model


@torch.no_grad()
@pytest.mark.parametrize("beams", [1, 2])
def test_a_batch_decodes_as_each_clip_alone_with_joint_ctc(prealigned, beams) -> None:
    generator = torch.Generator().manual_seed(4)
    lens = torch.tensor([16000, 8800, 12800])
    audio = torch.randn(3, 16000, generator=generator) * 0.1 * (torch.arange(16000)[None] < lens[:, None])
    options = {"num_beams": beams, "max_new_tokens": 6, "ctc_weight": 0.5, "ctc_candidates": 4}
    batched = prealigned.generate_detailed(audio, lens, **options)
    alone = [
        prealigned.generate_detailed(audio[i : i + 1, : int(lens[i])], lens[i : i + 1], **options)
        for i in range(3)
    ]
    assert batched.texts == [one.texts[0] for one in alone]
    assert batched.num_tokens == [one.num_tokens[0] for one in alone]
    assert any(batched.num_tokens)  # the comparison covers written tokens


def test_joint_ctc_decoding_refuses_what_it_cannot_score(prealigned, tiny_model_overrides) -> None:
    audio, lens = torch.randn(1, 8000) * 0.1, torch.tensor([8000])
    with pytest.raises(ValueError, match="task 'st'"):
        prealigned.generate(audio, lens, task="st", src_lang="de", tgt_lang="en", ctc_weight=0.3)
    plain = SpeechLLM.from_config(load_config(None, tiny_model_overrides).model).eval()
    with pytest.raises(ValueError, match="without pre-alignment"):
        plain.generate(audio, lens, ctc_weight=0.3)
    for bad in ({"ctc_weight": 1.5}, {"ctc_weight": float("nan")}, {"ctc_candidates": 0}):
        with pytest.raises(ValueError, match="ctc_"):
            DecodingOptions(**bad)


def test_joint_ctc_decoding_of_st_is_refused_before_any_model_loads(tmp_path) -> None:
    from speechllm.errors import UsageError
    from speechllm.evaluation import evaluate
    from speechllm.inference import transcribe_files

    missing_model = tmp_path / "no-model"  # never read: the check comes first
    with pytest.raises(UsageError, match="applies to ASR only"):
        evaluate(str(missing_model), tmp_path / "st.jsonl.gz", task="st", decoding={"ctc_weight": 0.5})
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"")
    with pytest.raises(UsageError, match="applies to ASR only"):
        list(transcribe_files(missing_model, [audio], task="st", tgt_lang="en", decoding={"ctc_weight": 0.5}))
