#!/usr/bin/env bash
# The paper's study in miniature (docs/study.md): Whisper tiny.en and Whisper base × the five adapters
# × English ASR, and de/es/fr/it → en ST on Whisper base, with SmolLM2-135M-Instruct as the LLM; the
# same data and the same minutes for every cell; Tables 1 and 3, a plot and the paper's three
# conclusions checked on the numbers.
#
#   stage 0  the demo's corpora: synthetic espeak-ng speech (en, de, es, fr, it) and the
#            evaluation-only real speech (Asterisk en/es/fr/it, Fish Fillets nl/cs)
#   stage 1  the study's sets in $data/study_sets: train/dev as the demo's, larger test sets
#   stage 2  the anchors: Whisper tiny.en's and Whisper base's own decoders on the same test sets
#            (transcribe; Whisper base's translate task for X → en)
#   stage 3  the encoder caches: Whisper tiny.en's and Whisper base's outputs of the training and
#            dev clips (every cell of an encoder reads the same cache)
#   stage 4  the cells (recipes/study/cells.py): train each within STUDY_MINUTES, evaluate it on
#            every test set; a finished cell is skipped, so an interrupted study resumes
#   stage 5  the report (recipes/study/report.py): report.md, table3.csv, table1.csv, plots,
#            conclusions.json
#
# Usage: recipes/study/run.sh [--stage N] [--stop-stage N]
# Environment: STUDY_MINUTES (default 3: training minutes per cell; about two hours in all on 2 cores,
#   docs/study.md), STUDY_OUT (default study_out), STUDY_DATA (default data/demo: the demo's corpora,
#   shared with `make demo`), STUDY_SEED (default 0), STUDY_THREADS (torch threads, default nproc),
#   STUDY_CELLS (default: all; names as `recipes/study/cells.py list` prints them),
#   STUDY_PREALIGN_SHARE (default 0.8: the share of a cell's minutes spent pre-aligning),
#   STUDY_PREALIGN_STEPS (default 0; N > 0: every cell pre-aligns for N steps, however long they take),
#   STUDY_TEST / STUDY_REAL / STUDY_REAL_OTHER / STUDY_ST_TEST (test clips: synthetic English 100,
#   real English 50, real es/fr/it and nl/cs 20 each, synthetic ST 25 per source language).
set -euo pipefail
cd "$(dirname "$0")/../.."
stage=0; stop_stage=5
while [ $# -gt 0 ]; do
    case "$1" in
        --stage) stage=$2; shift 2;;
        --stop-stage) stop_stage=$2; shift 2;;
        *) echo "unknown argument $1" >&2; exit 2;;
    esac
done
PY="${PY:-.venv/bin/python}"
SPEECHLLM="${SPEECHLLM:-.venv/bin/speechllm}"
minutes="${STUDY_MINUTES:-3}"
out="${STUDY_OUT:-study_out}"
data="${STUDY_DATA:-data/demo}"
sets="$data/study_sets"
seed="${STUDY_SEED:-0}"
threads="${STUDY_THREADS:-$(nproc)}"
export OMP_NUM_THREADS="$threads"
SECONDS=0

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
    echo "== stage 0: the demo's corpora in $data"
    DEMO_DATA="$data" PY="$PY" SPEECHLLM="$SPEECHLLM" bash recipes/demo/run.sh --stage 0 --stop-stage 0
fi
if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
    echo "== stage 1: the study's sets in $sets"
    "$PY" recipes/demo/subsets.py "$data" "$sets" --num-test "${STUDY_TEST:-100}" --num-real "${STUDY_REAL:-50}" \
        --num-real-other "${STUDY_REAL_OTHER:-20}" --num-st-test "${STUDY_ST_TEST:-25}"
fi
if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
    for name in asr_test real_en; do
        echo "== stage 2: Whisper tiny.en's and Whisper base's own decoders on $name"
        "$SPEECHLLM" whisper-baseline --model whisper-tiny.en --manifest "$sets/$name.jsonl.gz" \
            --out "$out/anchors/whisper-tiny.en/$name"
        "$SPEECHLLM" whisper-baseline --model whisper-base --manifest "$sets/$name.jsonl.gz" \
            --out "$out/anchors/whisper-base/$name"
    done
    for name in st_test real_st; do
        echo "== stage 2: Whisper base's translate task on $name"
        "$SPEECHLLM" whisper-baseline --model whisper-base --task st --manifest "$sets/$name.jsonl.gz" \
            --out "$out/anchors/whisper-base/$name"
    done
fi
if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
    echo "== stage 3: Whisper tiny.en's encoder outputs -> $data/encoder_cache"
    "$SPEECHLLM" cache recipes/demo/conf/asr.yaml --out "$data/encoder_cache" \
        --manifest "$sets/asr_train.jsonl.gz" --manifest "$sets/asr_dev.jsonl.gz"
    echo "== stage 3: Whisper base's encoder outputs -> $data/encoder_cache_base"
    "$SPEECHLLM" cache recipes/demo/conf/st.yaml --out "$data/encoder_cache_base" \
        --manifest "$sets/asr_train.jsonl.gz" --manifest "$sets/asr_dev.jsonl.gz" \
        --manifest "$sets/st_train.jsonl.gz" --manifest "$sets/st_dev.jsonl.gz"
fi
if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
    echo "== stage 4: the cells, ${minutes} training minutes each"
    "$PY" recipes/study/cells.py run --out "$out" --sets "$sets" --data "$data" --minutes "$minutes" \
        --seed "$seed" --threads "$threads" --prealign-share "${STUDY_PREALIGN_SHARE:-0.8}" \
        --prealign-steps "${STUDY_PREALIGN_STEPS:-0}" \
        ${STUDY_CELLS:+--cells $STUDY_CELLS}
fi
if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
    echo "== stage 5: report -> $out"
    "$PY" recipes/study/report.py "$out" --wall-seconds "$SECONDS"
fi
