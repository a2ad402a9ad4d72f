"""examples/llamaindex_settings.py (LlamaIndex's global Settings on local models), run as a user
runs it: subprocesses on the real models, the LocalDocs path after ``gpt4all-rag index``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from li_support import N_THREADS

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "llamaindex_settings.py"


def _run(model_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args, "--model-path", str(model_dir), "--offline",
         "--threads", str(N_THREADS), "--max-tokens", "24"],
        capture_output=True, text=True, timeout=300, check=False)


def _sources(out: str) -> list[str]:
    return [line.strip() for line in out.split("\nSources:\n", 1)[1].splitlines() if line.strip()]


def test_settings_drive_a_vector_index(model_dir: Path, docs_dir: Path) -> None:
    done = _run(model_dir, "What gives sourdough bread its sour taste?", "--path", str(docs_dir),
                "--top-k", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Settings.llm: GPT4AllRag (")
    assert lines[1].startswith("Settings.embed_model: GPT4AllRagEmbedding (")
    assert lines[2] == "Q: What gives sourdough bread its sour taste?"
    assert lines[3].startswith("A: ") and lines[3][3:].strip()  # an answer; its words vary by CPU
    assert _sources(done.stdout) == ["[1] bread.txt"]


def test_settings_drive_a_localdocs_query_engine(model_dir: Path, docs_dir: Path,
                                                 tmp_path: Path) -> None:
    # The collection is built with the command the README names.
    db = tmp_path / "db"
    index = subprocess.run(
        [sys.executable, "-m", "gpt4all_rag", "index", str(docs_dir), "-c", "li-settings",
         "--persist-dir", str(db), "--embedding-model-path", str(model_dir), "-q"],
        capture_output=True, text=True, timeout=300, check=False)
    assert index.returncode == 0, index.stderr
    assert "li-settings: 4 indexed" in index.stdout
    done = _run(model_dir, "Where does the Danube flow into the sea?", "--collection",
                "li-settings", "--persist-dir", str(db), "--top-k", "2")
    assert done.returncode == 0, done.stderr
    sources = _sources(done.stdout)
    assert len(sources) == 2
    assert sources[0].startswith(f"[1] {docs_dir / 'rivers.txt'}, line")  # citation with lines
