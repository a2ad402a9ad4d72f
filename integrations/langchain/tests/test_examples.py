"""The LangChain examples run end to end as scripts, on the real small models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lc_helpers import N_THREADS, models_dir

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"


def _run(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_langchain_rag_example(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "kettle.md").write_text(
        "# The kettle\n\nThe office kettle is in the second-floor kitchen.\n"
        "Descale it every Friday with citric acid.\n", encoding="utf-8")
    (docs / "parking.txt").write_text(
        "Visitors park in bay C.\nThe garage closes at 8 pm.\n", encoding="utf-8")
    out = _run(str(EXAMPLES / "langchain_rag.py"), str(docs), "-q", "Where is the kettle?",
               "--persist-directory", str(tmp_path / "db"), "--model-path", str(models_dir()),
               "--max-tokens", "24", "-k", "2", "--n-threads", str(N_THREADS))
    answer, _, sources = out.partition("\n\nSources:\n")
    assert answer.startswith("Q: Where is the kettle?\nA: ")
    assert len(answer) > len("Q: Where is the kettle?\nA: ")
    cited = sources.strip().splitlines()
    assert len(cited) == 2
    assert "kettle.md, lines" in cited[0]  # the relevant file ranks first, with its lines


def test_langchain_structured_example() -> None:
    out = _run(str(EXAMPLES / "langchain_structured.py"), "--model-path", str(models_dir()),
               "--max-tokens", "96", "--n-threads", str(N_THREADS))
    lines = out.splitlines()
    order = json.loads(lines[0].removeprefix("pydantic: "))
    assert set(order) == {"customer", "item", "quantity", "city", "payment"}
    assert isinstance(order["quantity"], int)
    assert order["payment"] in ("card", "cash", "transfer")
    sentiment = json.loads(lines[1].removeprefix("json schema: ").split(" | ")[0])
    assert sentiment["sentiment"] in ("positive", "neutral", "negative")
    assert sentiment["confidence"] in ("low", "medium", "high")
