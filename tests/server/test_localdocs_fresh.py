"""Collections changed by another process are seen as they are now: removed (404 / not
found), created again, or given new documents, in dense and keyword search alike. The other
process is the CLI, as a user runs it beside a server or a notebook; the server is a real
``gpt4all-rag serve`` on 127.0.0.1 over the same embedded database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import SMOLLM2

from .openai_server import running_openai_server
from .support import N_THREADS

CLI = str(Path(sys.executable).with_name("gpt4all-rag"))
DOCS = {
    "cats.md": "# Cats\n\nCats sleep up to sixteen hours a day and purr when content.\n",
    "bread.md": "# Bread\n\nKnead the dough for ten minutes and let it rise for an hour.\n",
    "trains.md": "# Trains\n\nThe first public steam railway opened in 1825.\n",
}
NEW_DOC = ("volcano.md", "# Volcanoes\n\nMount Etna in Sicily is one of the most active "
                         "volcanoes in Europe; its lava flows reach the sea.\n")
NEW_QUESTION = "Which volcano in Sicily is active?"


def _cli(*args: str, db: Path) -> None:
    subprocess.run([CLI, *args, "--persist-dir", str(db)] if args[0] != "collections" else
                   [CLI, "collections", "--persist-dir", str(db), *args[1:]],
                   check=True, capture_output=True, timeout=300)


def _index(folder: Path, db: Path, model_dir: Path, name: str = "notes") -> None:
    _cli("index", str(folder), "-c", name, "--embedding-model-path", str(model_dir), "-q", db=db)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    return docs


def _search(url: str, mode: str, query: str = NEW_QUESTION, name: str = "notes") -> httpx.Response:
    return httpx.post(f"{url}/v1/collections/{name}/search", timeout=120,
                      json={"query": query, "k": 1, "mode": mode})


def test_the_server_follows_collections_changed_by_the_cli(folder: Path, tmp_path: Path,
                                                          model_dir: Path) -> None:
    """Was: a document indexed by the CLI was found by the server's keyword search but not by
    its dense search, and a removed collection answered 500 until a restart, also after it
    was indexed again."""
    db = tmp_path / "db"
    _index(folder, db, model_dir)
    with running_openai_server(model_dir, "--persist-dir", str(db)) as url:
        for mode in ("dense", "keyword", "hybrid"):
            assert _search(url, mode).status_code == 200
        (folder / NEW_DOC[0]).write_text(NEW_DOC[1], encoding="utf-8")
        _index(folder, db, model_dir)
        for mode in ("dense", "keyword", "hybrid"):
            found = _search(url, mode)
            assert found.status_code == 200, found.text
            assert Path(found.json()["data"][0]["path"]).name == NEW_DOC[0], (mode, found.json())

        _cli("collections", "remove", "notes", "--yes", db=db)
        for mode in ("dense", "keyword", "hybrid"):
            gone = _search(url, mode)
            assert gone.status_code == 404, gone.text
            assert gone.json()["error"]["code"] == "collection_not_found"
        chat = httpx.post(url + "/v1/chat/completions", timeout=120, json={
            "model": SMOLLM2, "messages": [{"role": "user", "content": NEW_QUESTION}],
            "max_tokens": 4, "localdocs": {"collections": ["notes"]}})
        assert chat.status_code == 404 and chat.json()["error"]["code"] == "collection_not_found"

        (folder / NEW_DOC[0]).unlink()
        _index(folder, db, model_dir)  # the same name again, without the new document
        for mode in ("dense", "keyword", "hybrid"):
            again = _search(url, mode, "How long do cats sleep?")
            assert again.status_code == 200, again.text
            assert Path(again.json()["data"][0]["path"]).name == "cats.md"
            assert all(Path(r["path"]).name != NEW_DOC[0] for r in _search(url, mode).json()["data"])
        assert httpx.get(url + "/v1/collections", timeout=30).json()["data"][0]["documents"] == 3
        chat = httpx.post(url + "/v1/chat/completions", timeout=120, json={
            "model": SMOLLM2, "messages": [{"role": "user", "content": "How long do cats sleep?"}],
            "max_tokens": 4, "localdocs": {"collections": ["notes"], "k": 1}})
        assert chat.status_code == 200 and Path(chat.json()["references"][0]["path"]).name == "cats.md"


def test_an_open_localdocs_sees_another_process_s_changes(folder: Path, tmp_path: Path,
                                                          embed_model_dir: Path) -> None:
    from gpt4all_rag.errors import CollectionNotFoundError
    from gpt4all_rag.localdocs import LocalDocs

    db = tmp_path / "db"
    _index(folder, db, embed_model_dir)
    with LocalDocs("notes", persist_directory=db, model_path=embed_model_dir,
                   n_threads=N_THREADS) as ld:
        before = ld.search(NEW_QUESTION, 1, mode="dense")
        assert Path(before[0].path).name != NEW_DOC[0]
        (folder / NEW_DOC[0]).write_text(NEW_DOC[1], encoding="utf-8")
        _index(folder, db, embed_model_dir)
        for mode in ("dense", "keyword", "hybrid"):
            assert Path(ld.search(NEW_QUESTION, 1, mode=mode)[0].path).name == NEW_DOC[0], mode
        _cli("collections", "remove", "notes", "--yes", db=db)
        with pytest.raises(CollectionNotFoundError):
            ld.search(NEW_QUESTION, 1)
        _index(folder, db, embed_model_dir)
        assert Path(ld.search(NEW_QUESTION, 1, mode="dense")[0].path).name == NEW_DOC[0]
        assert ld.stats()["documents"] == 4
