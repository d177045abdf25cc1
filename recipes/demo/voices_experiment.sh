#!/usr/bin/env bash
# One row of docs/demo.md, "Training voices and the encoder, measured on real speech": the demo's
# Conv adapter pre-aligned for a fixed number of steps on an English corpus spoken by espeak-ng
# alone or by four engines, on Whisper tiny.en or Whisper base, then decoded alone (CTC greedy) on
# the real English prompts and both synthetic test sets.
#
# Usage: recipes/demo/voices_experiment.sh OUT espeak-ng|mixed ENCODER_PRESET [STEPS]
#   OUT holds the corpora (shared between rows), caches and runs; STEPS defaults to 2000.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1; voices=$2; encoder=$3; steps=${4:-2000}
PY="${PY:-.venv/bin/python}"
SPEECHLLM="${SPEECHLLM:-.venv/bin/speechllm}"
case "$voices" in
    espeak-ng) engines="espeak-ng";;
    mixed) engines="espeak-ng festival flite piper";;
    *) echo "voices: espeak-ng or mixed, not $voices" >&2; exit 2;;
esac
[ -f "$out/realspeech/realspeech_cuts_test.jsonl.gz" ] || \
    "$SPEECHLLM" prepare realspeech "$out/realspeech" --languages en --cache-dir "$out/debian"
for kind in espeak-ng mixed; do  # both test sets are read by every row
    [ "$kind" = mixed ] && kind_engines="espeak-ng festival flite piper" || kind_engines="espeak-ng"
    if [ ! -f "$out/$kind/sets/asr_test.jsonl.gz" ]; then
        "$SPEECHLLM" prepare synthetic "$out/$kind/synthetic" --languages en --num-train 6000 --num-dev 40 \
            --num-test 100 --num-jobs "$(nproc)" --cache-dir "$out/debian" --engines $kind_engines
        ln -sfn "$(realpath "$out/realspeech")" "$out/$kind/realspeech"
        "$PY" recipes/demo/subsets.py "$out/$kind" "$out/$kind/sets" --asr-only --num-test 90 --num-real 45
    fi
done
sets="$out/$voices/sets"
cache="$out/$voices/cache_$encoder"
"$SPEECHLLM" cache recipes/demo/conf/asr.yaml --out "$cache" --manifest "$sets/asr_train.jsonl.gz" \
    --manifest "$sets/asr_dev.jsonl.gz" model.encoder.path="$encoder"
run="$out/runs/${voices}_$encoder"
"$PY" recipes/demo/train.py recipes/demo/conf/asr_conv.yaml --minutes 0.05 --overwrite --threads "$(nproc)" \
    output_dir="$run" data.encoder_cache="$cache" seed=0 prealign.steps="$steps" prealign.minutes=null \
    model.encoder.path="$encoder" "data.train=[{path: $sets/asr_train.jsonl.gz, task: asr}]" \
    "data.val=[{path: $sets/asr_dev.jsonl.gz, task: asr}]"
"$PY" recipes/demo/evaluate.py --model "$run/prealign/model" --out "$run/eval_alone" --decoder prealign \
    --threads "$(nproc)" real_en="$sets/real_en.jsonl.gz" \
    synthetic_espeak="$out/espeak-ng/sets/asr_test.jsonl.gz" synthetic_mixed="$out/mixed/sets/asr_test.jsonl.gz"
grep -H '"asr_wer_en"' "$run"/eval_alone/*/metrics.json
