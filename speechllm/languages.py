"""Language codes, names, the paper's tasks and the decoders, shared by every corpus recipe.

Codes are ISO 639-1 (``"en"``, ``"de"``, ...), the form lhotse supervisions and the prompts use.
"""

from __future__ import annotations

from collections.abc import Iterable

LANGUAGE_NAMES: dict[str, str] = {
    "en": "English",
    "de": "German",
    "es": "Spanish",
    "fr": "French",
    "it": "Italian",
}

# Languages of evaluation-only real speech (speechllm.prepare.fillets: nl→en, cs→en). No recipe
# trains on them, so they are kept out of LANGUAGE_NAMES (what check_language and the training
# dataset accept); evaluation takes them (a model trained on de/es/fr/it → en is asked to translate
# Dutch: how far its training carries), and the prompts name them (language_name).
EVALUATION_LANGUAGE_NAMES: dict[str, str] = {"nl": "Dutch", "cs": "Czech"}

TASKS: tuple[str, ...] = ("asr", "st")  # speech recognition, speech translation
# What decodes a task: the LLM, or the adapter alone through the pre-alignment head (ASR).
DECODERS: tuple[str, ...] = ("llm", "prealign")
# How long a decoded text may be (speechllm.search.token_limits): at most
# ceil(MAX_NEW_TOKENS_PER_SECOND × the clip's seconds) + EXTRA_NEW_TOKENS new tokens, so that a
# model that never emits its stop token stops early. Measured on the demo's 12,136 references with
# SmolLM2's tokenizer (English; German, French, Spanish, Italian take more tokens per word): at most
# 15.2 tokens per second of audio, median 4.1, and never more than half of 20 × seconds + 20;
# English real speech 3-5 (docs/evaluation.md).
MAX_NEW_TOKENS_PER_SECOND = 20.0
EXTRA_NEW_TOKENS = 20  # a short clip's word or two

# The paper's tasks (Verdini et al., 2025): ASR in five languages, ST in five directions.
PAPER_ASR_LANGUAGES: tuple[str, ...] = ("en", "es", "fr", "it", "de")
PAPER_ST_PAIRS: tuple[tuple[str, str], ...] = (
    ("en", "de"),
    ("de", "en"),
    ("es", "en"),
    ("fr", "en"),
    ("it", "en"),
)


def check_language(code: str) -> str:
    """Return ``code`` if it is a supported language code, else raise a ValueError listing them."""
    if code not in LANGUAGE_NAMES:
        valid = ", ".join(sorted(LANGUAGE_NAMES))
        raise ValueError(f"unknown language code {code!r}; supported: {valid}")
    return code


def check_languages(codes: Iterable[str]) -> tuple[str, ...]:
    """Validate several codes, keeping their order and dropping repeats."""
    seen: dict[str, None] = {}
    for code in codes:
        seen[check_language(code)] = None
    if not seen:
        raise ValueError("no language given")
    return tuple(seen)


def check_evaluation_language(code: str) -> str:
    """Return ``code`` if a test set may hold it (a training language or an evaluation-only one),
    else raise a ValueError listing both kinds."""
    if code not in LANGUAGE_NAMES and code not in EVALUATION_LANGUAGE_NAMES:
        raise ValueError(
            f"unknown language code {code!r}; supported: {', '.join(sorted(LANGUAGE_NAMES))}; "
            f"evaluation only: {', '.join(sorted(EVALUATION_LANGUAGE_NAMES))}"
        )
    return code


def language_name(code: str) -> str:
    """English name of a language (``"de"`` -> ``"German"``, ``"nl"`` -> ``"Dutch"``), as the ST
    instruction says it."""
    check_evaluation_language(code)
    return LANGUAGE_NAMES.get(code) or EVALUATION_LANGUAGE_NAMES[code]


def parse_pair(pair: str | tuple[str, str]) -> tuple[str, str]:
    """Parse a translation direction written ``"en_de"``, ``"en-de"`` or ``("en", "de")``.

    The source and target may be any two-letter codes (CoVoST2 has more targets than the paper
    uses); only their form is checked here.
    """
    if isinstance(pair, tuple):
        src, tgt = pair
    else:
        parts = pair.replace("-", "_").split("_")
        if len(parts) != 2:
            raise ValueError(f"language pair {pair!r} is not of the form 'src_tgt' (e.g. 'en_de')")
        src, tgt = parts
    for code in (src, tgt):
        if not (len(code) in (2, 3) and code.isalpha() and code.islower()):
            raise ValueError(f"language pair {pair!r}: {code!r} is not a lower-case ISO 639 code")
    if src == tgt:
        raise ValueError(f"language pair {pair!r} translates a language into itself")
    return src, tgt


def pair_name(src: str, tgt: str) -> str:
    """The ``"src_tgt"`` spelling used in file names and cut ids."""
    return f"{src}_{tgt}"
