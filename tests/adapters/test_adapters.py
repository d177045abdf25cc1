"""The paper's five adapters: Table 1 compression, CIF/CTC against loop references, masking, bf16,
gradients. (The Adapter base and the docs' user adapter example: test_adapter_contract.py.)"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers.adapters import (
    IN_DIM,
    NAMES,
    OUT_DIM,
    TINY,
    VOCAB,
    build,
    garbage_padded,
    modality_input,
    random_targets,
)
from helpers.reference_adapters import cif_integrate_loop, ctc_compress_loop

from speechllm.adapters import AdapterTargets
from speechllm.adapters.cif import cif_integrate
from speechllm.adapters.ctc import ctc_compress
from speechllm.registry import ADAPTERS


def test_registry_holds_the_papers_five_adapters():
    assert set(NAMES) <= set(ADAPTERS.names())


# ---------------------------------------------------------------- Table 1 (compression ratios)

# The paper's Table 1 (frames in : frames out); CIF and CTC depend on the speech, tested below.
PAPER_RATIO = {
    ("whisper", "base"): 1,
    ("whisper", "conv"): 4,
    ("whisper", "wlq_former"): 16,
    ("seamless", "base"): 1,
    ("seamless", "conv"): 4,
    ("seamless", "wlq_former"): 2,
}
RATE_HZ = {"whisper": 50.0, "seamless": 6.25}


@pytest.mark.parametrize(("sfm", "name"), sorted(PAPER_RATIO))
def test_table1_fixed_ratios(sfm, name):
    ratio = PAPER_RATIO[(sfm, name)]
    options = {"encoder_frame_rate_hz": RATE_HZ[sfm]} if name == "wlq_former" else {}
    adapter = build(name, **options).eval()
    # 30 s of Whisper frames, lengths that divide evenly, lengths that do not, and tiny clips.
    lens = torch.tensor([1500, 16 * ratio, 16 * ratio + 1, 17, 3, 1])
    hidden = torch.randn(len(lens), 1500, IN_DIM)
    with torch.no_grad():
        output = adapter(hidden, lens)
    expected = torch.tensor([math.ceil(int(n) / ratio) for n in lens])
    assert torch.equal(output.lens, expected)
    assert torch.equal(output.lens[1], torch.tensor(16))  # divides evenly: exactly 1/ratio
    assert torch.equal(output.stats["in_lens"], lens)
    assert torch.equal(output.stats["out_lens"], output.lens)
    assert output.embeds.shape == (len(lens), int(expected.max()), OUT_DIM)
    assert output.aux_loss is None


def test_conv_lengths_follow_the_conv1d_formula_at_each_layer():
    adapter = build("conv").eval()
    lens = torch.arange(1, 40)
    hidden = torch.randn(len(lens), 39, IN_DIM)
    with torch.no_grad():
        output = adapter(hidden, lens)
    once = [(n + 2 * 1 - 3) // 2 + 1 for n in lens.tolist()]
    twice = [(n + 2 * 1 - 3) // 2 + 1 for n in once]
    assert output.lens.tolist() == twice


def test_wlq_former_window_defaults_to_032_seconds_of_frames():
    assert build("wlq_former", encoder_frame_rate_hz=50.0).window == 16
    assert build("wlq_former", encoder_frame_rate_hz=6.25).window == 2
    assert build("wlq_former", encoder_frame_rate_hz=None).window == 16
    assert build("wlq_former", window=5, encoder_frame_rate_hz=6.25).window == 5


def test_wlq_former_emits_queries_per_window_frames_per_window():
    adapter = build("wlq_former", window=4, queries_per_window=3).eval()
    lens = torch.tensor([8, 9, 1])
    with torch.no_grad():
        output = adapter(torch.randn(3, 9, IN_DIM), lens)
    assert output.lens.tolist() == [6, 9, 3]


def test_wlq_former_queries_see_only_their_own_window():
    adapter = build("wlq_former", window=4).eval()
    hidden = torch.randn(1, 12, IN_DIM)
    lens = torch.tensor([12])
    changed = hidden.clone()
    changed[:, 4:8] = torch.randn(1, 4, IN_DIM)  # only the second window
    with torch.no_grad():
        before, _, _ = modality_input(adapter, hidden, lens)
        after, _, _ = modality_input(adapter, changed, lens)
    torch.testing.assert_close(after[:, [0, 2]], before[:, [0, 2]])
    assert not torch.allclose(after[:, 1], before[:, 1])


def test_wlq_former_last_partial_window_attends_to_its_valid_frames_only():
    adapter = build("wlq_former", window=4).eval()
    hidden = torch.randn(1, 6, IN_DIM)  # windows: frames 1-4, frames 5-6 + 2 masked slots
    with torch.no_grad():
        partial, _, _ = modality_input(adapter, hidden, torch.tensor([6]))
        adapter.window = 2  # the same weights on a window that is exactly frames 5-6
        exact, _, _ = modality_input(adapter, hidden[:, 4:], torch.tensor([2]))
    torch.testing.assert_close(partial[0, 1], exact[0, 0])


def test_cif_output_length_equals_token_count_in_training():
    adapter = build("cif").train()
    generator = torch.Generator().manual_seed(1)
    lens = torch.tensor([40, 25, 3, 1])
    targets = AdapterTargets(
        ids=torch.randint(1, VOCAB, (4, 30), generator=generator), lens=torch.tensor([7, 30, 5, 2])
    )
    output = adapter(torch.randn(4, 40, IN_DIM, generator=generator), lens, targets)
    # N = 30 > 25 frames and N = 2 from one frame: scaled α > 1 fires several times per frame.
    assert torch.equal(output.lens, targets.lens)
    expected_loss = (output.stats["alpha_sum"] - targets.lens.float()).abs().mean()
    torch.testing.assert_close(output.aux_loss, expected_loss)


def test_cif_quantity_loss_weight_and_eval_lengths_are_the_predicted_ones():
    adapter = build("cif", quantity_weight=0.25).eval()
    hidden = torch.randn(2, 30, IN_DIM)
    lens = torch.tensor([30, 12])
    targets = AdapterTargets(ids=torch.ones(2, 4, dtype=torch.long), lens=torch.tensor([4, 3]))
    with torch.no_grad():
        output = adapter(hidden, lens, targets)
        alphas = adapter.weight_predictor(hidden, lens)
    torch.testing.assert_close(output.aux_loss, 0.25 * (alphas.sum(1) - targets.lens).abs().mean())
    _, loop_lens = cif_integrate_loop(hidden, alphas, lens)
    assert torch.equal(output.lens, loop_lens)  # eval: not forced to N


def test_cif_hand_computed_example():
    # c = 0.4 0.8 1.2 2.1 2.3: fire at frame 3 (0.2 of it), fire at frame 4 (0.8 of it), tail 0.3 dropped.
    alphas = torch.tensor([[0.4, 0.4, 0.4, 0.9, 0.2]])
    hidden = torch.tensor([[1.0, 10.0, 100.0, 1000.0, 10000.0]]).unsqueeze(-1)
    fired, out_lens = cif_integrate(hidden, alphas)
    assert out_lens.tolist() == [2]
    torch.testing.assert_close(fired[0, :, 0], torch.tensor([0.4 + 4.0 + 20.0, 20.0 + 800.0]))
    # A leftover ≥ 0.5 is fired as a tail; Σα < 0.5 still gives one frame.
    # c = 0.75 1.5: fire 0.75 h1 + 0.25 h2, leftover 0.5 h2 fired as the tail.
    fired, out_lens = cif_integrate(hidden[:, :2], torch.tensor([[0.75, 0.75]]))
    assert out_lens.tolist() == [2]
    torch.testing.assert_close(fired[0, :, 0], torch.tensor([0.75 + 2.5, 5.0]))
    fired, out_lens = cif_integrate(hidden[:, :2], torch.tensor([[0.1, 0.2]]))
    assert out_lens.tolist() == [1]
    torch.testing.assert_close(fired[0, :, 0], torch.tensor([0.1 + 2.0]))


@pytest.mark.parametrize("seed", range(4))
def test_cif_vectorized_equals_loop_reference(seed):
    generator = torch.Generator().manual_seed(seed)
    batch, frames = 5, 60
    lens = torch.randint(1, frames + 1, (batch,), generator=generator)
    lens[0] = frames
    hidden = torch.randn(batch, frames, 6, generator=generator)
    alphas = torch.rand(batch, frames, generator=generator)
    if seed % 2:  # scaled as in training: some α > 1, several fires from one frame
        alphas = alphas * 2.5
    alphas = alphas * (torch.arange(frames)[None, :] < lens[:, None])
    fired, out_lens = cif_integrate(hidden, alphas)
    expected, expected_lens = cif_integrate_loop(hidden, alphas, lens)
    assert torch.equal(out_lens, expected_lens)
    torch.testing.assert_close(fired, expected, atol=1e-4, rtol=1e-5)


def test_cif_adapter_stage_equals_loop_reference():
    adapter = build("cif").eval()
    generator = torch.Generator().manual_seed(5)
    lens = torch.tensor([50, 31, 8, 2])
    hidden = garbage_padded(torch.randn(4, 50, IN_DIM, generator=generator), lens)
    with torch.no_grad():
        stage, stage_lens, _ = modality_input(adapter, hidden, lens)
        alphas = adapter.weight_predictor(hidden, lens)
    masked = hidden * (torch.arange(50)[None, :] < lens[:, None]).unsqueeze(-1)
    expected, expected_lens = cif_integrate_loop(masked, alphas, lens)
    assert torch.equal(stage_lens, expected_lens)
    torch.testing.assert_close(stage, expected, atol=1e-4, rtol=1e-5)


def test_ctc_merges_runs_as_computed_by_hand():
    torch.manual_seed(0)
    adapter = ADAPTERS.build(
        {"name": "ctc", **TINY, "vocab_size": 4, "blank_id": 0}, in_dim=4, out_dim=OUT_DIM
    )
    adapter.eval()
    with torch.no_grad():  # a fixed head: the label of a frame is its largest feature
        adapter.head.weight.copy_(torch.eye(4))
        adapter.head.bias.zero_()
    labels = [1, 1, 0, 0, 0, 2, 1, 1]
    hidden = torch.stack([F.one_hot(torch.tensor(k), 4).float() * (t + 1) for t, k in enumerate(labels)])[
        None
    ]
    lens = torch.tensor([8])
    with torch.no_grad():
        stage, stage_lens, output = modality_input(adapter, hidden, lens)
    # runs [1 1] [0 0 0] [2] [1 1] over frames valued 1..8
    expected = torch.tensor([[0, 1.5, 0, 0], [4.0, 0, 0, 0], [0, 0, 6.0, 0], [0, 7.5, 0, 0]])
    assert stage_lens.tolist() == [4]
    torch.testing.assert_close(stage[0], expected)
    assert output.stats["blank_frames"].tolist() == [3]
    # max_len keeps the first runs.
    adapter.max_len = 3
    with torch.no_grad():
        stage, stage_lens, _ = modality_input(adapter, hidden, lens)
    assert stage_lens.tolist() == [3]
    torch.testing.assert_close(stage[0], expected[:3])


@pytest.mark.parametrize("max_len", [None, 4])
def test_ctc_compress_equals_loop_reference(max_len):
    generator = torch.Generator().manual_seed(3)
    lens = torch.tensor([40, 17, 1, 33])
    hidden = torch.randn(4, 40, 6, generator=generator)
    labels = torch.randint(0, 3, (4, 40), generator=generator)  # few labels: long runs
    pooled, out_lens = ctc_compress(hidden, labels, lens, max_len)
    expected, expected_lens = ctc_compress_loop(hidden, labels, lens, max_len)
    assert torch.equal(out_lens, expected_lens)
    torch.testing.assert_close(pooled, expected)


def test_ctc_aux_loss_is_the_weighted_ctc_loss_of_the_head():
    adapter = build("ctc", ctc_weight=0.5).train()
    generator = torch.Generator().manual_seed(2)
    lens = torch.tensor([30, 22])
    hidden = torch.randn(2, 30, IN_DIM, generator=generator)
    targets = random_targets(2, generator)
    output = adapter(hidden, lens, targets)
    log_probs = F.log_softmax(adapter.head(hidden), dim=-1).transpose(0, 1)
    ids = targets.ids.clamp(min=0)
    expected = F.ctc_loss(log_probs, ids, lens, targets.lens, blank=0, zero_infinity=True)
    torch.testing.assert_close(output.aux_loss, 0.5 * expected)


def _transcripts_ctc() -> torch.nn.Module:
    adapter = ADAPTERS.build(
        {"name": "ctc", **TINY, "vocab_size": 8, "blank_id": 0, "vocab": "transcripts"},
        in_dim=8,
        out_dim=OUT_DIM,
    )
    with torch.no_grad():  # a fixed head: the label of a frame is its largest feature
        adapter.head.weight.copy_(torch.eye(8))
        adapter.head.bias.zero_()
    return adapter


def test_ctc_transcripts_vocab_scores_the_blank_and_the_kept_ids_only():
    adapter = _transcripts_ctc()
    adapter.set_vocab(torch.tensor([5, 3, 3, 0]))  # unsorted, repeated, with the blank's own id
    assert adapter.vocab_ids.tolist() == [3, 5]
    # Frames valued at ids 3 3 0 5 5: classes 1 1 0(blank) 2 2 → three runs, one of blanks.
    hidden = torch.stack([F.one_hot(torch.tensor(k), 8).float() for k in (3, 3, 0, 5, 5)])[None]
    lens = torch.tensor([5])
    logits = adapter.logits(hidden)
    torch.testing.assert_close(logits, hidden[..., [0, 3, 5]])
    adapter.train()
    targets = AdapterTargets(torch.tensor([[3, 7, 5]]), torch.tensor([3]))  # 7 is not kept: dropped
    output = adapter(hidden, lens, targets)
    assert output.lens.tolist() == [3] and output.stats["blank_frames"].tolist() == [1]
    log_probs = F.log_softmax(logits, dim=-1).transpose(0, 1)
    expected = F.ctc_loss(
        log_probs, torch.tensor([[1, 2]]), lens, torch.tensor([2]), blank=0, zero_infinity=True
    )
    torch.testing.assert_close(output.aux_loss, adapter.ctc_weight * expected)
    # The kept ids are saved; a fresh adapter (every id kept) adopts them on load.
    fresh = _transcripts_ctc()
    assert fresh.vocab_ids.numel() == 7
    fresh.load_state_dict(adapter.state_dict())
    assert fresh.vocab_ids.tolist() == [3, 5]
    torch.testing.assert_close(fresh.logits(hidden), logits)


def test_ctc_vocab_option_is_checked():
    with pytest.raises(ValueError, match="`vocab` must be one of all, transcripts"):
        build("ctc", vocab="words")
    with pytest.raises(ValueError, match="set_vocab needs `vocab: transcripts`"):
        build("ctc").set_vocab(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="no token id kept"):
        _transcripts_ctc().set_vocab(torch.tensor([0]))


def test_bad_options_name_the_key():
    with pytest.raises(ValueError, match="blank_id"):
        build("ctc", blank_id=VOCAB)
    with pytest.raises(ValueError, match="window"):
        build("wlq_former", window=0)


# ---------------------------------------------------------------- contract shared by all adapters


@pytest.mark.parametrize("name", NAMES)
def test_padding_invariance(name):
    adapter = build(name, window=4) if name == "wlq_former" else build(name)
    adapter.eval()
    generator = torch.Generator().manual_seed(7)
    lens = torch.tensor([37, 20, 5, 1])
    hidden = torch.randn(4, 37, IN_DIM, generator=generator)
    with torch.no_grad():
        batched = adapter(garbage_padded(hidden, lens, extra=23), lens)
        for b, n in enumerate(lens.tolist()):
            alone = adapter(hidden[b : b + 1, :n], lens[b : b + 1])
            m = int(alone.lens[0])
            assert int(batched.lens[b]) == m
            torch.testing.assert_close(batched.embeds[b, :m], alone.embeds[0], atol=1e-5, rtol=1e-4)
            assert torch.all(batched.embeds[b, m:] == 0)


@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast_and_bf16_parameters(name):
    generator = torch.Generator().manual_seed(4)
    lens = torch.tensor([40, 9])
    hidden = torch.randn(2, 40, IN_DIM, generator=generator)
    targets = random_targets(2, generator)
    adapter = build(name).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = adapter(hidden, lens, targets)
    assert torch.isfinite(output.embeds.float()).all()
    if output.aux_loss is not None:
        assert torch.isfinite(output.aux_loss)
    adapter = adapter.to(torch.bfloat16).eval()
    with torch.no_grad():
        output = adapter(hidden.to(torch.bfloat16), lens)
    assert output.embeds.dtype == torch.bfloat16
    assert torch.isfinite(output.embeds.float()).all()
    assert (output.lens >= 1).all()


@pytest.mark.parametrize("name", NAMES)
def test_batch_of_one_short_clip_gives_at_least_one_frame(name):
    adapter = build(name).eval()  # wlq_former window 16, conv stride 4: both longer than the clip
    for frames in (1, 2, 3):
        with torch.no_grad():
            output = adapter(torch.randn(1, frames, IN_DIM), torch.tensor([frames]))
        assert int(output.lens[0]) >= 1
        assert output.embeds.shape == (1, int(output.lens[0]), OUT_DIM)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_adapter_parameter(name):
    adapter = build(name).train()
    generator = torch.Generator().manual_seed(6)
    lens = torch.tensor([40, 23])
    targets = random_targets(2, generator)
    output = adapter(torch.randn(2, 40, IN_DIM, generator=generator), lens, targets)
    loss = (output.embeds * torch.randn(output.embeds.shape, generator=generator)).sum()
    if output.aux_loss is not None:
        loss = loss + output.aux_loss
    loss.backward()
    missing = [n for n, p in adapter.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"
