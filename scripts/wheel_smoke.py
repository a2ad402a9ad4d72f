"""Smoke test of an installed gpt4all-rag wheel: generate, embed, index a folder and ask it.

Run by ``scripts/wheel_smoke.sh`` with the Python of a fresh virtual environment into which
only the wheel (and its dependencies) were installed, from a folder outside the source tree,
so everything comes from the wheel. Exits non-zero with a message on the first failure.

    python scripts/wheel_smoke.py [WORK_DIR]      # default: a new temporary folder
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import gpt4all_rag
from gpt4all_rag import Embed4All, GPT4All, system
from gpt4all_rag.models import pypi as pypi_models


def check(ok: bool, what: str) -> None:
    if not ok:
        sys.exit(f"wheel smoke test failed: {what}")
    print(f"ok: {what}")


def main() -> None:
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="g4r-smoke-"))
    package = Path(gpt4all_rag.__file__).resolve().parent
    check("site-packages" in str(package), f"gpt4all_rag comes from the installed wheel ({package})")
    print(system.report())
    models = pypi_models.model_folder()

    with GPT4All("SmolLM2-135M-Instruct.Q4_1.gguf", model_path=models, n_threads=2) as model:
        text = model.generate("The capital of France is", max_tokens=8, temp=0)
        st = model.stats
        check(st.prompt_tokens > 0 and st.decoded_tokens_total >= st.prompt_tokens
              and st.finish_reason in ("stop", "length"),
              f"generate: {st.prompt_tokens} prompt tokens evaluated, {st.completion_tokens} "
              f"generated ({text!r}, {st.finish_reason})")
    with Embed4All(model_path=models, n_threads=2) as embedder:
        vec = embedder.embed("A sentence to embed.")
        check(len(vec) == 384 and abs(sum(x * x for x in vec) - 1.0) < 1e-3,
              "embed: a 384-dimensional unit vector")

    docs = work / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "json.md").write_text(
        "# Saving data\n\nUse json.dump(obj, f) to write a Python object to a file as JSON, "
        "and json.load(f) to read it back.\n", encoding="utf-8")
    (docs / "files.md").write_text(
        "# Files\n\nopen(path, 'w') opens a file for writing; close it when done.\n",
        encoding="utf-8")
    cli = [str(Path(sys.executable).parent / "gpt4all-rag")]
    common = ["--collection", "smoke", "--persist-dir", str(work / "store"), "--json"]
    index = json.loads(subprocess.run(cli + ["index", str(docs)] + common, check=True,
                                      capture_output=True, text=True).stdout)
    check(len(index["indexed"]) == 2 and index["n_chunks"] >= 2, f"index: {index['n_chunks']} chunks")
    ask = json.loads(subprocess.run(
        cli + ["ask", "How do I write an object to a file as JSON?", "--model-path", str(models),
               "--max-tokens", "16"] + common,
        check=True, capture_output=True, text=True).stdout)
    check(bool(ask["answer"]) and ask["sources"][0]["path"].endswith("json.md"),
          f"ask: answered, first source {Path(ask['sources'][0]['path']).name}")


if __name__ == "__main__":
    main()
