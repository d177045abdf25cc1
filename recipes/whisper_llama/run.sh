#!/usr/bin/env bash
# whisper + llama: see recipes/common/run_pair.sh for the stages and options.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash recipes/common/run_pair.sh whisper_llama "$@"
