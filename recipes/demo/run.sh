#!/usr/bin/env bash
# The demo: real pretrained speech encoders (Whisper tiny.en for English ASR, Whisper base for ST)
# connected to a real pretrained LLM (SmolLM2-135M-Instruct) through trained adapters, on a CPU,
# offline. See docs/demo.md.
#
#   stage 0  prepare the synthetic espeak-ng corpus (en, de, es, fr, it) and the evaluation-only real
#            speech: Asterisk prompts (en, es, fr, it) and Fish Fillets NG lines (nl, cs)
#   stage 1  cut the demo's train / dev / test sets, and the real-speech sets (real_en, real_asr:
#            es/fr/it, real_st: es/fr/it/nl/cs → en)
#   stage 2  the anchors: Whisper tiny.en's own decoder on the English test sets, Whisper base's on
#            the real sets (transcribe; translate → en), SmolLM2 translating the gold source text
#   stage 3  ASR: cache Whisper tiny.en's outputs, then for each adapter in ADAPTERS: pre-align it
#            to SmolLM2's input embeddings (no LLM), then train it with the LLM (LoRA); plus an
#            untrained one
#   stage 4  ASR: evaluate them on the synthetic test set, real speech and a few training clips,
#            and each pre-aligned adapter decoded alone (CTC greedy, no LLM)
#   stage 5  ST (de/es/fr/it → en) on Whisper base: cache its outputs, pre-align a Conv adapter on the
#            source-language transcripts, then the LLM stage; evaluate it (BLEU, synthetic and real),
#            its adapter alone as an es/fr/it recognizer (CTC greedy), and an untrained one
#   stage 6  report to demo_out/ (tables, curves, samples) and print the summary
#
# Usage: recipes/demo/run.sh [--stage N] [--stop-stage N]
# Environment: DEMO_MINUTES (default 12: the training budget; the whole run takes longer, see docs/demo.md),
#   ADAPTERS (default "conv"; any of base conv cif ctc wlq_former), DEMO_THREADS (torch threads; 1 is
#   faster on a CPU that other jobs share), DEMO_OUT (default demo_out), DEMO_DATA, DEMO_SEED
#   (default 0), DEMO_TRAIN_SENTENCES (English training sentences; default 6000: about 5 900 distinct
#   ones), DEMO_ST_SENTENCES (de/es/fr/it training sentences each; default 500: the ST stage's
#   minutes see fewer clips than that), DEMO_NO_REPEAT
#   (default 3: the LLM never repeats a 3-gram when decoding, the repetition guard; 0: plain greedy),
#   DEMO_PREALIGN_SHARE / DEMO_LLM_SHARE (defaults 0.52 / 0.10: each adapter's share of DEMO_MINUTES),
#   DEMO_CTC_WEIGHT (default 0.8: the ASR models decode jointly with their adapter's CTC head,
#   (1 - W) log p_LLM + W log p_CTC; 0: the LLM alone; docs/evaluation.md, "Joint CTC decoding"),
#   DEMO_FLOOR_CLIPS (default 20: clips spread over each test set that the untrained floors decode),
#   DEMO_CEILING_SENTENCES (default 10: sentences per direction SmolLM2 translates from gold text),
#   DEMO_LISTENING_CLIPS (default 20: clips of each ASR test set decoded again with another clip's
#   audio and with silence, the listening check),
#   DEMO_ENGINES (default "espeak-ng": the synthetic corpus's speech engines, any of espeak-ng festival
#   flite piper; measured in docs/demo.md, "Training voices"),
#   SPEECHLLM_BF16 (unset: bf16 where the CPU runs it natively, else float32; 0 or 1 forces it).
set -euo pipefail
cd "$(dirname "$0")/../.."
stage=0; stop_stage=6
while [ $# -gt 0 ]; do
    case "$1" in
        --stage) stage=$2; shift 2;;
        --stop-stage) stop_stage=$2; shift 2;;
        *) echo "unknown argument $1" >&2; exit 2;;
    esac
done
PY="${PY:-.venv/bin/python}"
SPEECHLLM="${SPEECHLLM:-.venv/bin/speechllm}"
minutes="${DEMO_MINUTES:-12}"
adapters="${ADAPTERS:-conv}"
seed="${DEMO_SEED:-0}"
threads="${DEMO_THREADS:-$(nproc)}"
out="${DEMO_OUT:-demo_out}"
data="${DEMO_DATA:-data/demo}"
sets="$data/sets"
# Budget split and test-set sizes (measured, docs/demo.md): recipes/demo/budget.py.
read -r pre_minutes asr_minutes st_pre_minutes st_minutes num_test num_real num_real_other num_st_test < <(
    "$PY" recipes/demo/budget.py "$minutes" "$adapters" "${DEMO_PREALIGN_SHARE:-0.52}" "${DEMO_LLM_SHARE:-0.10}")
export OMP_NUM_THREADS="$threads"
num_train="${DEMO_TRAIN_SENTENCES:-6000}"
num_st_train="${DEMO_ST_SENTENCES:-500}"
guard="${DEMO_NO_REPEAT:-3}"
ctc_weight="${DEMO_CTC_WEIGHT:-0.8}"
floor_cuts="${DEMO_FLOOR_CLIPS:-20}"
engines="${DEMO_ENGINES:-espeak-ng}"
echo "demo: ${minutes} min budget; adapters: ${adapters} (each ${pre_minutes} min pre-alignment +" \
    "${asr_minutes} min with the LLM); ST ${st_pre_minutes} + ${st_minutes} min; ${threads} thread(s); seed ${seed}"
SECONDS=0

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
    echo "== stage 0: synthetic corpus ($num_train English and $num_st_train de/es/fr/it train sentences; voices: $engines) and real speech"
    "$SPEECHLLM" prepare synthetic "$data/synthetic" --languages en de es fr it \
        --num-train "$num_st_train" "en=$num_train" --num-dev 40 --num-test 100 --num-jobs "$(nproc)" \
        --engines $engines
    "$SPEECHLLM" prepare realspeech "$data/realspeech" --languages en es fr it --cache-dir "$data/synthetic/debian"
    "$SPEECHLLM" prepare fillets "$data/fillets" --languages nl cs --cache-dir "$data/synthetic/debian" \
        --max-cut-duration 30 --num-jobs "$(nproc)"
fi
if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
    echo "== stage 1: demo sets in $sets"
    "$PY" recipes/demo/subsets.py "$data" "$sets" --num-test "$num_test" --num-real "$num_real" \
        --num-real-other "$num_real_other" --num-st-test "$num_st_test"
fi
if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
    echo "== stage 2: Whisper tiny.en's own greedy decoder"
    "$PY" -m speechllm.cli whisper-baseline --run asr "$sets/asr_test.jsonl.gz" "$out/eval/whisper/asr_test" \
        --run asr "$sets/real_en.jsonl.gz" "$out/eval/whisper/real_en"
    # One load for the three runs; the es/fr/it prompts, transcribed and translated, are encoded once.
    echo "== stage 2: Whisper base's own greedy decoder: transcribe en/es/fr/it, translate es/fr/it/nl/cs → en"
    "$PY" -m speechllm.cli whisper-baseline --model whisper-base \
        --run asr "$sets/real_en.jsonl.gz" "$out/eval/whisper_base/real_en" \
        --run asr "$sets/real_asr.jsonl.gz" "$out/eval/whisper_base/real_asr" \
        --run st "$sets/real_st.jsonl.gz" "$out/eval/whisper_base/real_st"
    # 10 sentences per direction: SmolLM2 reaches BLEU 0-3 from gold text on 9-20 (docs/demo.md).
    echo "== stage 2: SmolLM2 translating the gold source text (the ceiling of the demo's ST)"
    "$PY" recipes/demo/text_translation_ceiling.py --threads "$threads" --out "$out/eval/text_ceiling.json" \
        --per-language "${DEMO_CEILING_SENTENCES:-10}" \
        real_st="$sets/real_st.jsonl.gz" st_test="$sets/st_test.jsonl.gz"
fi
# ASR training reads Whisper tiny.en's outputs from a cache: the frozen encoder runs once per clip,
# not once per step (docs/demo.md). ST trains on audio: its 2 minutes see fewer clips than its
# training set holds, so caching them all would cost more than it saves.
cache="$data/encoder_cache"
cache_sets() {
    echo "== Whisper tiny.en encoder outputs of $* -> $cache"
    "$SPEECHLLM" cache recipes/demo/conf/asr.yaml --out "$cache" \
        $(for name in "$@"; do echo --manifest "$sets/$name.jsonl.gz"; done)
}
if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
    cache_sets asr_train asr_dev
    for adapter in $adapters; do
        echo "== stage 3: pre-align the $adapter adapter (${pre_minutes} min), then train it with the LLM (${asr_minutes} min)"
        "$PY" recipes/demo/train.py "recipes/demo/conf/asr_${adapter}.yaml" --minutes "$asr_minutes" --overwrite \
            --threads "$threads" output_dir="$out/runs/asr_${adapter}" data.encoder_cache="$cache" \
            seed="$seed" prealign.minutes="$pre_minutes" \
            "data.train=[{path: $sets/asr_train.jsonl.gz, task: asr}]" \
            "data.val=[{path: $sets/asr_dev.jsonl.gz, task: asr}]"
    done
    first=${adapters%% *}
    "$PY" recipes/demo/train.py "recipes/demo/conf/asr_${first}.yaml" --minutes 0 --untrained \
        output_dir="$out/runs/asr_${first}_untrained" seed="$seed"
fi
# Whisper's English normalizer beside the paper's, and the listening check (each set decoded again
# with another clip's audio and with silence) on DEMO_LISTENING_CLIPS clips: docs/evaluation-checks.md
checks="--normalizer whisper_english --listening-clips ${DEMO_LISTENING_CLIPS:-20}"
if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
    first=${adapters%% *}
    for run in $(for a in $adapters; do echo "asr_$a"; done); do
        # CIF is pre-aligned with cross-entropy, not CTC: no CTC head to decode jointly with.
        weight=$ctc_weight; [ "$run" = asr_cif ] && weight=0
        echo "== stage 4: evaluate $run (joint CTC weight $weight)"
        "$PY" recipes/demo/evaluate.py --model "$out/runs/$run/model" --out "$out/eval/$run" \
            --threads "$threads" --no-repeat-ngram-size "$guard" --ctc-weight "$weight" $checks \
            asr_test="$sets/asr_test.jsonl.gz" real_en="$sets/real_en.jsonl.gz" \
            train_probe="$sets/asr_train_probe.jsonl.gz"
        echo "== stage 4: the pre-aligned $run adapter decoded alone (CTC greedy, no LLM)"
        "$PY" recipes/demo/evaluate.py --model "$out/runs/$run/prealign/model" --out "$out/eval/${run}_alone" \
            --threads "$threads" --decoder prealign --normalizer whisper_english asr_test="$sets/asr_test.jsonl.gz" \
            real_en="$sets/real_en.jsonl.gz"
    done
    # The untrained contrast writes up to --max-new-tokens of unrelated text per clip, the slowest
    # decoding of the demo: it is a floor, so $floor_cuts clips spread over each set and 32 tokens
    # suffice (the report says so). Its listening check, the check's positive control (it flags a
    # model that does not use what is said), reads half as many clips as the trained model's.
    echo "== stage 4: evaluate asr_${first}_untrained ($floor_cuts clips per set, <= 32 tokens)"
    "$PY" recipes/demo/evaluate.py --model "$out/runs/asr_${first}_untrained/model" \
        --out "$out/eval/asr_${first}_untrained" --threads "$threads" --max-new-tokens 32 --no-repeat-ngram-size "$guard" \
        --max-cuts "$floor_cuts" --normalizer whisper_english --listening-clips $(( (${DEMO_LISTENING_CLIPS:-20} + 1) / 2 )) \
        asr_test="$sets/asr_test.jsonl.gz" real_en="$sets/real_en.jsonl.gz"
fi
if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
    st_cache="$data/encoder_cache_base"
    echo "== stage 5: Whisper base encoder outputs of st_train st_dev -> $st_cache"
    "$SPEECHLLM" cache recipes/demo/conf/st.yaml --out "$st_cache" \
        --manifest "$sets/st_train.jsonl.gz" --manifest "$sets/st_dev.jsonl.gz"
    echo "== stage 5: ST de/es/fr/it → en on Whisper base: pre-align on the source transcripts" \
        "(${st_pre_minutes} min), then the LLM stage (${st_minutes} min)"
    "$PY" recipes/demo/train.py recipes/demo/conf/st.yaml --task st --minutes "$st_minutes" --overwrite \
        --threads "$threads" output_dir="$out/runs/st" seed="$seed" data.encoder_cache="$st_cache" \
        prealign.minutes="$st_pre_minutes" \
        "data.train=[{path: $sets/st_train.jsonl.gz, task: st}]" \
        "data.val=[{path: $sets/st_dev.jsonl.gz, task: st}]"
    "$PY" recipes/demo/train.py recipes/demo/conf/st.yaml --minutes 0 --untrained output_dir="$out/runs/st_untrained" \
        seed="$seed"
    echo "== stage 5: evaluate st (synthetic and real X → en)"
    "$PY" recipes/demo/evaluate.py --model "$out/runs/st/model" --out "$out/eval/st" --task st \
        --threads "$threads" --max-new-tokens 48 --no-repeat-ngram-size "$guard" st_test="$sets/st_test.jsonl.gz" \
        real_st="$sets/real_st.jsonl.gz"
    # Its pre-aligned adapter, decoded alone, transcribes de/es/fr/it: the demo's only model of
    # es/fr/it ASR (the English ASR model's encoder is English-only).
    echo "== stage 5: the pre-aligned st adapter decoded alone (CTC greedy, no LLM): ASR in the source languages"
    "$PY" recipes/demo/evaluate.py --model "$out/runs/st/prealign/model" --out "$out/eval/st_alone" \
        --threads "$threads" --decoder prealign st_test="$sets/st_test.jsonl.gz" real_asr="$sets/real_asr.jsonl.gz"
    echo "== stage 5: evaluate st_untrained ($floor_cuts clips per set, <= 32 tokens)"
    "$PY" recipes/demo/evaluate.py --model "$out/runs/st_untrained/model" --out "$out/eval/st_untrained" --task st \
        --threads "$threads" --max-new-tokens 32 --no-repeat-ngram-size "$guard" --max-cuts "$floor_cuts" \
        st_test="$sets/st_test.jsonl.gz" real_st="$sets/real_st.jsonl.gz"
    "$PY" recipes/demo/evaluate.py --model "$out/runs/st_untrained/model" --out "$out/eval/st_untrained" \
        --threads "$threads" --max-new-tokens 32 --no-repeat-ngram-size "$guard" --max-cuts "$floor_cuts" \
        real_asr="$sets/real_asr.jsonl.gz"
fi
if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
    echo "== stage 6: report"
    "$PY" recipes/demo/report.py "$out" --adapters $adapters --wall-seconds "$SECONDS"
fi
