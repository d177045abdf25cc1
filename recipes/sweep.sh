#!/usr/bin/env bash
# The paper's sweep for one SFM/LLM pair: every adapter × {asr, st}, all reusing one encoder
# cache, ending in one report. Usage: recipes/sweep.sh PAIR [--dry-run] [training overrides...]
#   e.g. recipes/sweep.sh seamless_llama
set -euo pipefail
cd "$(dirname "$0")/.."
pair=${1:?usage: recipes/sweep.sh PAIR (whisper_llama, whisper_mistral, seamless_llama, seamless_mistral)}
shift
dry=(); [ "${1:-}" = --dry-run ] && { dry=(--dry-run); shift; }
bash recipes/common/run_pair.sh "$pair" "${dry[@]}" --task asr --stage 1 --stop-stage 1
for task in asr st; do
    for adapter in base conv cif ctc wlq_former; do
        bash recipes/common/run_pair.sh "$pair" "${dry[@]}" --task "$task" --adapter "$adapter" \
            --stage 2 --stop-stage 3 "$@"
    done
done
bash recipes/common/run_pair.sh "$pair" "${dry[@]}" --stage 4 --stop-stage 4
