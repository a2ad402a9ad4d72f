"""The LocalDocs commands' ``--json`` output, ``ask -`` from a pipe and ``python -m gpt4all_rag``,
on real models and documents."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gpt4all_rag.cli import main
from tests.conftest import SMOLLM2

DOCS = {
    "volcanoes.md": "# Volcanoes\n\nMount Etna is an active stratovolcano on the east coast of "
                    "Sicily.\n",
    "trains.rst": "Trains\n======\n\nThe Shinkansen is a network of high-speed railway lines in "
                  "Japan. It opened in 1964.\n",
    "bread.txt": "Sourdough bread is leavened by wild yeast and lactic acid bacteria.\n",
}
RESULT_KEYS = ["rank", "text", "score", "path", "title", "page", "start_line", "end_line",
               "heading", "chunk_id", "citation", "ranks", "origin", "metadata"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> dict[str, Any]:
    docs = tmp_path_factory.mktemp("docs")
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    db = tmp_path_factory.mktemp("db")
    common = ["--persist-dir", str(db), "--embedding-model-path", str(model_dir), "-c", "json-cli"]
    return {"docs": docs, "db": db, "common": common, "model_dir": model_dir}


def _json(args: list[str], **kwargs: Any) -> dict[str, Any]:
    r = CliRunner().invoke(main, args, **kwargs)
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, r.stdout  # exactly one JSON object
    return json.loads(lines[0])


def _module(args: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gpt4all_rag", *args], input=stdin,
                          capture_output=True, text=True, timeout=600, check=False)


def test_python_dash_m_runs_the_command() -> None:
    done = _module(["--help"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: gpt4all-rag ")
    for command in ("index", "ask", "search", "collections", "chat", "models", "evaluate"):
        assert f"  {command} " in done.stdout


def test_json_of_index_search_ask_and_collections(setup: dict[str, Any]) -> None:
    common, docs = setup["common"], setup["docs"]
    report = _json(["index", str(docs), "-q", "--json", *common])
    assert list(report) == ["collection", "indexed", "unchanged", "removed", "skipped", "n_chunks",
                            "timings"]
    assert list(report["timings"]) == ["scan", "read", "chunk", "embed", "store", "total"]
    assert report["timings"]["embed"] > 0 and report["timings"]["total"] >= report["timings"]["embed"]
    assert report["collection"] == "json-cli"
    assert sorted(Path(p).name for p in report["indexed"]) == sorted(DOCS)
    assert report["n_chunks"] >= 3 and report["skipped"] == [] and report["removed"] == []
    again = _json(["index", str(docs), "-q", "--json", *common])
    assert again["indexed"] == [] and len(again["unchanged"]) == 3
    verbose = CliRunner().invoke(main, ["index", str(docs), "-q", "-v", "--threads", "1", *common])
    assert verbose.exit_code == 0, verbose.output
    assert re.search(r"^time [0-9.]+ s: scan [0-9.]+ s, read [0-9.]+ s, chunk [0-9.]+ s, "
                     r"embed [0-9.]+ s, store [0-9.]+ s", verbose.output, re.M), verbose.output
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    spare = cpus > 1  # one thread embeds: any other CPU is spare for reading and chunking
    assert re.search(r"^embedding threads: 1 \(g4r's graph\); reading and chunking " +
                     ("in a thread beside it" if spare else r"in line \(no CPU spare\)") + "$",
                     verbose.output, re.M), verbose.output
    zero = CliRunner().invoke(main, ["index", str(docs), "-q", "--threads", "0", *common])
    assert zero.exit_code == 2 and "--threads" in zero.output

    found = _json(["search", "high-speed railway in Japan", "-k", "2", "--json", *common])
    assert list(found) == ["collection", "query", "mode", "k", "results"]
    assert (found["query"], found["mode"], found["k"]) == ("high-speed railway in Japan", "hybrid", 2)
    top = found["results"][0]
    assert list(top) == RESULT_KEYS
    assert top["rank"] == 1 and top["path"] == str(docs / "trains.rst")
    assert top["citation"].startswith(str(docs / "trains.rst") + ", line")

    rows = _json(["collections", "--persist-dir", str(setup["db"]), "--json"])["collections"]
    assert [r["name"] for r in rows] == ["json-cli"] and rows[0]["documents"] == 3
    assert _json(["collections", "--persist-dir", str(setup["db"]), "list", "--json"])["collections"] == rows
    shown = _json(["collections", "--persist-dir", str(setup["db"]), "show", "json-cli", "--json"])
    assert shown["collection"] == rows[0]
    assert sorted(Path(d["path"]).name for d in shown["documents"]) == sorted(DOCS)
    assert all(d["state"] == "done" and d["origin"] == "file" for d in shown["documents"])


def test_ask_reads_the_question_from_a_pipe(setup: dict[str, Any]) -> None:
    _json(["index", str(setup["docs"]), "-q", "--json", *setup["common"]])  # (or already done)
    question = "Where is Mount Etna?"
    args = ["ask", "-", "--json", *setup["common"], "--model", SMOLLM2, "--model-path",
            str(setup["model_dir"]), "--offline", "--max-tokens", "16", "--temp", "0",
            "--threads", "2", "-k", "2"]
    done = _module(args, stdin=question + "\n")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert list(out) == ["collection", "question", "model", "answer", "sources"]
    assert (out["question"], out["model"]) == (question, SMOLLM2)
    assert isinstance(out["answer"], str) and out["answer"].strip()  # words vary by CPU
    assert len(out["sources"]) == 2 and list(out["sources"][0]) == RESULT_KEYS
    assert out["sources"][0]["path"] == str(setup["docs"] / "volcanoes.md")
    # Streaming (no --json) reads the pipe too.
    plain = _module([a for a in args if a != "--json"], stdin=question)
    assert plain.returncode == 0, plain.stderr
    assert "Sources:\n[1] " + str(setup["docs"] / "volcanoes.md") in plain.stdout


def test_an_empty_question_or_query_is_a_usage_error(setup: dict[str, Any]) -> None:
    r = CliRunner().invoke(main, ["ask", "-", *setup["common"], "--offline"], input="")
    assert r.exit_code == 2 and "QUESTION is empty (nothing on standard input)" in r.output
    r = CliRunner().invoke(main, ["search", "  ", *setup["common"]])
    assert r.exit_code == 2 and "QUERY is empty" in r.output


def test_remove_json_and_errors_stay_messages(setup: dict[str, Any], tmp_path: Path) -> None:
    db = tmp_path / "db"
    common = ["--persist-dir", str(db), "--embedding-model-path", str(setup["model_dir"]), "-c", "gone"]
    _json(["index", str(setup["docs"]), "-q", "--json", *common])
    assert _json(["collections", "--persist-dir", str(db), "remove", "gone", "--yes", "--json"]) == \
        {"removed": "gone"}
    r = CliRunner().invoke(main, ["search", "railway", "--json", *common])
    assert r.exit_code == 1 and r.stdout == ""
    assert "Error: no LocalDocs collection named 'gone'" in r.stderr and "Traceback" not in r.output
