"""COMET (``Unbabel/wmt22-comet-da`` by default) through unbabel-comet, on transformers 5.

unbabel-comet 2.2.7 pins ``transformers<5`` and ``numpy<2``, which this stack cannot meet, so it
is installed without its dependencies (``pip install 'speechllm[comet]'`` then
``pip install --no-deps unbabel-comet==2.2.7``) and two incompatibilities are patched here,
before any model is loaded (:func:`apply_transformers5_shim`):

1. comet's encoders call the Hugging Face model with ``return_dict=False`` and unpack three
   values (last hidden state, pooler output, all layers). transformers 5 drops the ``None``
   pooler output from that tuple, so the unpacking fails. The shim calls the model with named
   outputs and reads ``last_hidden_state`` / ``hidden_states`` / ``pooler_output`` by name.
2. transformers 5 tokenizers no longer have ``build_inputs_with_special_tokens``, which comet
   uses to join segments (unified metrics such as XCOMET). The shim gives the tokenizer that
   method, building ``<s> A </s></s> B </s>`` (XLM-R) or ``[CLS] A [SEP] B [SEP]`` (BERT) from
   the encoder's own separator size.

Inference runs in our own batched ``torch.inference_mode`` loop over comet's
``prepare_for_inference`` and ``forward`` (the exact computation of ``model.predict``), not
through ``predict``, because ``predict`` starts a Lightning ``Trainer`` of its own, which must
not run inside a training run's callbacks.

Scores are COMET's 0–1 values; reports multiply by 100 like the paper.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

DEFAULT_COMET_MODEL = "Unbabel/wmt22-comet-da"
INSTALL_HINT = "pip install 'speechllm[comet]' && pip install --no-deps unbabel-comet==2.2.7"


def _import_comet() -> Any:
    try:
        import comet
    except ImportError as error:
        raise ImportError(
            f"COMET needs unbabel-comet, which is not installed ({error}). Install it with: {INSTALL_HINT}"
        ) from error
    return comet


def _build_inputs_with_special_tokens(
    tokenizer: Any, separator_size: int, ids_0: list[int], ids_1: list[int] | None = None
) -> list[int]:
    """transformers 4's pair layout: ``cls A sep`` or ``cls A sep×separator_size B sep``."""
    cls, sep = [tokenizer.cls_token_id], [tokenizer.sep_token_id]
    if ids_1 is None:
        return cls + list(ids_0) + sep
    return cls + list(ids_0) + sep * separator_size + list(ids_1) + sep


@functools.cache
def apply_transformers5_shim() -> None:
    """Patch comet's encoders for transformers 5 (idempotent; see the module docstring)."""
    _import_comet()
    from comet.encoders.base import Encoder
    from comet.encoders.bert import BERTEncoder
    from comet.encoders.xlmr import XLMREncoder

    def _named_outputs(self: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any):
        # input_ids, attention_mask: (B, L). hidden states: layers+1 tensors of (B, L, C).
        model_kwargs = {}
        if kwargs.get("token_type_ids") is not None and self.uses_token_type_ids:
            model_kwargs["token_type_ids"] = kwargs["token_type_ids"]
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=True,
            return_dict=True,
            **model_kwargs,
        )
        return out, attention_mask

    def xlmr_forward(self: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any):
        out, mask = _named_outputs(self, input_ids, attention_mask, **kwargs)
        return {
            "sentemb": out.last_hidden_state[:, 0, :],
            "wordemb": out.last_hidden_state,
            "all_layers": out.hidden_states,
            "attention_mask": mask,
        }

    def bert_forward(self: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any):
        out, mask = _named_outputs(self, input_ids, attention_mask, **kwargs)
        return {
            "sentemb": getattr(out, "pooler_output", None),
            "wordemb": out.last_hidden_state,
            "all_layers": out.hidden_states,
            "attention_mask": mask,
        }

    original_concat = Encoder.concat_sequences

    def concat_sequences(self: Any, *args: Any, **kwargs: Any):
        tokenizer = self.tokenizer
        if not hasattr(tokenizer, "build_inputs_with_special_tokens"):
            tokenizer.build_inputs_with_special_tokens = functools.partial(
                _build_inputs_with_special_tokens, tokenizer, self.size_separator
            )
        return original_concat(self, *args, **kwargs)

    XLMREncoder.forward = xlmr_forward
    BERTEncoder.forward = bert_forward
    Encoder.concat_sequences = concat_sequences


def resolve_checkpoint(model: str | os.PathLike[str]) -> Path:
    """A COMET ``model.ckpt`` path from a hub name, a model directory or a checkpoint file.

    A directory is the layout comet downloads: ``<dir>/hparams.yaml`` and
    ``<dir>/checkpoints/model.ckpt``. Anything else that is not an existing path is treated
    as a hub name and downloaded (or read from the Hugging Face cache) by comet.
    """
    path = Path(model)
    if path.is_file():
        return path
    if path.is_dir():
        checkpoint = path / "checkpoints" / "model.ckpt"
        if not checkpoint.is_file():
            raise FileNotFoundError(f"COMET model directory {path} has no checkpoints/model.ckpt")
        return checkpoint
    comet = _import_comet()
    return Path(comet.download_model(str(model)))


class CometScorer:
    """A COMET model loaded once, scoring (source, hypothesis, reference) triples in batches.

    Args:
        model: hub name (default ``Unbabel/wmt22-comet-da``), a comet model directory, or a
            ``model.ckpt`` path.
        batch_size: triples per forward pass.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, … (default: CUDA when available).
        local_files_only: do not contact the hub for the encoder's tokenizer/config (offline use;
            the encoder named in the checkpoint's hparams must then be cached or a local path).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_COMET_MODEL,
        batch_size: int = 16,
        device: str | torch.device | None = None,
        local_files_only: bool = False,
    ) -> None:
        comet = _import_comet()
        apply_transformers5_shim()
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.checkpoint = resolve_checkpoint(model)
        self.batch_size = batch_size
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = comet.load_from_checkpoint(str(self.checkpoint), local_files_only=local_files_only)
        self.model.eval().to(self.device)

    @torch.inference_mode()
    def score(
        self, srcs: Sequence[str], hyps: Sequence[str], refs: Sequence[str]
    ) -> tuple[list[float], float]:
        """Per-sentence COMET scores (input order) and the system score, their mean.

        Triples are batched in order of source length so batches carry little padding.
        """
        if not (len(srcs) == len(hyps) == len(refs)):
            raise ValueError(f"got {len(srcs)} sources, {len(hyps)} hypotheses and {len(refs)} references")
        if not srcs:
            raise ValueError("COMET is undefined for an empty test set")
        samples = [{"src": s, "mt": h, "ref": r} for s, h, r in zip(srcs, hyps, refs)]
        order = sorted(range(len(samples)), key=lambda i: len(samples[i]["src"]))
        scores = [0.0] * len(samples)
        for start in range(0, len(order), self.batch_size):
            batch_ids = order[start : start + self.batch_size]
            inputs = self.model.prepare_for_inference([samples[i] for i in batch_ids])
            inputs = {name: tensor.to(self.device) for name, tensor in inputs.items()}
            batch_scores = self.model(**inputs).score.float().cpu().tolist()  # (batch,)
            for i, value in zip(batch_ids, batch_scores):
                scores[i] = float(value)
        return scores, sum(scores) / len(scores)
