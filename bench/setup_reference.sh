#!/usr/bin/env bash
# Reference implementations for the benchmarks, in their own virtualenv (bench/.venv-ref):
# gpt4all==2.8.2 (the newest GPT4All SDK on PyPI) and, for the embedding benchmark,
# sentence-transformers on PyTorch's CPU build.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv-ref/bin/python ]; then python3 -m venv .venv-ref; fi
.venv-ref/bin/pip install -q --disable-pip-version-check "gpt4all==2.8.2" numpy
if [ "${1:-}" = "--st" ]; then
  .venv-ref/bin/pip install -q --disable-pip-version-check "torch==2.13.0" sentence-transformers
fi
