#!/usr/bin/env bash
# The stages of one SFM/LLM pair of the paper (called by recipes/<sfm>_<llm>/run.sh):
#   0  prepare CoVoST2 manifests        (needs CV_ROOT=<Common Voice root> COVOST_TSV=<TSV dir>)
#   1  cache the frozen encoder outputs (once per encoder; every adapter reuses it)
#   2  train the adapter                (recipes/<pair>/conf/<task>.yaml)
#   3  evaluate on the test set         (WER for asr; COMET wmt22-comet-da + BLEU for st)
#   4  report                           (Table 3 / Table 1 beside the paper's numbers)
#
# Usage: recipes/<pair>/run.sh [--task asr|st] [--adapter NAME] [--stage N] [--stop-stage N]
#                              [--dry-run] [key=value overrides for training...]
# --dry-run prints the commands of the selected stages instead of running them.
set -euo pipefail
pair=$1; shift
task=asr; adapter=base; stage=0; stop_stage=4; dry_run=false
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=true; shift;;
        --task) task=$2; shift 2;;
        --adapter) adapter=$2; shift 2;;
        --stage) stage=$2; shift 2;;
        --stop-stage) stop_stage=$2; shift 2;;
        *) break;;
    esac
done
SPEECHLLM="${SPEECHLLM:-speechllm}"
conf=recipes/$pair/conf/$task.yaml
run=runs/$pair/${task}_$adapter
cache=data/encoder_cache/${pair%%_*}
comet=(); [ "$task" = st ] && comet=(--comet-model "${COMET_MODEL:-Unbabel/wmt22-comet-da}")
run() { if $dry_run; then echo "+ $*"; else "$@"; fi; }

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
    echo "== $pair stage 0: prepare CoVoST2 (test clips 1-15 s, as in the paper)"
    $dry_run || : "${CV_ROOT:?set CV_ROOT to the Common Voice root}" "${COVOST_TSV:?set COVOST_TSV to the CoVoST2 TSV dir}"
    [ -f data/covost2/covost2_cuts_test.jsonl.gz ] || \
        run "$SPEECHLLM" prepare covost2 "${CV_ROOT:-\$CV_ROOT}" "${COVOST_TSV:-\$COVOST_TSV}" data/covost2 --paper-test-filter
fi
if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
    echo "== $pair stage 1: cache encoder outputs in $cache"
    run "$SPEECHLLM" cache "$conf" --out "$cache" --device "${CACHE_DEVICE:-cuda}"
fi
if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
    echo "== $pair stage 2: train the $adapter adapter for $task"
    run "$SPEECHLLM" train "$conf" model.adapter.name="$adapter" output_dir="$run" data.encoder_cache="$cache" "$@"
fi
if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
    echo "== $pair stage 3: evaluate $run/model"
    run "$SPEECHLLM" evaluate --model "$run/model" --manifest data/covost2/covost2_cuts_test.jsonl.gz \
        --task "$task" --out "$run/eval" --bf16 "${comet[@]}"
fi
if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
    echo "== $pair stage 4: report over every evaluated run of this pair"
    run "$SPEECHLLM" report runs/"$pair"/*/eval --out runs/"$pair"/report
fi
