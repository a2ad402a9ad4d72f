"""The reference implementations' virtualenv (``bench/.venv-ref``, made by
``bench/setup_reference.sh``) and how a benchmark runs a script in it.

gpt4all 2.8.2 and sentence-transformers (PyTorch's CPU build) live there, away from our own
environment: each reference runs in a process of its own, so that its thread pools never spin
beside ours.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

PYTHON = Path(__file__).resolve().parent / ".venv-ref" / "bin" / "python"
#: LangChain's RAG recipe, run with :func:`run` in :data:`PYTHON` (``setup_reference.sh
#: --langchain``): bench_index.py and bench_retrieval.py compare ours with it.
LANGCHAIN_RECIPE = Path(__file__).resolve().parent / "langchain_recipe.py"
#: ONNX Runtime's virtualenv (``setup_reference.sh --onnx``).
ORT_PYTHON = Path(__file__).resolve().parent / ".venv-ort" / "bin" / "python"


def installed(python: Path = PYTHON) -> bool:
    return python.exists()


def run(script: str | Path, *args: str, python: Path = PYTHON) -> Any:
    """Run ``script`` (Python source, or the path of a script file) with ``args`` in a
    reference virtualenv (``python``), offline, and return the JSON value its last output line
    holds; None when the virtualenv is missing or the script fails (its last error line is
    printed)."""
    if not installed(python):
        return None
    code = [str(script)] if isinstance(script, Path) else ["-c", script]
    proc = subprocess.run([str(python), *code, *args], capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
                               "PATH": "/usr/bin:/bin"})
    if proc.returncode != 0:
        print(f"  (reference failed: {proc.stderr.strip().splitlines()[-1:]})")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])
