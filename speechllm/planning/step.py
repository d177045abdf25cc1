"""One training step and one decoding step of a meta-built configuration, counted: FLOPs with
``torch.utils.flop_counter.FlopCounterMode`` and the bytes autograd saves for the backward pass.

The step is :meth:`speechllm.model.SpeechLLM.forward` with static shapes: every clip of the batch
has the same length, so the wrappers' data-dependent steps (cutting a batch to its longest clip,
splicing rows of different lengths) have known results, and the same matrix products run on
``meta`` tensors as on real ones. A real step on equal-length clips counts the same FLOPs
(``tests/planning/test_step_flops.py`` holds the two against each other on the tiny models).

The length stages read values that ``meta`` tensors do not have. Where the clip lengths decide them
(Conv's strides, WLQ-former's windows), :class:`~speechllm.planning.length_values.LengthValues`
computes them for real beside ``meta``, so the stage runs as is. Where the trained outputs decide
them (CTC's labels, CIF's α), the stage's
:meth:`~speechllm.adapters.interface.Adapter.planned_compress` runs the same products with the
planned output length. Either way the counts are the real step's (the same test holds all five).
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from speechllm.adapters.interface import AdapterOutput, Compressed, zero_padding
from speechllm.planning.length_values import LengthValues
from speechllm.planning.meta_model import MetaSpeechLLM

META = torch.device("meta")


@dataclass(frozen=True)
class StepShape:
    """The per-GPU batch of one step, every clip alike.

    Attributes:
        batch: clips B.
        samples: 16 kHz samples per clip.
        audio_tokens: adapter outputs per clip (the LLM's audio positions).
        prompt_tokens: chat-template tokens around the audio (prefix + suffix).
        target_tokens: transcript or translation tokens, the stop token included.
    """

    batch: int
    samples: int
    audio_tokens: int
    prompt_tokens: int
    target_tokens: int

    @property
    def llm_tokens(self) -> int:
        """The LLM's sequence length L."""
        return self.prompt_tokens + self.audio_tokens + self.target_tokens


@dataclass
class StepCount:
    """What one training step costs.

    Attributes:
        flops: ``{encoder, forward, backward}`` FLOPs (``forward``: adapter + LLM).
        llm_forward_flops: the decoder layers' forward FLOPs (recomputed once with checkpointing).
        saved_bytes: bytes autograd keeps for backward, ``{llm_layer, other}``; parameters excluded.
        largest_layer_bytes: the most one decoder layer saves (recomputed at once with checkpointing).
        layer_input_bytes: one decoder layer's input (B, L, D), what checkpointing keeps per layer.
        logits_bytes: the float32 logits of the target positions and their gradient.
    """

    flops: dict[str, int] = field(default_factory=dict)
    llm_forward_flops: int = 0
    saved_bytes: dict[str, int] = field(default_factory=dict)
    largest_layer_bytes: int = 0
    layer_input_bytes: int = 0
    logits_bytes: int = 0

    @property
    def total_flops(self) -> int:
        return sum(self.flops.values())


def encoder_frames(model: MetaSpeechLLM, samples: int) -> int:
    """Encoder output frames of one clip (the wrappers' ``output_lengths``)."""
    if model.encoder_name == "whisper":
        return (samples // 160 + 1) // 2
    lens = (1 + (samples - 400) // 160) // 2
    config = model.encoder_config
    for _ in range(config.num_adapter_layers if config.add_adapter else 0):
        pad = config.adaptor_kernel_size // 2
        lens = (lens + 2 * pad - config.adaptor_kernel_size) // config.adaptor_stride + 1
    return lens


def _encode(model: MetaSpeechLLM, batch: int, samples: int) -> Tensor:
    """The frozen encoder's matrix products: features (the mel projection) and the network."""
    config, enc = model.encoder_config, model.encoder
    device = next(enc.parameters()).device
    dtype = next(enc.parameters()).dtype
    if model.encoder_name == "whisper":
        mel_frames = 3000 if model.pad_to_30s else samples // 160
        power = torch.empty(batch, 201, mel_frames, device=device)  # |STFT|² of n_fft 400
        features = (torch.empty(config.num_mel_bins, 201, device=device) @ power).to(dtype)
        if model.pad_to_30s:
            hidden = enc(features).last_hidden_state
        else:  # WhisperSpeechEncoder._true_length_forward's modules
            hidden = F.gelu(enc.conv2(F.gelu(enc.conv1(features)))).transpose(1, 2)
            hidden = hidden + enc.embed_positions.weight[: hidden.shape[1]]
            for layer in enc.layers:
                hidden = layer(hidden, None)
            hidden = enc.layer_norm(hidden)
        return hidden[:, : encoder_frames(model, samples)]
    fbank_frames = 1 + (samples - 400) // 160
    spectrum = torch.empty(batch, fbank_frames, 257, device=device, dtype=torch.float64)
    fbank = spectrum @ torch.empty(
        257, config.feature_projection_input_dim // 2, device=device, dtype=torch.float64
    )
    stacked = fbank[:, : fbank_frames // 2 * 2].reshape(batch, fbank_frames // 2, -1).to(dtype)
    return enc(stacked).last_hidden_state


def static_audio_tokens(model: MetaSpeechLLM, frames: int) -> int | None:
    """The adapter's output length for ``frames`` encoder frames when the clip length decides it
    (Base, Conv, WLQ-former: run on ``meta``), else None (CTC, CIF: the trained outputs decide it, so
    the planner uses a rate)."""
    if model.adapter.learned_length:
        return None
    hidden = torch.empty(1, frames, model.adapter.in_dim, device=META)
    with LengthValues() as values, values.following(), torch.no_grad():
        stage = model.adapter.compress(hidden, values.known(torch.full((1,), frames)))
    return int((stage.hidden if isinstance(stage, Compressed) else stage[0]).shape[1])


def _adapt(model: MetaSpeechLLM, hidden: Tensor, shape: StepShape, values: LengthValues) -> AdapterOutput:
    """The adapter on the encoder frames → (B, audio_tokens, D) embeds. A stage whose length the
    clip decides runs as is, its length arithmetic followed by ``values``; a learned-length stage
    runs :meth:`~speechllm.adapters.interface.Adapter.planned_compress` with the planned length."""
    adapter = model.adapter
    with values.following():
        lens = values.known(torch.full((shape.batch,), hidden.shape[1]))
    hidden = hidden.float()
    if not adapter.learned_length:
        with values.following():
            return adapter(hidden, lens)
    stage = adapter.planned_compress(zero_padding(hidden, lens), lens, shape.audio_tokens)
    embeds = adapter.modality(zero_padding(stage.hidden, stage.lens), stage.lens)
    return AdapterOutput(embeds, stage.lens, stage.aux_loss)


class _NoCount(nullcontext):
    """In place of a FLOP counter when a real step is only timed."""

    def get_total_flops(self) -> int:
        return 0


class _SavedTensors:
    """Bytes that autograd saves, per unit (``llm_layer`` while a decoder layer runs, else
    ``other``); each storage once, parameters never (they are counted as parameters)."""

    def __init__(self, model: MetaSpeechLLM) -> None:
        self.params = {p.untyped_storage()._cdata for p in _all_parameters(model)}
        self.seen: set[int] = set()
        self.unit = "other"
        self.layer_bytes: list[int] = []
        self.bytes: dict[str, int] = defaultdict(int)

    def pack(self, tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        if storage._cdata not in self.params and storage._cdata not in self.seen:
            self.seen.add(storage._cdata)
            nbytes = storage.nbytes()
            self.bytes[self.unit] += nbytes
            if self.unit == "llm_layer":
                self.layer_bytes[-1] += nbytes
        return tensor

    def enter_layer(self, *_: object) -> None:
        self.unit = "llm_layer"
        self.layer_bytes.append(0)

    def leave_layer(self, *_: object) -> None:
        self.unit = "other"


def _all_parameters(model: MetaSpeechLLM) -> list[nn.Parameter]:
    return [*model.encoder.parameters(), *model.adapter.parameters(), *model.causal_lm.parameters()]


def _positions(batch: int, queries: int, keys: int, device: torch.device = META) -> dict[str, Tensor]:
    """A 4-D causal mask (B, 1, queries, keys) and the positions of the last ``queries`` of ``keys``
    tokens. Real steps pass a 2-D padding mask (:func:`speechllm.masking.splice`) that transformers
    turns into this; from a 2-D mask it would read the mask's values, which ``meta`` has not."""
    causal = torch.ones(queries, keys, dtype=torch.bool, device=device).tril(keys - queries)
    positions = torch.arange(keys - queries, keys, device=device).expand(batch, -1)
    return {"attention_mask": causal.expand(batch, 1, -1, -1), "position_ids": positions}


def _cache_keyword(base: nn.Module) -> str:
    """``cache`` in newer transformers, ``past_key_values`` before (as CausalLM decides)."""
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _base_llm(model: MetaSpeechLLM) -> nn.Module:
    return model.causal_lm.get_base_model() if model.lora else model.causal_lm


def training_step(model: MetaSpeechLLM, shape: StepShape, counting: bool = True) -> StepCount:
    """Count one training step of ``shape``. On a ``meta`` model no memory is used; a model moved to
    a real device (``benchmarks/gpu.sh``) runs the same step for real, and with ``counting=False``
    without the counters' per-operator overhead (the counts are then 0)."""
    count, saved = StepCount(), _SavedTensors(model)
    base = _base_llm(model)
    device = base.get_input_embeddings().weight.device
    count_flops = (lambda: FlopCounterMode(display=False)) if counting else _NoCount
    dim, vocab = model.llm_config.hidden_size, base.get_output_embeddings().out_features
    llm_dtype = base.get_input_embeddings().weight.dtype
    with count_flops() as counter, torch.no_grad():
        hidden = _encode(model, shape.batch, shape.samples)
    count.flops["encoder"] = counter.get_total_flops()
    hooks = []
    for layer in model.decoder_layers:
        hooks.append(layer.register_forward_pre_hook(saved.enter_layer))
        hooks.append(layer.register_forward_hook(saved.leave_layer))
    try:
        with (
            torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t) if counting else nullcontext(),
            LengthValues() as values,
        ):
            with count_flops() as counter:
                adapted = _adapt(model, hidden, shape, values)
                embeds = adapted.embeds
                prefix = torch.empty(shape.batch, shape.prompt_tokens, dim, device=device, dtype=llm_dtype)
                target = torch.empty(shape.batch, shape.target_tokens, dim, device=device, dtype=llm_dtype)
                sequence = torch.cat([prefix, embeds.to(llm_dtype), target], dim=1)
                with count_flops() as llm_counter:
                    out = base.get_decoder()(
                        inputs_embeds=sequence,
                        use_cache=False,
                        **_positions(shape.batch, sequence.shape[1], sequence.shape[1], device),
                    ).last_hidden_state
                # Position p predicts token p + 1: the target_tokens positions before the last.
                rows = out[:, -shape.target_tokens - 1 : -1].reshape(-1, dim)
                logits = base.get_output_embeddings()(rows).float()
                labels = torch.zeros(rows.shape[0], dtype=torch.long, device=device)
                loss = F.cross_entropy(logits, labels)
                if adapted.aux_loss is not None:
                    loss = loss + adapted.aux_loss
            count.flops["forward"] = counter.get_total_flops()
            count.llm_forward_flops = llm_counter.get_total_flops()
            with count_flops() as counter:
                loss.backward()
            count.flops["backward"] = counter.get_total_flops()
    finally:
        for hook in hooks:
            hook.remove()
    count.saved_bytes = dict(saved.bytes)
    count.largest_layer_bytes = max(saved.layer_bytes, default=0)
    count.layer_input_bytes = shape.batch * shape.llm_tokens * dim * torch.finfo(llm_dtype).bits // 8
    count.logits_bytes = 2 * shape.batch * shape.target_tokens * vocab * 4
    return count


def decoding_flops(model: MetaSpeechLLM, shape: StepShape) -> int:
    """FLOPs of one greedy decoding step: one new token per clip after a prompt + audio of ``shape``
    already in the key/value cache (the prefill is not counted)."""
    base = _base_llm(model)
    dim = model.llm_config.hidden_size
    dtype = base.get_input_embeddings().weight.dtype
    with torch.no_grad():
        context = torch.empty(
            shape.batch, shape.prompt_tokens + shape.audio_tokens, dim, device=META, dtype=dtype
        )
        prefill = base(
            inputs_embeds=context,
            use_cache=True,
            **_positions(shape.batch, context.shape[1], context.shape[1]),
        )
        cache = getattr(prefill, "cache", None) or prefill.past_key_values
        step = torch.empty(shape.batch, 1, dim, device=META, dtype=dtype)
        with FlopCounterMode(display=False) as counter:
            base(
                inputs_embeds=step,
                **_positions(shape.batch, 1, context.shape[1] + 1),
                **{_cache_keyword(base): cache},
                use_cache=True,
                logits_to_keep=1,
            )
    return counter.get_total_flops()
