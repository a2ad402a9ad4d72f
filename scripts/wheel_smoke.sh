#!/usr/bin/env bash
# Build the portable wheel once (pip wheel .: every CPU variant), install it into a fresh
# virtual environment with no compiler or CMake on PATH, and run the smoke test from it
# (generate, embed, index a folder and ask), then the wheel tier of the tests (tests/wheel:
# the variant chosen under emulated lower CPUs). Prints the build time and the wheel's size.
#
#   bash scripts/wheel_smoke.sh [OUT_DIR]      # default: build/wheel-smoke
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${1:-build/wheel-smoke}
rm -rf "$out"
mkdir -p "$out/dist"
PY=${PYTHON:-python3}

start=$(date +%s)
# A build folder of its own, so that the development build in build/<wheel tag> is untouched.
"$PY" -m pip wheel -q --disable-pip-version-check --no-deps -w "$out/dist" \
  --config-settings=build-dir="build/wheel-{wheel_tag}" .
secs=$(( $(date +%s) - start ))
wheel=$(ls "$out"/dist/gpt4all_rag-*.whl)
size=$(stat -c %s "$wheel")
echo "wheel: $(basename "$wheel"), $((size / 1024)) KiB, built in ${secs} s"
"$PY" - "$wheel" <<'PYEOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
cpu = sorted(n.rsplit("/", 1)[-1] for n in names if "libggml-cpu" in n)
print("CPU variants:", " ".join(c.removeprefix("libggml-cpu-").removesuffix(".so") for c in cpu))
assert cpu and not any("sapphirerapids" in c for c in cpu), cpu
PYEOF

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A PATH with Python's virtual environment and the basic tools only (and QEMU for the wheel
# tier): no compiler, no CMake.
tools="$out/tools"
mkdir -p "$tools"
for t in sh bash env cat ls rm mkdir dirname uname ln cp mv tar gzip id date qemu-x86_64; do
  p=$(command -v "$t" || true)
  [ -n "$p" ] && ln -sf "$p" "$tools/$t"
done
"$PY" -m venv "$out/venv"
export PATH="$root/$out/venv/bin:$root/$tools"
for t in cc gcc g++ c++ clang cmake ninja make; do
  if command -v "$t" > /dev/null; then echo "unexpected $t on PATH" >&2; exit 1; fi
done
export CC=false CXX=false
"$out/venv/bin/python" -m pip install -q --disable-pip-version-check \
  "${wheel}[localdocs]"
(cd "$work" && "$root/$out/venv/bin/python" -I "$root/scripts/wheel_smoke.py" "$work")
echo "wheel smoke test passed"

# The wheel tier (tests/wheel): the run-time choice of CPU kernels under emulated lower CPUs
# (Debian's qemu-user), generation and embeddings there against the host's.
"$out/venv/bin/python" -m pip install -q --disable-pip-version-check pytest
(cd "$work" && "$root/$out/venv/bin/python" -I -m pytest -c "$root/tests/wheel/pytest.ini" \
  --rootdir "$root/tests/wheel" "$root/tests/wheel")
