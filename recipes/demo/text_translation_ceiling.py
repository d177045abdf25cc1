"""How well does the demo's LLM translate when it reads the source sentence itself? A ceiling.

A speech LLM's ST can at best do what its LLM does from a perfect transcript. This script gives
SmolLM2-135M-Instruct (preset ``smollm2-135m-instruct``) the gold source transcripts of ST
manifests (cuts with ``custom["translation"]`` into English, e.g. the demo's ``real_st`` set) in a
plain chat prompt, decodes greedily (batched, left-padded), and scores BLEU per source language
against the English references. The demo's report sets it beside Whisper base's own
``translate`` task and the trained ST model on the same clips (stage 2 of recipes/demo/run.sh).

With ``--model DIR`` (a trained ST model whose LLM reads the adapter's CTC transcript, ``readout:
tokens``, as the demo's ``demo_out/runs/st/model``) the translations are that model's, its LLM
reading the gold source transcript where the adapter's transcript would be
(:meth:`~speechllm.model.SpeechLLM.generate_from_transcripts`): what the trained model would
translate with a perfect recognizer, with its own prompt, LoRA and the demo's repetition guard.

Usage: python recipes/demo/text_translation_ceiling.py NAME=MANIFEST [...] [--out JSON] [--per-language N]
    [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import torch
from lhotse import load_manifest
from transformers import AutoModelForCausalLM, AutoTokenizer

from speechllm.io import atomic_write
from speechllm.languages import language_name
from speechllm.metrics.bleu import corpus_bleu
from speechllm.presets import resolve_model_path


def source_pairs(manifest: str, per_language: int) -> dict[str, list[tuple[str, str]]]:
    """``{language: [(source text, English reference)]}``, the first ``per_language`` of each (0: all)."""
    pairs: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for cut in load_manifest(manifest):
        sup = cut.supervisions[0]
        custom = sup.custom or {}
        if custom.get("tgt_lang") == "en" and (per_language <= 0 or len(pairs[sup.language]) < per_language):
            pairs[sup.language].append((sup.text, custom["translation"]))
    return dict(pairs)


def translate(
    model, tokenizer, items: list[tuple[str, str]], max_new_tokens: int, batch_size: int
) -> list[str]:
    """Greedy English translations (the first line of each answer) of ``items``, ``(language, source
    text)`` pairs; a batch may mix languages (each prompt names its own), so a set decodes in as few
    batches as its size allows: the small LLM's step costs about the same for 10 prompts as for 32."""
    prompts = [
        tokenizer.apply_chat_template(
            [
                {
                    "role": "user",
                    "content": f"Translate this {language_name(language)} sentence into English: {text}",
                }
            ],
            add_generation_prompt=True,
            tokenize=False,
        )
        for language, text in items
    ]
    # Only the first line is read: every token holding a line break ends a sentence's decoding (the
    # same first line, without the rambling after it).
    vocab = tokenizer.get_vocab()
    line_ends = [i for token, i in vocab.items() if "\n" in tokenizer.convert_tokens_to_string([token])]
    out = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(
            prompts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
        )
        with torch.no_grad():
            ids = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=[tokenizer.eos_token_id, *line_ends],
            )
        texts = tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        out += [text.strip().split("\n")[0] for text in texts]
    return out


def model_translations(
    model, language: str, sources: list[str], max_new_tokens: int, batch_size: int
) -> list[str]:
    """The trained speech model's translations when its adapter spells ``sources`` perfectly."""
    out = []
    for start in range(0, len(sources), batch_size):
        decoded = model.generate_from_transcripts(
            sources[start : start + batch_size], task="st", src_lang=language, tgt_lang="en",
            max_new_tokens=max_new_tokens, no_repeat_ngram_size=3,
        )  # fmt: skip
        out += decoded.texts
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "sets", nargs="+", metavar="NAME=MANIFEST", help="cut manifests with English translations"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the results here (JSON)")
    parser.add_argument("--per-language", type=int, default=0, help="first N sentences per language (0: all)")
    parser.add_argument("--llm", default="smollm2-135m-instruct", help="preset or transformers directory")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--model", type=Path, default=None, help="a trained ST model (readout: tokens) instead of --llm"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.model is not None:
        from speechllm.model import SpeechLLM

        speech_model = SpeechLLM.from_pretrained(args.model).eval()

        def translate_gold(items: list[tuple[str, str]]) -> list[str]:
            out: list[str] = []
            for language in dict.fromkeys(language for language, _ in items):  # in order, each once
                sources = [text for lang, text in items if lang == language]
                out += model_translations(
                    speech_model, language, sources, args.max_new_tokens, args.batch_size
                )
            return out

        results: dict[str, object] = {"model": str(args.model)}
    else:
        path = resolve_model_path(args.llm)
        tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()

        def translate_gold(items: list[tuple[str, str]]) -> list[str]:
            return translate(model, tokenizer, items, args.max_new_tokens, args.batch_size)

        results = {"llm": args.llm}
    started = time.perf_counter()
    for item in args.sets:
        name, sep, manifest = item.partition("=")
        if not sep:
            raise SystemExit(f"text_translation_ceiling.py: expected NAME=MANIFEST, got {item!r}")
        per_set: dict[str, dict] = {}
        results[name] = per_set
        by_language = sorted(source_pairs(manifest, args.per_language).items())
        hyps_all = translate_gold([(lang, source) for lang, pairs in by_language for source, _ in pairs])
        for lang, pairs in by_language:
            hyps, hyps_all = hyps_all[: len(pairs)], hyps_all[len(pairs) :]
            bleu = round(corpus_bleu([reference for _, reference in pairs], hyps), 1)
            per_set[f"{lang}-en"] = {"sentences": len(pairs), "bleu": bleu, "sample": hyps[:3]}
            print(f"{name} {lang}→en from gold transcripts: BLEU {bleu} on {len(pairs)} sentences")
    results["seconds"] = round(time.perf_counter() - started, 1)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(args.out) as tmp:
            tmp.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    else:
        print(json.dumps(results, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
