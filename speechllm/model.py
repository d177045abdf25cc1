"""SpeechLLM: frozen speech encoder → trained adapter → frozen LLM. The whole forward pass is here.

Each example's LLM input is ``[prefix][audio embeds][suffix][target + stop]``, left-padded, so
that training and batched generation share one layout and every row ends at the same position.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import Tensor, nn

from speechllm.adapters.interface import Adapter, AdapterOutput, AdapterTargets
from speechllm.audio import SAMPLE_RATE, per_chunk, split_into_chunks
from speechllm.builders import build_adapter, build_encoder, build_llm
from speechllm.config.loading import plain_config
from speechllm.ctc_prefix import CTCPrefixScorer
from speechllm.deprecations import decoder_name, upgrade_state_dict
from speechllm.errors import CheckpointError
from speechllm.languages import DECODERS, MAX_NEW_TOKENS_PER_SECOND
from speechllm.llms.base import LLM
from speechllm.masking import lengths_to_mask, pad_audio, pad_ids, splice
from speechllm.model_dir import MODEL_CONFIG, TRAINED_WEIGHTS, read_model_dir, write_model_dir
from speechllm.model_io import Generation, ModelInputs, SpeechLLMOutput, as_inputs, valid_targets
from speechllm.prealign.head import PreAlignHead, resolve_objective
from speechllm.search import DecodingOptions, beam_search, check_context, greedy, token_limits

__all__ = ["Generation", "ModelInputs", "SpeechLLM", "SpeechLLMOutput"]


class SpeechLLM(nn.Module):
    """A speech encoder, an adapter and a causal LM, usable without Lightning.

    Args:
        encoder: a :class:`~speechllm.encoders.base.SpeechEncoder` (frozen).
        adapter: an :class:`~speechllm.adapters.interface.Adapter` (trained).
        llm: an :class:`~speechllm.llms.base.LLM` such as
            :class:`~speechllm.llms.causal_lm.CausalLM` (frozen, optional LoRA).
        config: the model config it was built from (saved by :meth:`save_pretrained`).
    """

    def __init__(
        self, encoder: nn.Module, adapter: Adapter, llm: LLM, config: Any = None, imports: Any = ()
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.adapter = adapter
        self.llm: LLM = llm
        self.config = config
        self.imports = list(imports)  # user modules that register components; saved with the model
        # The pre-alignment head (speechllm.prealign.head), when the config has ``model.prealign``.
        self.prealign: PreAlignHead | None = None

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Any, imports: Any = (), import_dirs: dict[str, str] | None = None) -> SpeechLLM:
        """Build from a model config ``{encoder: {name, ...}, adapter: {name, ...}, llm: {name, ...}}``.

        ``imports``: modules to import first, so that user components register themselves;
        ``import_dirs``: where to look for one that is not importable as is (a trusted saved model's).
        """
        from speechllm.config import import_user_modules, validate_components

        import_user_modules(list(imports), found_in=import_dirs)
        cfg = plain_config(cfg)
        # Every component's name and options, before the frozen models load (seconds to minutes).
        validate_components(OmegaConf.create({"model": cfg}))
        encoder = build_encoder(cfg["encoder"])
        llm = build_llm(cfg["llm"])
        adapter = build_adapter(cfg["adapter"], encoder, llm)
        model = cls(encoder, adapter, llm, config=cfg, imports=imports)
        if cfg.get("prealign") is not None:
            model.prealign = PreAlignHead(llm.dim, llm.vocab_size, **cfg["prealign"])
        return model

    # -- training ---------------------------------------------------------------------------------
    def encode(
        self, audio: Tensor, audio_lens: Tensor, targets: AdapterTargets | None = None
    ) -> AdapterOutput:
        """(B, S) 16 kHz audio → adapter output in the LLM's embedding space."""
        hidden, lens = self.encoder(audio, audio_lens)
        return self.adapt(hidden, lens, targets)

    def adapt(self, hidden: Tensor, lens: Tensor, targets: AdapterTargets | None = None) -> AdapterOutput:
        """Encoder outputs (B, T, C) → what the LLM reads: the adapter, then the pre-alignment readout.

        With ``model.prealign.aux_weight`` > 0 and targets, the pre-alignment head's CTC loss on the
        adapter's outputs, times that weight, is added to the aux loss; with
        ``transcript_ratio`` > 0, some training rows read their transcript instead (text injection).
        """
        adapted = self.adapter(hidden, lens, targets)
        if self.prealign is None:
            return adapted
        table = self.llm.input_embeddings()
        if targets is not None and self.prealign.aux_weight > 0:
            ctc = self.prealign.aux_weight * self.prealign.loss("ctc", adapted, targets, table)
            adapted.aux_loss = ctc if adapted.aux_loss is None else adapted.aux_loss + ctc
        read = self.prealign(adapted, table)
        if self.training and targets is not None and self.prealign.transcript_ratio > 0:
            read = self.prealign.inject_transcripts(read, targets, table)
        return read

    def adapter_outputs(
        self, batch: ModelInputs | Mapping[str, Any], targets: AdapterTargets | None = None
    ) -> AdapterOutput:
        """The adapter's own outputs for a batch (audio or cached encoder outputs), before any readout."""
        batch = as_inputs(batch)
        if batch.encoder_hidden is not None:
            return self.adapter(batch.encoder_hidden, batch.encoder_lens, targets)
        hidden, lens = self.encoder(batch.audio, batch.audio_lens)
        return self.adapter(hidden, lens, targets)

    def forward(self, batch: ModelInputs | Mapping[str, Any]) -> SpeechLLMOutput:
        """Loss on the target tokens only (prompt, audio and padding positions are masked).

        ``batch``: a :class:`~speechllm.data.batch.Batch` (see :class:`ModelInputs`). With
        ``encoder_hidden`` set (the encoder-output cache), the encoder is skipped.
        """
        batch = as_inputs(batch)
        targets = AdapterTargets(batch.transcript_ids, batch.transcript_lens)
        if batch.encoder_hidden is not None:
            adapted = self.adapt(batch.encoder_hidden, batch.encoder_lens, targets)
        else:
            adapted = self.encode(batch.audio, batch.audio_lens, targets)
        target_ids, target_lens = batch.target_ids, batch.target_lens
        if self.training and self.prealign is not None and self.prealign.copy_ratio > 0:
            stop_id = self.llm.prompts.stop_ids[0]
            tasks = getattr(batch, "task", None)  # only ASR targets are copies of what is read
            asr = (
                None if tasks is None else torch.tensor([t == "asr" for t in tasks], device=target_ids.device)
            )
            target_ids, target_lens = self.prealign.copy_targets(
                adapted, target_ids, target_lens, stop_id, asr
            )
        segments = [
            (self.llm.embed(batch.prefix_ids), batch.prefix_lens),
            (adapted.embeds, adapted.lens),
            (self.llm.embed(batch.suffix_ids), batch.suffix_lens),
            (self.llm.embed(target_ids), target_lens),
        ]
        embeds, attention_mask, position_ids = splice(segments)
        # Position p predicts token p+1; targets are the last target_lens positions of each row.
        total = embeds.shape[1]
        target_mask = torch.arange(total, device=embeds.device)[None, :] >= total - target_lens[:, None]
        predicts_target = torch.zeros_like(target_mask)
        predicts_target[:, :-1] = target_mask[:, 1:]
        hidden = self.llm.hidden_states(embeds, attention_mask, position_ids)
        # Logits only where a target is predicted: the LM head over a large vocabulary is costly.
        logits = self.llm.logits(hidden[predicts_target]).float()
        labels = valid_targets(target_ids, target_lens)
        lm_loss = F.cross_entropy(logits, labels)
        loss = lm_loss if adapted.aux_loss is None else lm_loss + adapted.aux_loss
        return SpeechLLMOutput(loss, lm_loss, adapted.aux_loss, adapted.stats, int(labels.numel()))

    # -- inference --------------------------------------------------------------------------------
    def generate(
        self,
        audio: Tensor | None = None,
        audio_lens: Tensor | None = None,
        task: str = "asr",
        src_lang: str | list[str] = "en",
        tgt_lang: str | list[str] | None = None,
        max_new_tokens: int = 200,
        **options: Any,
    ) -> list[str]:
        """Batched decoding (greedy by default): one string per clip. The texts of
        :meth:`generate_detailed`, which lists every option."""
        return self.generate_detailed(
            audio, audio_lens, task, src_lang, tgt_lang, max_new_tokens, **options
        ).texts

    @torch.no_grad()
    def generate_detailed(
        self,
        audio: Tensor | None = None,
        audio_lens: Tensor | None = None,
        task: str = "asr",
        src_lang: str | list[str] = "en",
        tgt_lang: str | list[str] | None = None,
        max_new_tokens: int = 200,
        *,
        encoder_hidden: Tensor | None = None,
        encoder_lens: Tensor | None = None,
        decoder: str = "llm",
        num_beams: int = 1,
        length_penalty: float = 1.0,
        no_repeat_ngram_size: int = 0,
        repetition_penalty: float = 1.0,
        max_new_tokens_per_second: float | None = MAX_NEW_TOKENS_PER_SECOND,
        ctc_weight: float = 0.0,
        ctc_candidates: int = 8,
        chunk_seconds: float | None = None,
        chunk_batch_size: int | None = None,
        on_clip_done: Callable[[int], None] | None = None,
    ) -> Generation:
        """Batched decoding (greedy by default, see :mod:`speechllm.search`): per clip its text, its
        token count and whether it stopped at its limit (:class:`~speechllm.model_io.Generation`).

        Args:
            audio: (B, S) float 16 kHz; audio_lens: (B,) samples.
            task: ``"asr"`` or ``"st"``; src_lang / tgt_lang: a code or one code per clip.
            max_new_tokens: at most this many tokens per clip (per chunk with ``chunk_seconds``).
            encoder_hidden / encoder_lens: (B, T, C) / (B,) cached encoder outputs, instead of audio.
            decoder: ``"llm"``, or ``"prealign"``: the transcript read off the adapter's outputs by
                the pre-alignment head (CTC greedy, or argmax per vector for CIF), without the LLM.
            num_beams, length_penalty, no_repeat_ngram_size, repetition_penalty: see
                :class:`~speechllm.search.DecodingOptions` (``num_beams=1``: greedy).
            ctc_weight, ctc_candidates: joint CTC decoding (ASR, a model pre-aligned with the CTC
                objective): the LLM's ``ctc_candidates`` best next tokens ranked by
                ``(1 - ctc_weight) log p_LLM + ctc_weight Δ log p_CTC`` of the pre-alignment head
                (:mod:`speechllm.ctc_prefix`); 0: the LLM alone.
            max_new_tokens_per_second: also stop a clip after ``ceil(this × its seconds) + 20``
                tokens (:func:`~speechllm.search.token_limits`; default 20, twice what the demo's
                references need at most), so a runaway stops early; None: ``max_new_tokens`` alone.
            chunk_batch_size: with ``chunk_seconds``, decode at most this many chunks at once
                (default: the number of clips given).
            chunk_seconds: decode audio longer than this in consecutive chunks of this length and
                join their texts with a space (for clips past the encoder's window; a word cut at
                a boundary may be garbled or lost, and each chunk is translated on its own).
            on_clip_done: called with the number of clips that just finished (progress bars).

        An empty batch gives no clip. A clip stops at a stop token or at its limit. Nothing is
        truncated: if prompt + audio embeddings + the longest limit exceed the LLM's context
        (``max_position_embeddings``), a ``ValueError`` says by how much.
        """
        options = DecodingOptions(
            max_new_tokens,
            num_beams,
            length_penalty,
            no_repeat_ngram_size,
            repetition_penalty,
            max_new_tokens_per_second,
            ctc_weight,
            ctc_candidates,
        )
        decoder = decoder_name(decoder)
        if decoder not in DECODERS:
            raise ValueError(f"generate: unknown decoder {decoder!r}; valid: {', '.join(DECODERS)}")
        if chunk_seconds is not None and audio is not None and audio_lens is not None:
            decoded = self._generate_chunked(
                audio, audio_lens, chunk_seconds, task, src_lang, tgt_lang, decoder, options, chunk_batch_size
            )
            if on_clip_done is not None:
                on_clip_done(len(decoded.texts))
            return decoded
        given = encoder_hidden if encoder_hidden is not None else audio
        if given is not None and given.shape[0] == 0:
            return Generation.unlimited([])
        if encoder_hidden is not None and encoder_lens is not None:
            rate = getattr(self.encoder, "frame_rate_hz", None)  # each clip's seconds: frames / rate
            seconds = encoder_lens / rate if rate else None
        elif audio is not None and audio_lens is not None:
            encoder_hidden, encoder_lens = self.encoder(audio, audio_lens)
            seconds = audio_lens / SAMPLE_RATE
        else:
            raise ValueError("generate needs audio and audio_lens, or encoder_hidden and encoder_lens")
        if decoder == "prealign":  # the adapter's CTC readout: no token limit needed
            texts = self._decode_prealign(encoder_hidden, encoder_lens)
            if on_clip_done is not None:
                on_clip_done(len(texts))
            return Generation.unlimited(texts)
        if options.ctc_weight > 0:
            self._check_joint_ctc(task)
        out = self.adapter(encoder_hidden, encoder_lens)
        ctc, logits = (
            self._ctc_scorer(out, self.llm.prompts.stop_ids) if options.ctc_weight > 0 else (None, None)
        )
        read = out if self.prealign is None else self.prealign(out, self.llm.input_embeddings(), logits)
        return self._search(read, task, src_lang, tgt_lang, options, seconds, on_clip_done, ctc)

    @torch.no_grad()
    def generate_from_transcripts(
        self,
        transcripts: list[str],
        task: str = "st",
        src_lang: str | list[str] = "en",
        tgt_lang: str | list[str] | None = None,
        max_new_tokens: int = 200,
        **decoding: Any,
    ) -> Generation:
        """What the model writes when its adapter spells ``transcripts`` perfectly.

        With the ``tokens`` readout the LLM reads the embeddings of the adapter's CTC transcript;
        here it reads those of the given (gold) transcripts instead, so the output is the model's
        ceiling for a perfect recognizer (how well its LLM stage translates, say). ``decoding``:
        ``num_beams``, ``no_repeat_ngram_size``, ... (:class:`~speechllm.search.DecodingOptions`;
        no duration, so ``max_new_tokens`` alone limits each output).

        Raises:
            ValueError: the model's LLM does not read token embeddings (no ``readout: tokens``).
        """
        if self.prealign is None or self.prealign.readout != "tokens":
            raise ValueError(
                "generate_from_transcripts: the model's LLM must read the adapter's transcript "
                "(model.prealign.readout: tokens); this one reads vectors a transcript does not give"
            )
        options = DecodingOptions(max_new_tokens, max_new_tokens_per_second=None, **decoding)
        table = self.llm.input_embeddings()
        ids, lens = pad_ids([self.llm.prompts.text_ids(text) for text in transcripts], table.device)
        embeds = table[ids] * lengths_to_mask(lens, ids.shape[1]).unsqueeze(-1).to(table.dtype)
        read = AdapterOutput(embeds=embeds, lens=lens)
        return self._search(read, task, src_lang, tgt_lang, options, None, None, None)

    def _search(
        self,
        read: AdapterOutput,
        task: str,
        src_lang: str | list[str],
        tgt_lang: str | list[str] | None,
        options: DecodingOptions,
        seconds: Tensor | None,
        on_clip_done: Callable[[int], None] | None,
        ctc: CTCPrefixScorer | None,
    ) -> Generation:
        """Prompt around what the LLM reads (``read``), then greedy or beam search (speechllm.search)."""
        embeds, attention_mask, position_ids = self._prompted(read, task, src_lang, tgt_lang)
        limits = token_limits(seconds, options, embeds.shape[0], embeds.device)  # (B,)
        check_context(self.llm, embeds.shape[1], int(limits.max()))
        search = greedy if options.num_beams == 1 else beam_search
        stops = self.llm.prompts.stop_ids
        rows = search(
            self.llm, embeds, attention_mask, position_ids, stops, options, limits, on_clip_done, ctc=ctc
        )
        texts = [self.llm.tokenizer.decode(row, skip_special_tokens=True).strip() for row in rows]
        counts, caps = [len(row) for row in rows], [int(n) for n in limits.tolist()]
        return Generation(texts, counts, caps, [n >= cap for n, cap in zip(counts, caps)])

    def _check_joint_ctc(self, task: str) -> None:
        """Joint CTC decoding needs a CTC head that spells what the LLM writes: ASR, pre-aligned with CTC."""
        objective = None if self.prealign is None else resolve_objective("auto", self.adapter)
        if task != "asr" or objective != "ctc":
            why = (
                f"task {task!r} (the head spells the source transcript, not a translation)"
                if task != "asr"
                else "a model without pre-alignment (model.prealign)"
                if objective is None
                else f"an adapter pre-aligned with the {objective!r} objective, not CTC"
            )
            raise ValueError(
                f"generate: ctc_weight > 0 (joint CTC decoding) needs ASR and an adapter pre-aligned "
                f"with CTC; got {why}. Use ctc_weight=0."
            )

    def _ctc_scorer(self, out: AdapterOutput, stop_ids: list[int]) -> tuple[CTCPrefixScorer, Tensor]:
        """The pre-alignment head's CTC posteriors over the adapter's outputs, as a prefix scorer,
        and the head's logits (B, U·T, K+1) they came from (the readout reads the same frames)."""
        assert self.prealign is not None  # _check_joint_ctc
        frames = self.prealign.scored(out)  # with prealign.upsample, U frames per adapter vector
        logits = self.prealign.logits(frames.embeds, self.llm.input_embeddings())
        scorer = CTCPrefixScorer(
            F.log_softmax(logits, dim=-1), frames.lens, self.prealign.id_classes(), stop_ids
        )
        return scorer, logits

    def _prompted(
        self,
        adapted: AdapterOutput,
        task: str,
        src_lang: str | list[str],
        tgt_lang: str | list[str] | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The LLM's input for generation: ``[prefix][audio embeds][suffix]`` per clip, left-padded.

        ``adapted``: what the LLM reads (the adapter's outputs, through the pre-alignment readout)."""
        batch_size = adapted.embeds.shape[0]
        src = [src_lang] * batch_size if isinstance(src_lang, str) else list(src_lang)
        tgt = [tgt_lang] * batch_size if (tgt_lang is None or isinstance(tgt_lang, str)) else list(tgt_lang)
        prompts = [self.llm.prompts.prompt_ids(task, s, t) for s, t in zip(src, tgt)]
        device = adapted.embeds.device
        prefix_ids, prefix_lens = pad_ids([p for p, _ in prompts], device)
        suffix_ids, suffix_lens = pad_ids([s for _, s in prompts], device)
        return splice(
            [
                (self.llm.embed(prefix_ids), prefix_lens),
                (adapted.embeds, adapted.lens),
                (self.llm.embed(suffix_ids), suffix_lens),
            ]
        )

    def _generate_chunked(
        self,
        audio: Tensor,
        audio_lens: Tensor,
        chunk_seconds: float,
        task: str,
        src_lang: str | list[str],
        tgt_lang: str | list[str] | None,
        decoder: str,
        options: DecodingOptions,
        chunk_batch_size: int | None = None,
    ) -> Generation:
        """Cut each clip into ≤ ``chunk_seconds`` pieces, decode them ``chunk_batch_size`` at a time
        (default: as many as the batch has clips, so memory stays that of one batch), join per clip."""
        pieces, owners = split_into_chunks(audio, audio_lens, chunk_seconds)
        num_clips = audio.shape[0]
        if not pieces:
            return Generation.unlimited([""] * num_clips)
        group = max(1, chunk_batch_size or num_clips)
        parts: list[Generation] = []
        search = {k: v for k, v in options.as_dict().items() if k != "max_new_tokens"}
        for start in range(0, len(pieces), group):
            chunk_audio, chunk_lens = pad_audio(pieces[start : start + group])
            group_owners = owners[start : start + group]
            parts.append(
                self.generate_detailed(
                    chunk_audio.to(audio.device),
                    chunk_lens.to(audio.device),
                    task,
                    per_chunk(src_lang, group_owners),
                    per_chunk(tgt_lang, group_owners),
                    options.max_new_tokens,
                    decoder=decoder,
                    **search,
                )
            )
        return Generation.joined(parts, owners, num_clips)

    def _decode_prealign(self, hidden: Tensor, lens: Tensor) -> list[str]:
        """The adapter decoded alone by the pre-alignment head: no LLM forward pass."""
        if self.prealign is None:
            raise ValueError("decoder='prealign' needs a model with model.prealign (a pre-aligned adapter)")
        objective = resolve_objective("auto", self.adapter)
        out = self.adapter(hidden, lens)
        ids = self.prealign.greedy_ids(objective, out, self.llm.input_embeddings())
        return [self.llm.tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids]

    # -- artefacts --------------------------------------------------------------------------------
    def trainable_state_dict(self) -> dict[str, Tensor]:
        """Only the trained parameters (adapter, LoRA, pre-alignment head and its vocabulary) and the
        adapter's saved buffers: what a checkpoint needs."""
        state = {name: p.detach() for name, p in self.named_parameters() if p.requires_grad}
        # The adapter's saved buffers (the CTC adapter's kept vocabulary): part of what it learned.
        params = dict(self.adapter.named_parameters())
        state.update(
            {f"adapter.{k}": v.detach() for k, v in self.adapter.state_dict().items() if k not in params}
        )
        if self.prealign is not None:  # all of it, whichever of its parameters this stage trains
            state.update({f"prealign.{k}": v.detach() for k, v in self.prealign.state_dict().items()})
        return state

    def save_pretrained(self, directory: str | Path, tensors: dict[str, Tensor] | None = None) -> Path:
        """Write ``trainable.safetensors`` + ``config.yaml`` (frozen parts are rebuilt from their paths);
        ``tensors``: trained parameters the caller gathered (FSDP2), else :meth:`trainable_state_dict`."""
        state = self.trainable_state_dict() if tensors is None else tensors
        tensors = {k: v.contiguous().cpu() for k, v in state.items()}
        return write_model_dir(directory, tensors, self.imports, self.config)

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, trust_imports: bool | list[str] = False, **overrides: Any
    ) -> SpeechLLM:
        """Rebuild from a :meth:`save_pretrained` directory; ``overrides`` replace model config keys.

        The directory is checked before anything is built (:func:`~speechllm.model_dir.read_model_dir`);
        modules it lists under ``imports:`` are imported only with ``trust_imports`` (``True``, or
        a list of the trusted module names).
        """
        from speechllm.config import import_user_modules

        saved = read_model_dir(directory, trust_imports, overrides or None)
        # Before the try: a module that cannot be found is the user's to fix, said in full.
        import_user_modules(saved.imports, found_in=saved.import_dirs)
        try:
            model = cls.from_config(saved.model_config, imports=saved.imports, import_dirs=saved.import_dirs)
        except (OSError, ValueError, TypeError) as err:  # a frozen part's path or option is wrong
            detail = " ".join(str(err).split())[:300]
            raise CheckpointError(
                f"{saved.directory / MODEL_CONFIG}: cannot build the model it describes ({detail})"
            ) from err
        model.load_trainable(saved.tensors, source=str(saved.directory / TRAINED_WEIGHTS))
        return model

    def load_trainable(self, tensors: dict[str, Tensor], source: str = "checkpoint") -> None:
        """Load trained parameters; the key sets must match exactly."""
        upgrade_state_dict(tensors)  # trained before 0.2: the head was saved as alignment.*
        expected = self.trainable_state_dict()
        missing, unexpected = set(expected) - set(tensors), set(tensors) - set(expected)
        if missing or unexpected:
            raise CheckpointError(
                f"{source}: trained parameters do not match this model "
                f"(missing: {sorted(missing)[:5]}, unexpected: {sorted(unexpected)[:5]})"
            )
        try:  # modules may resize on load (the pre-alignment head's vocabulary); the rest must match
            self.load_state_dict(tensors, strict=False)
        except RuntimeError as err:
            detail = " ".join(str(err).split())[:300]
            raise CheckpointError(f"{source}: trained parameters do not fit this model ({detail})") from None
