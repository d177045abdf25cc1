#!/usr/bin/env bash
# One row of docs/demo.md, "Augmentation, measured on real speech": the demo's Conv adapter
# pre-aligned for a fixed number of steps on the cached Whisper outputs of an espeak-ng English
# corpus, with one augmentation (or none), then decoded alone (CTC greedy, no LLM) on the real
# English Asterisk prompts and the synthetic test set. Step-based: the outcome does not depend on
# the machine's load.
#
# Usage: recipes/demo/augment_experiment.sh OUT ARM [STEPS] [VIEWS]
#   ARM: none | speed | volume | noise | reverb | narrowband | all | specaugment   (the augmentation trained with)
#        whisper (Whisper's own decoder on the same clips) | floor (the untrained adapter, decoded alone)
#   STEPS: pre-alignment steps (default 2000); VIEWS: cached views per training clip for the audio
#   augmentations, the clean one included (default 2: one augmented view, `speechllm cache --views`).
# Environment: ENCODER (default whisper-tiny.en), AUG_TRAIN_SENTENCES (default 3000), AUG_TRAIN_CLIPS (train
#   on a seeded sample of that many clips: fewer views to encode), PY (python),
#   THREADS (torch threads, default nproc), CACHE_ONLY=1 (stop once the arm's views are cached: build
#   the next arm's views while one trains). OUT holds the corpora, sets and cache (shared by the arms).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1; arm=$2; steps=${3:-2000}; views=${4:-2}
PY="${PY:-.venv/bin/python}"
encoder="${ENCODER:-whisper-tiny.en}"
threads="${THREADS:-$(nproc)}"
num_train="${AUG_TRAIN_SENTENCES:-3000}"
# The augmentations measured (docs/data.md, "Augmentation"): each alone at the prob of 1, and all
# together, each transform with probability 0.5 (a view gets a random subset of them).
case "$arm" in
    none|whisper|floor) augment=();;
    speed) augment=("data.augment.speed=[0.9,1.1]");;
    volume) augment=("data.augment.volume_db=[-6,6]");;
    noise) augment=("data.augment.noise_snr_db=[5,20]");;
    reverb) augment=("data.augment.reverb=1.0");;
    narrowband) augment=("data.augment.narrowband=1.0");;
    all) augment=("data.augment.speed=[0.9,1.1]" "data.augment.volume_db=[-6,6]"
        "data.augment.noise_snr_db=[5,20]" "data.augment.reverb=0.5" "data.augment.prob=0.5");;
    specaugment) augment=("data.spec_augment.time_masks=2");;  # the defaults: 2 × ≤5 % of the frames, 2 × ≤10 % of the channels
    *) echo "ARM: none speed volume noise reverb narrowband all specaugment whisper floor, not $arm" >&2; exit 2;;
esac

data="$out/data"; sets="$out/sets"
if [ ! -f "$data/realspeech/realspeech_cuts_test.jsonl.gz" ]; then
    "$PY" -m speechllm.cli prepare realspeech "$data/realspeech" --languages en --max-cut-duration 30 \
        --cache-dir "$out/debian"
fi
if [ ! -f "$sets/real_en.jsonl.gz" ]; then
    "$PY" -m speechllm.cli prepare synthetic "$data/synthetic" --languages en --num-train "$num_train" \
        --num-dev 40 --num-test 100 --num-jobs "$(nproc)" --cache-dir "$out/debian" --engines espeak-ng
    # Every real English prompt of at most 30 s (539), 90 synthetic test sentences, 40 dev sentences.
    "$PY" recipes/demo/subsets.py "$data" "$sets" --asr-only --num-test 90 --num-real 1000 --num-dev 40
fi
tests=(real_en="$sets/real_en.jsonl.gz" synthetic="$sets/asr_test.jsonl.gz")
train_manifest="$sets/asr_train.jsonl.gz"
if [ -n "${AUG_TRAIN_CLIPS:-}" ]; then
    train_manifest="$sets/asr_train_${AUG_TRAIN_CLIPS}.jsonl.gz"
    [ -f "$train_manifest" ] || "$PY" -c "
import random, sys
from lhotse import CutSet, load_manifest
cuts = sorted(load_manifest(sys.argv[1]), key=lambda cut: cut.id)
CutSet.from_cuts(sorted(random.Random(0).sample(cuts, int(sys.argv[3])), key=lambda cut: cut.id)).to_file(sys.argv[2])
" "$sets/asr_train.jsonl.gz" "$train_manifest" "$AUG_TRAIN_CLIPS"
fi

if [ "$arm" = whisper ]; then
    for name in real_en asr_test; do
        "$PY" -m speechllm.cli whisper-baseline --manifest "$sets/$name.jsonl.gz" --model "$encoder" \
            --out "$out/eval/whisper_$encoder/$name"
    done
    grep -H '"wer' "$out/eval/whisper_$encoder"/*/metrics.json
    exit 0
fi
run="$out/runs/${arm}_$encoder"
if [ "$arm" = floor ]; then
    "$PY" recipes/demo/train.py recipes/demo/conf/asr_conv.yaml --minutes 0 --untrained output_dir="$run" \
        seed=0 model.encoder.path="$encoder"
    model="$run/model"
else
    train=("data.train=[{path: $train_manifest, task: asr}]" "data.val=[{path: $sets/asr_dev.jsonl.gz, task: asr}]")
    cache="$out/cache_$encoder"
    view_args=()
    if [ "${#augment[@]}" -gt 0 ] && [ "$arm" != specaugment ]; then view_args=(--views "$views"); fi
    "$PY" -m speechllm.cli cache recipes/demo/conf/asr.yaml --out "$cache" "${view_args[@]}" \
        --manifest "$train_manifest" --manifest "$sets/asr_dev.jsonl.gz" \
        model.encoder.path="$encoder" "${train[@]}" "${augment[@]}"
    [ "${CACHE_ONLY:-0}" = 1 ] && exit 0
    "$PY" recipes/demo/train.py recipes/demo/conf/asr_conv.yaml --prealign-only --minutes 0 --overwrite \
        --threads "$threads" \
        output_dir="$run" data.encoder_cache="$cache" seed=0 prealign.steps="$steps" prealign.minutes=null \
        model.encoder.path="$encoder" "${train[@]}" "${augment[@]}"
    model="$run/prealign/model"
fi
"$PY" recipes/demo/evaluate.py --model "$model" --out "$run/eval_alone" --decoder prealign --threads "$threads" \
    "${tests[@]}"
grep -H '"asr_wer_en"' "$run"/eval_alone/*/metrics.json
