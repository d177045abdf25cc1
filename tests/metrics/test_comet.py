"""COMET through comet's own load_from_checkpoint, on a tiny model built offline by the test."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

comet = pytest.importorskip(
    "comet", reason="unbabel-comet not installed: pip install --no-deps unbabel-comet==2.2.7"
)

from speechllm.metrics.comet import CometScorer, apply_transformers5_shim  # noqa: E402

pytestmark = pytest.mark.assets

CORPUS = [
    "the cat sat on the mat",
    "the dog is running in the park",
    "der Hund läuft schnell durch den Park",
    "die Katze schläft auf der Matte",
    "el gato come pescado en la cocina",
    "le chat dort sur le canapé",
    "il gatto beve il latte",
    "a small house near the river",
]


@pytest.fixture(scope="module")
def tiny_comet_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch) -> Path:
    """A comet model directory: hparams.yaml + checkpoints/model.ckpt over a tiny random XLM-R."""
    import pytorch_lightning
    import sentencepiece
    import yaml
    from comet.models import RegressionMetric
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizer

    root = tmp_path_factory.mktemp("tiny_comet")
    (root / "corpus.txt").write_text("\n".join(CORPUS * 4), encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        input=str(root / "corpus.txt"),
        model_prefix=str(root / "spm"),
        vocab_size=80,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    # XLM-R's tokenizer converts a sentencepiece model it finds under this file name.
    encoder_dir = root / "tiny-xlmr"
    encoder_dir.mkdir()
    shutil.copy(root / "spm.model", encoder_dir / "sentencepiece.bpe.model")
    tokenizer = XLMRobertaTokenizer.from_pretrained(str(encoder_dir))
    tokenizer.save_pretrained(str(encoder_dir))
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(str(encoder_dir))

    apply_transformers5_shim()
    metric = RegressionMetric(
        pretrained_model=str(encoder_dir),
        hidden_sizes=[16],
        layer="mix",
        layer_transformation="sparsemax",
        load_pretrained_weights=False,
        local_files_only=True,
    )
    # The layout comet downloads: <model>/hparams.yaml and <model>/checkpoints/model.ckpt.
    model_dir = root / "tiny-comet"
    (model_dir / "checkpoints").mkdir(parents=True)
    hparams = dict(metric.hparams)
    (model_dir / "hparams.yaml").write_text(
        yaml.safe_dump({**hparams, "class_identifier": "regression_metric"}), encoding="utf-8"
    )
    torch.save(
        {
            "state_dict": metric.state_dict(),
            "hyper_parameters": hparams,
            "pytorch-lightning_version": pytorch_lightning.__version__,
        },
        model_dir / "checkpoints" / "model.ckpt",
    )
    return model_dir


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        yield patch


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
