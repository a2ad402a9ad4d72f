#!/usr/bin/env bash
# Create .venv and install gpt4all-rag (building its native library), its integrations and,
# with --test, the test dependencies. Idempotent: a second run rebuilds only what changed.
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
$VPY -m pip install -q --disable-pip-version-check "scikit-build-core>=0.10" ninja
extras="localdocs,server"
pkg_extras=""
if [ "${1:-}" = "--test" ]; then extras="localdocs,server,test"; pkg_extras="[test]"; fi
# Large matrix products through Intel MKL (G4R_BLAS=mkl, linked statically from the
# mkl-static and mkl-include packages) on Intel x86-64 Linux machines, where it was measured
# to pay (README, "Intel MKL"); not yet measured on AMD. G4R_BLAS=mkl or none overrides.
blas=${G4R_BLAS:-}
if [ -z "$blas" ]; then
  blas=none
  if [ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] && grep -q GenuineIntel /proc/cpuinfo; then
    blas=mkl
  fi
fi
if [ "$blas" = mkl ]; then
  $VPY -m pip install -q --disable-pip-version-check mkl-static mkl-include
fi
# The development build compiles ggml's CPU kernels for this machine only (G4R_CPU_ISA=auto);
# a wheel (pip wheel ., CI, releases) carries every variant and picks one at run time.
$VPY -m pip install -q --disable-pip-version-check --no-build-isolation \
  --config-settings=cmake.define.G4R_CPU_ISA="${G4R_CPU_ISA:-auto}" \
  --config-settings=cmake.define.G4R_BLAS="$blas" -e ".[${extras}]"
for pkg in integrations/langchain integrations/llama_index; do
  if [ -f "$pkg/pyproject.toml" ]; then
    $VPY -m pip install -q --disable-pip-version-check -e "${pkg}${pkg_extras}"
  fi
done
