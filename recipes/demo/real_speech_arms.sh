#!/usr/bin/env bash
# One row of docs/demo.md, "Text, SpecAugment and a telephone channel on Whisper base": the study's
# Conv adapter pre-aligned for a fixed number of steps on cached Whisper base outputs of the study's
# English training clips, with one change (or none), then decoded alone (CTC greedy, no LLM) on
# every real English Asterisk prompt of at most 30 s and the study's synthetic test set.
# Step-based: the outcome does not depend on the machine's load.
#
# Usage: recipes/demo/real_speech_arms.sh OUT ARM [STEPS] [KEY=VALUE ...]
#   ARM: none | wordnet | specaugment | narrowband     (the change trained with)
#        floor (the untrained adapter) | whisper (Whisper base's own decoder on the same clips)
#        llm (the LLM stage, LLM_STEPS steps, on top of OUT/runs/none; the full model decoded)
#   STEPS: pre-alignment steps (default 800); KEY=VALUE: config overrides of the run (with llm: the
#   LLM stage's, e.g. model.prealign.copy_ratio=0.8; LLM_TAG names that run: runs/llm_<tag>)
# Environment: STUDY_DATA (default data/demo: its study_sets/, synthetic/debian/ and realspeech/ as
#   `make study` leaves them), CACHE (default STUDY_DATA/encoder_cache_base), LLM_STEPS (default 100),
#   PY (python), THREADS (torch threads, default nproc).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1; arm=$2; steps=${3:-800}; extra=("${@:4}")
PY="${PY:-.venv/bin/python}"
study_data="${STUDY_DATA:-data/demo}"
sets="$study_data/study_sets"
cache="${CACHE:-$study_data/encoder_cache_base}"
threads="${THREADS:-$(nproc)}"
train="$sets/asr_train.jsonl.gz"; views=1; change=()
case "$arm" in
    none|floor|whisper|llm) ;;
    wordnet) train="$out/asr_train_wordnet.jsonl.gz";;
    specaugment) change=("data.spec_augment.time_masks=2");;
    narrowband) change=("data.augment.narrowband=1.0"); views=2;;
    *) echo "ARM: none wordnet specaugment narrowband floor whisper llm, not $arm" >&2; exit 2;;
esac
mkdir -p "$out"
real="$out/real_en_all.jsonl.gz"
# Every English prompt of at most 30 s; the wordnet arm's training set: a seeded half of the study's
# clips and as many WordNet sentences (none of them a test, dev or real-speech sentence), espeak-ng.
"$PY" - "$study_data" "$sets" "$out" "$arm" <<'PYEOF'
import random, sys
from pathlib import Path
from lhotse import CutSet, load_manifest
study_data, sets, out = (Path(arg) for arg in sys.argv[1:4])
arm = sys.argv[4]
if not (out / "real_en_all.jsonl.gz").exists():
    real = load_manifest(study_data / "realspeech/realspeech_cuts_test.jsonl.gz")
    english = [cut for cut in real if cut.supervisions[0].language == "en" and cut.duration <= 30]
    CutSet.from_cuts(english).to_file(out / "real_en_all.jsonl.gz")
if arm == "wordnet" and not (out / "asr_train_wordnet.jsonl.gz").exists():
    from speechllm.prepare.synthetic import prepare_synthetic
    from speechllm.prepare.text_sources import load_text_sources
    items, realspeech = load_text_sources(study_data / "synthetic/debian", ["en"], ["wordnet"])
    old = sorted(load_manifest(sets / "asr_train.jsonl.gz"), key=lambda cut: cut.id)
    held = [sup.text for name in ("asr_test", "asr_dev") for cut in load_manifest(sets / f"{name}.jsonl.gz")
            for sup in cut.supervisions]
    wordnet = [item for item in items if item.source == "wordnet"]
    half = len(old) // 2
    prepare_synthetic(out / "wordnet", ["en"], num_train=half, num_dev=0, num_test=0, num_jobs=2, items=wordnet,
                      exclude_texts=[*held, *realspeech], engines=["espeak-ng"], seed=0)
    ids = {cut.id for cut in old}
    new = [cut for cut in load_manifest(out / "wordnet/synthetic_cuts_train.jsonl.gz") if cut.id not in ids]
    kept = random.Random(0).sample(old, half)
    CutSet.from_cuts(sorted(kept + new, key=lambda cut: cut.id)).to_file(out / "asr_train_wordnet.jsonl.gz")
PYEOF
if [ "$arm" = whisper ]; then
    "$PY" -m speechllm.cli whisper-baseline --model whisper-base --manifest "$real" --out "$out/whisper_base/real_en_all"
    grep -H '"asr_wer_en"' "$out/whisper_base/real_en_all/metrics.json"
    exit 0
fi
common=(model.encoder.path=whisper-base seed=0 "data.train=[{path: $train, task: asr}]"
    "data.val=[{path: $sets/asr_dev.jsonl.gz, task: asr}]")
run="$out/runs/$arm"
[ "$arm" = llm ] && [ -n "${LLM_TAG:-}" ] && run="$out/runs/llm_$LLM_TAG"
if [ "$arm" = floor ]; then
    "$PY" recipes/demo/train.py recipes/demo/conf/asr_conv.yaml --minutes 0 --untrained --overwrite \
        output_dir="$run" "${common[@]}"
    model="$run/model"
elif [ "$arm" = llm ]; then
    # The LLM stage alone, step-based (cosine over LLM_STEPS), from the "none" arm's adapter.
    "$PY" recipes/demo/train.py recipes/demo/conf/asr_conv.yaml --minutes 600 --overwrite --threads "$threads" \
        output_dir="$run" data.encoder_cache="$cache" prealign.init="$out/runs/none/prealign/model" \
        optim.scheduler=cosine optim.warmup_ratio=0.1 trainer.max_steps="${LLM_STEPS:-100}" "${common[@]}" \
        "${extra[@]}"
    "$PY" recipes/demo/evaluate.py --model "$run/model" --out "$run/eval" --threads "$threads" \
        --no-repeat-ngram-size 3 real_en="$sets/real_en.jsonl.gz" asr_test="$sets/asr_test.jsonl.gz"
    grep -H '"asr_wer_en"' "$run"/eval/*/metrics.json
    exit 0
else
    view_args=(); [ "$views" -gt 1 ] && view_args=(--views "$views")
    "$PY" -m speechllm.cli cache recipes/demo/conf/asr.yaml --out "$cache" "${view_args[@]}" \
        --manifest "$train" --manifest "$sets/asr_dev.jsonl.gz" "${common[@]}" "${change[@]}"
    "$PY" recipes/demo/train.py recipes/demo/conf/asr_conv.yaml --prealign-only --minutes 0 --overwrite \
        --threads "$threads" output_dir="$run" data.encoder_cache="$cache" prealign.steps="$steps" \
        prealign.minutes=null prealign.lr=1e-3 prealign.warmup_steps=100 "${common[@]}" "${change[@]}" \
        "${extra[@]}"
    model="$run/prealign/model"
fi
"$PY" recipes/demo/evaluate.py --model "$model" --out "$run/eval_alone" --decoder prealign --threads "$threads" \
    real_en_all="$real" asr_test="$sets/asr_test.jsonl.gz" real_en="$sets/real_en.jsonl.gz"
grep -H '"asr_wer_en"' "$run"/eval_alone/*/metrics.json
