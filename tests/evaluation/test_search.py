"""Decoding search: beam 1 is greedy, enough beams find the enumerated best sequence, a batch
decodes as its clips alone, the repetition guard bans what it says, long audio is chunked."""

from __future__ import annotations

import pytest
import torch

from speechllm.audio import split_into_chunks
from speechllm.config import load_config
from speechllm.llms.causal_lm import CausalLM
from speechllm.model import SpeechLLM
from speechllm.search import DecodingOptions, beam_search, greedy, guard_repetition


@pytest.fixture(scope="module")
def llm(tiny_dirs) -> CausalLM:
    return CausalLM(str(tiny_dirs["tiny-random-llama"])).eval()


@pytest.fixture(scope="module")
def model(tiny_model_overrides) -> SpeechLLM:
    torch.manual_seed(0)
    return SpeechLLM.from_config(load_config(None, tiny_model_overrides).model).eval()


def _inputs(llm: CausalLM, batch: int, length: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Random left-padded input embeddings (B, L, D) at the embedding scale, rows of other lengths."""
    generator = torch.Generator().manual_seed(seed)
    scale = float(llm.input_embeddings().std())
    embeds = torch.randn(batch, length, llm.dim, generator=generator) * scale * 3
    lens = torch.tensor([length - 2 * i for i in range(batch)])
    mask = (torch.arange(length)[None] >= length - lens[:, None]).long()
    embeds = embeds * mask[..., None]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return embeds, mask, positions


def _audio(lengths_s: list[float], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    lens = torch.tensor([int(s * 16000) for s in lengths_s])
    audio = torch.randn(len(lengths_s), int(lens.max()), generator=generator) * 0.1
    audio = audio * (torch.arange(audio.shape[1])[None] < lens[:, None])
    return audio, lens


@torch.no_grad()
def test_one_beam_is_greedy_token_for_token(llm) -> None:
    embeds, mask, positions = _inputs(llm, batch=3, length=9, seed=1)
    stops = llm.prompts.stop_ids
    expected = greedy(llm, embeds, mask, positions, stops, DecodingOptions(max_new_tokens=12))
    # Without length normalization a single beam keeps the argmax and ends where greedy ends.
    one_beam = DecodingOptions(max_new_tokens=12, num_beams=1, length_penalty=0.0)
    assert beam_search(llm, embeds, mask, positions, stops, one_beam) == expected
    assert any(len(row) > 3 for row in expected)  # the comparison covers real sequences


@torch.no_grad()
def test_enough_beams_find_the_best_sequence_found_by_enumeration(llm) -> None:
    embeds, mask, positions = _inputs(llm, batch=1, length=6, seed=29)
    stops = set(llm.prompts.stop_ids)
    vocab = llm.vocab_size
    # Enumerate every output of at most 2 tokens with full forward passes (no cache).
    hidden = llm.hidden_states(embeds, mask, positions)
    first = torch.log_softmax(llm.logits(hidden[:, -1]).float(), -1)[0]  # (V,)
    seconds = torch.cat([embeds.expand(vocab, -1, -1), llm.embed(torch.arange(vocab))[:, None]], dim=1)
    mask2 = torch.cat([mask.expand(vocab, -1), mask.new_ones(vocab, 1)], dim=1)
    pos2 = torch.cat([positions.expand(vocab, -1), positions[:, -1:].expand(vocab, 1) + 1], dim=1)
    second = torch.log_softmax(llm.logits(llm.hidden_states(seconds, mask2, pos2)[:, -1]).float(), -1)
    candidates: list[tuple[float, list[int]]] = [(float(first[s]), []) for s in stops]
    totals = first[:, None] + second  # (V, V): token a then token b
    for a in range(vocab):
        if a in stops:
            continue
        b = int(totals[a].argmax())
        candidates.append((float(totals[a, b]), [a] if b in stops else [a, b]))
    best_score, best = max(candidates, key=lambda item: item[0])

    options = DecodingOptions(max_new_tokens=2, num_beams=vocab, length_penalty=0.0)
    (found,) = beam_search(llm, embeds, mask, positions, list(stops), options)
    assert found == best, (found, best, best_score)
    (greedy_row,) = greedy(llm, embeds, mask, positions, list(stops), DecodingOptions(max_new_tokens=2))
    assert greedy_row != best  # the search matters here: greedy misses the best sequence


@torch.no_grad()
@pytest.mark.parametrize("guard", [{}, {"no_repeat_ngram_size": 2}, {"repetition_penalty": 1.3}])
def test_a_batch_decodes_as_each_clip_alone(model, guard) -> None:
    audio, lens = _audio([1.0, 0.55, 0.8], seed=3)
    options = {"num_beams": 3, "max_new_tokens": 8, **guard}
    batched = model.generate(audio, lens, **options)
    alone = [
        model.generate(audio[i : i + 1, : int(lens[i])], lens[i : i + 1], **options)[0] for i in range(3)
    ]
    assert batched == alone


def test_no_repeat_ngram_bans_the_token_that_would_repeat_a_bigram() -> None:
    logits = torch.zeros(2, 6)
    generated = torch.tensor([[1, 2, 3, 1], [4, 5, 4, 0]])
    guarded = guard_repetition(logits, generated, DecodingOptions(no_repeat_ngram_size=2))
    # Row 0 ends with 1 and "1 2" was seen: 2 is banned. Row 1 ends with 0: no bigram starts there.
    assert torch.isinf(guarded[0, 2]) and torch.isfinite(guarded[0]).sum() == 5
    assert torch.isfinite(guarded[1]).all()


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits_of_seen_tokens() -> None:
    logits = torch.tensor([[2.0, -2.0, 2.0, -2.0]])
    guarded = guard_repetition(logits, torch.tensor([[0, 1]]), DecodingOptions(repetition_penalty=2.0))
    assert guarded.tolist() == [[1.0, -4.0, 2.0, -2.0]]


@torch.no_grad()
def test_with_the_guard_greedy_and_beams_never_repeat_a_bigram(llm) -> None:
    embeds, mask, positions = _inputs(llm, batch=1, length=6, seed=1)
    stops = llm.prompts.stop_ids
    (plain,) = greedy(llm, embeds, mask, positions, stops, DecodingOptions(max_new_tokens=40))
    assert len(list(zip(plain, plain[1:]))) > len(set(zip(plain, plain[1:])))  # it loops unguarded
    for beams in (1, 3):
        options = DecodingOptions(max_new_tokens=40, num_beams=beams, no_repeat_ngram_size=2)
        search = greedy if beams == 1 else beam_search
        (ids,) = search(llm, embeds, mask, positions, stops, options)
        bigrams = list(zip(ids, ids[1:]))
        assert len(ids) > 10 and len(bigrams) == len(set(bigrams))


def test_long_audio_is_cut_into_chunks_of_at_most_the_given_length() -> None:
    audio, lens = _audio([35.0, 180.0, 61.0])
    pieces, owners = split_into_chunks(audio, lens, 30.0)
    assert owners == [0, 0] + [1] * 6 + [2, 2]  # 61 s: the 1 s sliver joins the piece before it
    assert [p.numel() for p in pieces[:2]] == [30 * 16000, 5 * 16000]
    assert pieces[-1].numel() == 31 * 16000
    assert torch.equal(torch.cat(pieces[2:8]), audio[1, : 180 * 16000])


@torch.no_grad()
def test_chunked_generation_joins_each_clips_chunks_in_order(model) -> None:
    audio, lens = _audio([2.5, 1.0], seed=5)
    chunked = model.generate(audio, lens, max_new_tokens=4, chunk_seconds=1.0)
    first = [
        model.generate(audio[0:1, s : s + 16000], torch.tensor([16000]), max_new_tokens=4)[0]
        for s in (0, 16000)
    ]
    tail = model.generate(audio[0:1, 32000:40000], torch.tensor([8000]), max_new_tokens=4)[0]
    assert chunked[0] == " ".join(t for t in [*first, tail] if t)
    assert chunked[1] == model.generate(audio[1:2, :16000], torch.tensor([16000]), max_new_tokens=4)[0]


@torch.no_grad()
def test_a_long_clip_is_decoded_chunk_batch_size_chunks_at_a_time(model) -> None:
    """A one-hour file must not put all its chunks in one batch: memory is that of one batch."""
    audio, lens = _audio([7.5], seed=6)  # 8 chunks of 1 s (the last one 0.5 s)
    seen: list[int] = []
    hook = model.encoder.register_forward_pre_hook(lambda module, args: seen.append(int(args[0].shape[0])))
    try:
        grouped = model.generate(audio, lens, max_new_tokens=3, chunk_seconds=1.0, chunk_batch_size=3)
        assert seen == [3, 3, 2]
        seen.clear()
        alone = model.generate(audio, lens, max_new_tokens=3, chunk_seconds=1.0)  # one clip: one at a time
        assert seen == [1] * 8
    finally:
        hook.remove()
    assert grouped == alone
