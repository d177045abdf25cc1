"""COMET through comet's own load_from_checkpoint, on a tiny model built offline by the test."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

comet = pytest.importorskip(
    "comet", reason="unbabel-comet not installed: pip install --no-deps unbabel-comet==2.2.7"
)

from speechllm.metrics.comet import CometScorer  # noqa: E402

pytestmark = pytest.mark.assets

SRCS = ["der Hund läuft schnell", "die Katze schläft", "le chat dort sur le canapé", "il gatto beve"]
HYPS = ["the dog runs fast", "the cat sleeps", "the cat sleeps on the sofa", "the cat drinks"]
REFS = ["the dog is running fast", "the cat is sleeping", "the cat sleeps on the couch", "the cat drinks"]


def test_tiny_comet_scores_are_finite_deterministic_and_average_to_system(tiny_comet_dir: Path) -> None:
    scorer = CometScorer(tiny_comet_dir, batch_size=3, device="cpu", local_files_only=True)
    scores, system = scorer.score(SRCS, HYPS, REFS)
    assert len(scores) == len(SRCS)
    assert all(math.isfinite(s) for s in scores)
    assert system == pytest.approx(sum(scores) / len(scores), abs=1e-12)
    # Same model, again: identical numbers; batching and length sorting do not change them.
    again, _ = CometScorer(tiny_comet_dir / "checkpoints" / "model.ckpt", batch_size=1, device="cpu").score(
        SRCS, HYPS, REFS
    )
    assert again == pytest.approx(scores, abs=1e-5)
    # Scores depend on the hypothesis: a different translation of sentence 0 changes its score only.
    changed, _ = scorer.score(SRCS, ["a house near the river", *HYPS[1:]], REFS)
    assert changed[0] != pytest.approx(scores[0], abs=1e-7)
    assert changed[1:] == pytest.approx(scores[1:], abs=1e-5)


def test_comet_matches_comets_own_predict(tiny_comet_dir: Path) -> None:
    """Our batched loop computes what comet's predict (a Lightning Trainer) computes."""
    scorer = CometScorer(tiny_comet_dir, batch_size=2, device="cpu")
    ours, system = scorer.score(SRCS, HYPS, REFS)
    samples = [{"src": s, "mt": h, "ref": r} for s, h, r in zip(SRCS, HYPS, REFS)]
    reference = scorer.model.predict(samples, batch_size=2, gpus=0, progress_bar=False, num_workers=0)
    assert ours == pytest.approx(list(reference.scores), abs=1e-5)
    assert system == pytest.approx(reference.system_score, abs=1e-5)


def test_shim_builds_xlmr_pair_layout(tiny_comet_dir: Path) -> None:
    """comet joins segments with the tokenizer's special-token method, gone in transformers 5."""
    scorer = CometScorer(tiny_comet_dir, device="cpu")
    encoder = scorer.model.encoder
    tok = encoder.tokenizer
    first = tok(["the cat"], return_tensors="pt")["input_ids"]
    second = tok(["le chat"], return_tensors="pt")["input_ids"]
    joined = encoder.concat_sequences([{"input_ids": first}, {"input_ids": second}])[0]["input_ids"][
        0
    ].tolist()
    expected = (
        [tok.cls_token_id] + first[0, 1:-1].tolist() + [tok.sep_token_id] * 2 + second[0, 1:-1].tolist()
    ) + [tok.sep_token_id]
    assert joined == expected


def test_missing_checkpoint_directory_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoints/model.ckpt"):
        CometScorer(tmp_path, device="cpu")
