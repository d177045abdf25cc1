#!/usr/bin/env bash
# The tiny recipe: every stage of a paper recipe, on CPU in a few minutes, with tiny random
# models (presets tiny-random-whisper, tiny-random-llama) on the tone-word corpus. CI runs it.
#   0  prepare the tone-word corpus        data/tones
#   1  cache the frozen encoder's outputs  data/encoder_cache/tiny
#   2  train each adapter in $ADAPTERS     runs/tiny/<adapter>
#   3  evaluate each on the test split     runs/tiny/<adapter>/eval
#   4  report                              runs/tiny/report/report.md
# Outputs go under the current directory; configs are read from the repository.
# Usage: recipes/tiny/run.sh [--stage N] [--stop-stage N] [training overrides...]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
stage=0; stop_stage=4
while [ $# -gt 0 ]; do
    case "$1" in
        --stage) stage=$2; shift 2;;
        --stop-stage) stop_stage=$2; shift 2;;
        *) break;;
    esac
done
SPEECHLLM="${SPEECHLLM:-$repo/.venv/bin/speechllm}"
ADAPTERS="${ADAPTERS:-base conv wlq_former}"
conf=$repo/recipes/tiny/conf/asr.yaml
cache=data/encoder_cache/tiny
# The config's data paths are relative to the config file (the repository's data/); this run's
# corpus is under the current directory, so they are given here (overrides: relative to the cwd).
data=("data.train=[{path: data/tones/tones_cuts_train.jsonl.gz, task: asr}]"
      "data.val=[{path: data/tones/tones_cuts_dev.jsonl.gz, task: asr}]")

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
    echo "== stage 0: prepare the tone-word corpus in data/tones"
    [ -f data/tones/tones_cuts_test.jsonl.gz ] || "$SPEECHLLM" prepare tones data/tones
fi
if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
    echo "== stage 1: cache encoder outputs in $cache"
    "$SPEECHLLM" cache "$conf" "${data[@]}" --out "$cache"
fi
for adapter in $ADAPTERS; do
    run=runs/tiny/$adapter
    if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
        echo "== stage 2: train the $adapter adapter"
        "$SPEECHLLM" train "$conf" model.adapter.name="$adapter" output_dir="$run" \
            "${data[@]}" data.encoder_cache="$cache" "$@"
    fi
    if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
        echo "== stage 3: evaluate $run/model"
        "$SPEECHLLM" evaluate --model "$run/model" --manifest data/tones/tones_cuts_test.jsonl.gz \
            --task asr --out "$run/eval" --sfm-label tiny-random-whisper --llm-label tiny-random-llama
    fi
done
if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
    echo "== stage 4: report"
    "$SPEECHLLM" report runs/tiny/*/eval --out runs/tiny/report
    echo "report: runs/tiny/report/report.md"
fi
