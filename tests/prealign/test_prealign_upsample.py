"""prealign.upsample: an adapter with fewer vectors than its transcript has tokens (the WLQ-former)
can meet the CTC objective when each vector may spell U labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers.paths import TINY_RECIPE

from speechllm.adapters.interface import AdapterOutput, AdapterTargets
from speechllm.config import load_config
from speechllm.lightning.checkpoint import PREALIGN_DIR
from speechllm.model import SpeechLLM
from speechllm.prealign.head import PreAlignHead
from speechllm.training import train

DIM, VOCAB = 16, 24


def _table() -> torch.Tensor:
    return torch.randn(VOCAB, DIM, generator=torch.Generator().manual_seed(0))


def test_each_vector_becomes_u_scored_frames_and_the_frames_readout_keeps_the_vectors() -> None:
    head = PreAlignHead(DIM, VOCAB, upsample=3, readout="frames")
    out = AdapterOutput(torch.randn(2, 4, DIM), torch.tensor([4, 2]))
    scored = head.scored(out)
    assert scored.embeds.shape == (2, 12, DIM) and scored.lens.tolist() == [12, 6]
    # Frames 3t, 3t+1, 3t+2 are the three maps of vector t, in order.
    for u in range(3):
        assert torch.allclose(scored.embeds[:, u::3], out.embeds @ head.splits[u].t(), atol=1e-5)
    read = head(out, _table())
    assert read.embeds.shape == (2, 4, DIM) and read.lens.tolist() == [4, 2]


def test_a_transcript_longer_than_the_vectors_is_learned_only_with_upsampling() -> None:
    torch.manual_seed(0)
    table, transcript = _table(), [3, 7, 7, 11, 5, 19]  # six tokens, a repeat among them
    targets = AdapterTargets(torch.tensor([transcript]), torch.tensor([6]))
    decoded = {}
    for upsample in (1, 3):
        head = PreAlignHead(DIM, VOCAB, upsample=upsample, vocab="all")
        vectors = torch.nn.Parameter(torch.randn(1, 4, DIM))  # four vectors for six tokens
        params = [vectors, head.blank, head.log_scale] + ([head.splits] if head.splits is not None else [])
        optimizer = torch.optim.Adam(params, lr=0.05)
        for _ in range(300):
            loss = head.loss("ctc", AdapterOutput(vectors, torch.tensor([4])), targets, table)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        decoded[upsample] = head.greedy_ids("ctc", AdapterOutput(vectors.detach(), torch.tensor([4])), table)[
            0
        ]
    assert decoded[3] == transcript
    assert len(decoded[1]) <= 4  # four frames cannot spell six labels


def test_upsample_must_be_a_positive_integer() -> None:
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="upsample"):
            PreAlignHead(DIM, VOCAB, upsample=bad)


def test_the_split_maps_are_trained_by_readouts_that_read_the_frames_they_score() -> None:
    tokens = PreAlignHead(DIM, VOCAB, upsample=2, readout="tokens")
    assert tokens.splits is not None and tokens.splits.requires_grad
    frames = PreAlignHead(DIM, VOCAB, upsample=2, readout="frames")
    assert frames.splits is not None and not frames.splits.requires_grad
    assert PreAlignHead(DIM, VOCAB).splits is None


def test_a_wlq_former_pre_aligns_with_ctc_through_upsampling_and_the_maps_round_trip(
    tmp_path: Path, tones_dir: Path, tiny_model_overrides: list[str]
) -> None:
    cfg = load_config(
        TINY_RECIPE,
        [
            *tiny_model_overrides,
            "model.adapter.name=wlq_former",
            f"output_dir={tmp_path / 'run'}",
            f"data.train=[{{path: {tones_dir}/tones_cuts_train.jsonl.gz, task: asr}}]",
            f"data.val=[{{path: {tones_dir}/tones_cuts_dev.jsonl.gz, task: asr}}]",
            "trainer.enable_progress_bar=false",
            "trainer.logger=none",
            "prealign.objective=ctc",
            "prealign.steps=3",
            "model.prealign.upsample=3",
            "trainer.max_steps=1",
        ],
    )
    model_dir = train(cfg)
    pre = SpeechLLM.from_pretrained(Path(cfg.output_dir) / PREALIGN_DIR / "model")
    splits = pre.prealign.splits
    assert splits is not None and splits.shape[0] == 3
    # Initialised as rotations; three steps of pre-alignment moved them.
    eye = torch.eye(splits.shape[-1]).expand_as(splits)
    assert not torch.allclose(splits @ splits.transpose(1, 2), eye, atol=1e-4)
    summary = json.loads((Path(cfg.output_dir) / PREALIGN_DIR / "prealign.json").read_text())
    assert summary["steps"] == 3
    # The frames readout leaves the maps to pre-alignment; the saved model keeps them.
    final = SpeechLLM.from_pretrained(model_dir)
    assert torch.equal(final.prealign.splits, splits)


def test_upsample_with_the_ce_objective_is_refused_naming_the_key(tiny_model_overrides: list[str]) -> None:
    from speechllm.prealign.module import PreAlignModule

    cfg = load_config(None, [*tiny_model_overrides, "model.adapter.name=cif", "model.prealign.upsample=2"])
    model = SpeechLLM.from_config(cfg.model)
    with pytest.raises(ValueError, match=r"model\.prealign\.upsample: 2 needs prealign\.objective ctc"):
        PreAlignModule(model, "ce")
    PreAlignModule(model, "ctc")  # the same model pre-aligns with CTC


@torch.no_grad()
def test_joint_ctc_decoding_scores_the_upsampled_frames_and_a_batch_decodes_as_each_clip_alone(
    tiny_model_overrides: list[str],
) -> None:
    torch.manual_seed(0)
    cfg = load_config(
        None,
        [
            *tiny_model_overrides,
            "model.adapter.name=wlq_former",
            "model.prealign.readout=tokens",
            "model.prealign.upsample=3",
        ],
    )
    model = SpeechLLM.from_config(cfg.model).eval()
    model.prealign.set_vocab(torch.arange(3, 200))
    lens = torch.tensor([16000, 9600])
    audio = torch.randn(2, 16000) * 0.1 * (torch.arange(16000)[None] < lens[:, None])
    hidden, hidden_lens = model.encoder(audio, lens)
    out = model.adapter(hidden, hidden_lens)
    scorer, logits = model._ctc_scorer(out, model.llm.prompts.stop_ids)
    assert scorer.frames == 3 * out.embeds.shape[1]
    # The readout given those logits reads what it would have computed itself.
    table = model.llm.input_embeddings()
    given, own = model.prealign.read(out, table, logits), model.prealign.read(out, table)
    assert torch.equal(given.embeds, own.embeds) and torch.equal(given.lens, own.lens)
    for row, length in enumerate((out.lens * 3).tolist()):  # a clip's frames end at 3 × its vectors
        assert bool((scorer.x[row, length:, 0] == 0).all()) and bool((scorer.x[row, :length, 0] < 0).all())
    options = {"max_new_tokens": 5, "ctc_weight": 0.5, "ctc_candidates": 4}
    batched = model.generate_detailed(audio, lens, **options)
    alone = [
        model.generate_detailed(audio[i : i + 1, : int(lens[i])], lens[i : i + 1], **options)
        for i in range(2)
    ]
    assert batched.texts == [one.texts[0] for one in alone]
