"""A tiny random COMET model, built offline (sentencepiece, a random XLM-R, comet's own classes)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from speechllm.metrics.comet import apply_transformers5_shim

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


def build_tiny_comet(root: Path) -> Path:
    """A comet model directory: hparams.yaml + checkpoints/model.ckpt over a tiny random XLM-R."""
    import pytorch_lightning
    import sentencepiece
    import yaml
    from comet.models import RegressionMetric
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizer

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
