"""Two ``gpt4all-rag serve`` processes on one real Chroma server serve the same LocalDocs
collections, and a restarted server has lost nothing."""

from __future__ import annotations

from pathlib import Path

import httpx

from gpt4all_rag.localdocs import LocalDocs
from tests.conftest import SMOLLM2

from .openai_server import running_openai_server
from .support import unique_name

QUESTION = "When did the first public steam railway open?"


def _ask(url: str, collection: str) -> dict:
    r = httpx.post(url + "/v1/chat/completions", timeout=120, json={
        "model": SMOLLM2, "max_tokens": 4, "temperature": 0,
        "messages": [{"role": "user", "content": QUESTION}],
        "localdocs": {"collections": [collection], "k": 1}})
    assert r.status_code == 200, r.text
    return r.json()


def test_two_servers_on_one_chroma_server_and_a_restart(chroma_server: str, model_dir: Path,
                                                         tmp_path: Path) -> None:
    collection = unique_name("scale")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "trains.md").write_text("# Railways\n\nThe first public steam railway opened in 1825 "
                                    "between Stockton and Darlington.\n")
    (docs / "bread.md").write_text("# Sourdough\n\nFeed a sourdough starter every day.\n")
    with LocalDocs(collection, chroma_url=chroma_server, model_path=model_dir) as ld:
        ld.index(docs, progress=False)
    args = ("--model", SMOLLM2, "--chroma-url", chroma_server)
    with running_openai_server(model_dir, *args) as a, running_openai_server(model_dir, *args) as b:
        first, second = _ask(a, collection), _ask(b, collection)
        assert first["references"][0]["path"].endswith("trains.md")
        assert [r["chunk_id"] for r in first["references"]] == [r["chunk_id"] for r in second["references"]]
        names = {c["id"] for c in httpx.get(b + "/v1/collections").json()["data"]}
        assert collection in names
    with running_openai_server(model_dir, *args) as again:  # a restart loses no LocalDocs data
        assert _ask(again, collection)["references"][0]["chunk_id"] == first["references"][0]["chunk_id"]
