"""examples/llamaindex_query.py, run as a user runs it: a subprocess on the real models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from li_support import N_THREADS

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "llamaindex_query.py"


def run(model_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args, "--model-path", str(model_dir), "--offline",
         "--threads", str(N_THREADS), "--max-tokens", "24"],
        capture_output=True, text=True, timeout=300, check=False)


def test_example_answers_from_the_project_readme_by_default(model_dir: Path) -> None:
    done = run(model_dir, "How do I run the tests?", "--top-k", "2")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("Q: How do I run the tests?\nA: ")
    answer = out.split("A: ", 1)[1].split("\n\nSources:")[0]
    assert answer.strip()
    sources = out.split("Sources:\n", 1)[1].splitlines()
    assert len(sources) == 2 and all("README.md" in s for s in sources)


def test_example_over_a_folder_cites_the_matching_file(model_dir: Path, docs_dir: Path) -> None:
    done = run(model_dir, "What gives sourdough bread its sour taste?", "--path", str(docs_dir),
               "--top-k", "1")
    assert done.returncode == 0, done.stderr
    assert "[1] bread.txt (score" in done.stdout


def test_example_reports_a_missing_folder(model_dir: Path, tmp_path: Path) -> None:
    done = run(model_dir, "anything", "--path", str(tmp_path / "missing"))
    assert done.returncode == 2 and "does not exist" in done.stderr
