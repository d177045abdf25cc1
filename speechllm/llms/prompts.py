"""Chat prompts with one audio slot, tokenized once per (task, languages, instruction).

A prompt is rendered with the tokenizer's chat template around a placeholder, then split at the
placeholder into ``prefix`` and ``suffix`` token ids; the model splices the adapter's embeddings
between them and appends the target ids::

    [prefix ids] [audio embeds] [suffix ids] [target ids + eos]

We set the system prompt ourselves: some templates inject a long default one (SmolLM2: 31
tokens), which would be a third of a short training sequence.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from speechllm.languages import language_name

AUDIO_PLACEHOLDER = "<|speechllm_audio|>"

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

# Used when a tokenizer has no chat template; documented in docs/concepts.md.
FALLBACK_TEMPLATE = "{system}\n\nUser: {user}\nAssistant: "

ASR_INSTRUCTIONS = (
    "Transcribe the audio in {src}.",
    "Write down what is said in this {src} audio.",
    "Give the {src} transcript of the recording.",
    "Transcribe this {src} speech verbatim.",
)
ST_INSTRUCTIONS = (
    "Translate the {src} audio into {tgt}.",
    "Listen to the {src} speech and write its {tgt} translation.",
    "Give the {tgt} translation of this {src} recording.",
    "Translate what is said from {src} to {tgt}.",
)


@dataclass
class PromptConfig:
    """Prompt options (``model.llm.prompt`` in YAML).

    Attributes:
        system_prompt: our own short system prompt ("" for none).
        asr_instructions / st_instructions: paraphrases; the first one is used at evaluation, all
            are sampled uniformly in training when ``sample_paraphrases`` is true.
    """

    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    asr_instructions: list[str] = field(default_factory=lambda: list(ASR_INSTRUCTIONS))
    st_instructions: list[str] = field(default_factory=lambda: list(ST_INSTRUCTIONS))
    sample_paraphrases: bool = True

    def __post_init__(self) -> None:
        """Refuse prompts that cannot render: an empty paraphrase list, a ``{field}`` the
        instruction cannot fill, the audio placeholder typed into a text (it marks the audio slot)."""
        fields = {"asr_instructions": {"src"}, "st_instructions": {"src", "tgt"}}
        for name, allowed in fields.items():
            texts = getattr(self, name)
            if not texts:
                raise ValueError(f"model.llm.prompt.{name} is empty: give at least one instruction")
            for text in texts:
                used = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
                if used - allowed:
                    raise ValueError(
                        f"model.llm.prompt.{name}: {text!r} uses {{{sorted(used - allowed)[0]}}}; "
                        f"an instruction may use {', '.join('{' + a + '}' for a in sorted(allowed))}"
                    )
        for name, text in [
            ("system_prompt", self.system_prompt),
            *[(n, t) for n in fields for t in getattr(self, n)],
        ]:
            if AUDIO_PLACEHOLDER in text:
                raise ValueError(
                    f"model.llm.prompt.{name} holds {AUDIO_PLACEHOLDER}, the audio slot's own marker"
                )


class PromptBuilder:
    """Turns (task, languages) into prefix/suffix token ids and texts into target ids.

    Args:
        tokenizer: a Hugging Face tokenizer (fast or slow).
        config: :class:`PromptConfig`.
        stop_ids: ids that end a generated answer; the first is appended to training targets.
    """

    def __init__(self, tokenizer, config: PromptConfig | None = None, stop_ids: Sequence[int] | None = None):
        self.tokenizer = tokenizer
        self.config = config or PromptConfig()
        self.stop_ids = list(stop_ids) if stop_ids else [tokenizer.eos_token_id]
        self._render = lru_cache(maxsize=None)(self._render_uncached)
        self._controls: set[int] | None = None

    def instruction(self, task: str, src_lang: str, tgt_lang: str | None, rng: random.Random | None) -> str:
        """The instruction text; paraphrases are sampled only when ``rng`` is given."""
        if task == "asr":
            choices = self.config.asr_instructions
        elif task == "st":
            if not tgt_lang:
                raise ValueError("task 'st' needs a target language (tgt_lang)")
            choices = self.config.st_instructions
        else:
            raise ValueError(f"unknown task {task!r}; valid tasks: asr, st")
        pick = rng.choice(choices) if (rng is not None and self.config.sample_paraphrases) else choices[0]
        return pick.format(src=language_name(src_lang), tgt=language_name(tgt_lang) if tgt_lang else "")

    def prompt_ids(
        self, task: str, src_lang: str, tgt_lang: str | None = None, rng: random.Random | None = None
    ) -> tuple[list[int], list[int]]:
        """Returns (prefix ids, suffix ids) around the audio slot."""
        return self._render(self.instruction(task, src_lang, tgt_lang, rng))

    def target_ids(self, text: str) -> list[int]:
        """Target ids: the answer text then the first stop id (the loss covers exactly these)."""
        return self.text_ids(text) + [self.stop_ids[0]]

    def text_ids(self, text: str) -> list[int]:
        """Plain token ids of ``text``: the transcript CTC and CIF align to, and the target's text.

        Text is text: a special-token string inside it (``<|im_end|>``, ``</s>``) is split like any
        other characters, never mapped to the control id (a transcript could otherwise end the
        answer mid-target, or open a new chat turn, in the labels).
        """
        ids = list(self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])
        controls = self._control_ids()
        if not controls.intersection(ids):
            return ids
        # Some vocabularies hold control strings as ordinary entries that the model itself can
        # match (a converted SentencePiece BPE): spell those out character by character instead.
        return [piece for i in ids for piece in (self._spelled(i) if i in controls else [i])]

    def _control_ids(self) -> set[int]:
        if self._controls is None:
            decoder = getattr(self.tokenizer, "added_tokens_decoder", {})
            special = {i for i, token in decoder.items() if token.special}
            self._controls = set(self.tokenizer.all_special_ids) | special
        return self._controls

    def _spelled(self, control_id: int) -> list[int]:
        """The control token's string as one id per character (byte-fallback ids where needed)."""
        vocab = self.tokenizer.get_vocab()
        ids = []
        for char in self.tokenizer.convert_ids_to_tokens(control_id):
            pieces = [vocab.get(char)] if vocab.get(char) not in (None, *self._control_ids()) else []
            pieces = pieces or [vocab.get(f"<0x{byte:02X}>") for byte in char.encode("utf-8")]
            if None in pieces:
                raise ValueError(f"cannot spell the control token {control_id} of this tokenizer as text")
            ids += pieces
        return ids

    def _template_ids(self, text: str) -> list[int]:
        """Token ids of rendered chat-template text, whose special-token strings are real controls."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _render_uncached(self, instruction: str) -> tuple[list[int], list[int]]:
        user = f"{instruction}\n{AUDIO_PLACEHOLDER}"
        system = self.config.system_prompt
        if getattr(self.tokenizer, "chat_template", None):
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": user}
            ]
            try:
                text = self.tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
            except Exception:  # templates that reject a system role (e.g. Mistral's older ones)
                merged = f"{system}\n\n{user}" if system else user
                text = self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": merged}], tokenize=False, add_generation_prompt=True
                )
        else:
            text = FALLBACK_TEMPLATE.format(system=system, user=user).lstrip()
            if self.tokenizer.bos_token:
                text = self.tokenizer.bos_token + text
        before, after = text.split(AUDIO_PLACEHOLDER)
        # The template already contains BOS and friends, so no special tokens are added here.
        return self._template_ids(before), self._template_ids(after)
