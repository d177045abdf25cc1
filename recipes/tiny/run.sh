#!/usr/bin/env bash
# The tiny recipe: tone-word corpus → train the Base adapter between a tiny random Whisper and a
# tiny random Llama → transcribe the test clips. Runs on a CPU in about a minute.
#
# Usage: recipes/tiny/run.sh [--stage N] [--stop-stage N] [overrides...]
set -euo pipefail
cd "$(dirname "$0")/../.."
stage=0; stop_stage=2
while [ $# -gt 0 ]; do
    case "$1" in
        --stage) stage=$2; shift 2;;
        --stop-stage) stop_stage=$2; shift 2;;
        *) break;;
    esac
done
SPEECHLLM="${SPEECHLLM:-.venv/bin/speechllm}"
out=runs/tiny_asr

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
    echo "== stage 0: prepare the tone-word corpus in data/tones"
    "$SPEECHLLM" prepare tones data/tones
fi
if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
    echo "== stage 1: train (recipes/tiny/conf/asr.yaml)"
    "$SPEECHLLM" train recipes/tiny/conf/asr.yaml output_dir=$out "$@"
fi
if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
    echo "== stage 2: transcribe three test clips"
    "$SPEECHLLM" transcribe --model $out/model data/tones/wav/tones-test-0000{0,1,2}.wav
fi
