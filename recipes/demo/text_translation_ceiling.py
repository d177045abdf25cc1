"""How well does the demo's LLM translate when it reads the source sentence itself? A ceiling.

A speech LLM's ST can at best do what its LLM does from a perfect transcript. This script gives
SmolLM2-135M-Instruct (preset ``smollm2-135m-instruct``) the gold source transcripts of an ST
manifest (one with ``custom["translation"]``, e.g. the Asterisk es/fr/it prompts of
``speechllm prepare realspeech``) in a plain chat prompt, decodes greedily, and scores BLEU per
source language against the English references. docs/demo.md sets it beside Whisper base's own
``translate`` task on the same clips.

Usage: python recipes/demo/text_translation_ceiling.py MANIFEST [MANIFEST ...] [--per-language 20]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import torch
from lhotse import load_manifest
from transformers import AutoModelForCausalLM, AutoTokenizer

from speechllm.languages import EVALUATION_LANGUAGE_NAMES, LANGUAGE_NAMES
from speechllm.metrics.bleu import corpus_bleu
from speechllm.presets import resolve_model_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifests", nargs="+", help="cut manifests with English translations")
    parser.add_argument("--per-language", type=int, default=20, help="first N sentences per language")
    parser.add_argument("--llm", default="smollm2-135m-instruct", help="preset or transformers directory")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()

    by_lang: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for manifest in args.manifests:
        for cut in load_manifest(manifest):
            sup = cut.supervisions[0]
            custom = sup.custom or {}
            if custom.get("tgt_lang") == "en" and len(by_lang[sup.language]) < args.per_language:
                by_lang[sup.language].append((sup.text, custom["translation"]))
    path = resolve_model_path(args.llm)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    results = {}
    for lang, pairs in sorted(by_lang.items()):
        hyps = []
        for source, _ in pairs:
            name = {**LANGUAGE_NAMES, **EVALUATION_LANGUAGE_NAMES}[lang]
            prompt = f"Translate this {name} sentence into English: {source}"
            messages = [{"role": "user", "content": prompt}]
            ids = tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )["input_ids"]
            with torch.no_grad():
                out = model.generate(ids, max_new_tokens=args.max_new_tokens, do_sample=False)
            text = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()
            hyps.append(text.split("\n")[0])
        refs = [reference for _, reference in pairs]
        bleu = round(corpus_bleu(refs, hyps), 1)
        results[lang] = {"sentences": len(pairs), "bleu": bleu, "sample": hyps[:3]}
        print(f"{lang}→en from gold transcripts: BLEU {results[lang]['bleu']} on {len(pairs)} sentences")
    print(json.dumps(results, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
