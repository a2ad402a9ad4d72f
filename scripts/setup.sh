#!/usr/bin/env bash
# Create .venv and install gpt4all-rag (building its native library), its integrations and,
# with --test, the test dependencies; with --notebook, JupyterLab and what the example
# notebook (examples/localdocs.ipynb) needs. Idempotent: a second run rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
$VPY -m pip install -q --disable-pip-version-check -U pip
# Build requirements installed up front: the build runs without isolation so that its
# build/ folder (and the fetched llama.cpp tree) is reused incrementally.
# simde-py: SIMDe's headers, over which the C++ tests' emulated build (bin/test_g4r_emulated,
# made with the tests below) compiles the encoder's kernels.
$VPY -m pip install -q --disable-pip-version-check "scikit-build-core>=0.10" ninja simde-py
extras="localdocs,server"
pkg_extras=""
for arg in "$@"; do
  case "$arg" in
    --test) extras="$extras,test"; pkg_extras="[test]" ;;
    --notebook) extras="$extras,notebook" ;;
    *) echo "usage: scripts/setup.sh [--test] [--notebook]" >&2; exit 2 ;;
  esac
done
# G4R_BLAS=mkl bash scripts/setup.sh: large matrix products through Intel MKL, linked
# statically from the mkl-static and mkl-include packages (README, "Intel MKL": prompts
# 1.6-2.7x faster on Intel CPUs, but greedy output then depends more on how a prompt was split
# into batches). Off by default.
blas=${G4R_BLAS:-none}
if [ "$blas" = mkl ]; then
  $VPY -m pip install -q --disable-pip-version-check mkl-static mkl-include
fi
# The development build compiles ggml's CPU kernels for this machine only (G4R_CPU_ISA=auto:
# each GGML_<FEATURE> on exactly when this CPU's cpuid flags have it, gpt4all_rag/cpu_isa.py);
# a wheel (pip wheel ., CI, releases) carries every variant and picks one at run time.
# G4R_BUILD_TESTS=ON also builds the C++ test binaries (build/<wheel tag>/bin/test_g4r and
# test_g4r_emulated, run by tests/native/test_cpp.py); wheels leave it off.
$VPY -m pip install -q --disable-pip-version-check --no-build-isolation \
  --config-settings=cmake.define.G4R_CPU_ISA="${G4R_CPU_ISA:-auto}" \
  --config-settings=cmake.define.G4R_BUILD_TESTS=ON \
  --config-settings=cmake.define.G4R_BLAS="$blas" -e ".[${extras}]"
# The module just built must load here: stop now, naming the flags it lacks, if ggml refuses it.
$VPY -m gpt4all_rag.system --check > /dev/null
for pkg in integrations/langchain integrations/llama_index; do
  if [ -f "$pkg/pyproject.toml" ]; then
    $VPY -m pip install -q --disable-pip-version-check -e "${pkg}${pkg_extras}"
  fi
done
