"""Chroma conventions of LocalDocs on both backends: the schema upgrade, configuration updates
through Chroma, collection listings, filters and added texts through LocalDocs' own API."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpt4all_rag.errors import CollectionNotFoundError, InvalidParameterError
from gpt4all_rag.localdocs import LocalDocs, SearchResults, list_collections
from gpt4all_rag.localdocs.collections import COLLECTION_KEYS
from gpt4all_rag.localdocs.store import SCHEMA_VERSION, LocalDocsEmbeddingFunction

from .support import Backend, open_localdocs, plain_client

MINILM = "all-MiniLM-L6-v2.gguf2.f16.gguf"

FILES = {"guide.md": "# Guide\n\nThe guide explains how to install the heat pump.\n",
         "notes.txt": "Notes about the heat pump: it was installed in May.\n"}


@pytest.fixture
def indexed(backend: Backend, embed_model_dir: Path, tmp_path: Path) -> Backend:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in FILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    with open_localdocs(backend, embed_model_dir) as ld:
        ld.index(folder, progress=False)
    return backend


def test_a_schema_1_collection_gets_extension_and_origin(indexed: Backend,
                                                         embed_model_dir: Path) -> None:
    chunks = plain_client(indexed).get_collection(indexed["collection"])
    got = chunks.get(include=["metadatas"])
    # Make it look like a collection written before schema 2 (None deletes a metadata key).
    chunks.update(ids=got["ids"], metadatas=[{"extension": None, "origin": None} for _ in got["ids"]])
    meta = {k: v for k, v in (chunks.metadata or {}).items() if k != "hnsw:space"}
    chunks.modify(metadata={**meta, "g4r_schema": 1})
    assert all("extension" not in m for m in chunks.get(include=["metadatas"])["metadatas"])
    with open_localdocs(indexed, embed_model_dir) as ld:
        hits = ld.search("heat pump", k=4, filter={"extension": ".txt"})
        assert [Path(h.path).name for h in hits] == ["notes.txt"]
    again = plain_client(indexed).get_collection(indexed["collection"])
    assert again.metadata["g4r_schema"] == SCHEMA_VERSION == 2
    assert {m["origin"] for m in again.get(include=["metadatas"])["metadatas"]} == {"file"}


def test_a_configuration_update_to_another_model_raises(indexed: Backend,
                                                        embed_model_dir: Path) -> None:
    collection = plain_client(indexed).get_collection(indexed["collection"])
    with pytest.raises(ValueError, match="re-index"):
        collection.modify(configuration={
            "embedding_function": LocalDocsEmbeddingFunction("other-model.gguf")})
    # Chroma 1.5 validates the update only after its backend stored it (seen on both the
    # embedded client and the server), so the error is a warning to the caller, not a guard.
    # LocalDocs checks its own record of the build, which the update does not touch.
    collection = plain_client(indexed).get_collection(indexed["collection"])
    assert collection.metadata["g4r_embedding_model"] == MINILM
    with open_localdocs(indexed, embed_model_dir) as ld:
        assert Path(ld.search("install the heat pump", k=1, mode="dense")[0].path).name == "guide.md"


def test_list_collections(indexed: Backend) -> None:
    where = {k: v for k, v in indexed.items() if k != "collection"}
    rows = {r["name"]: r for r in list_collections(**where)}
    row = rows[indexed["collection"]]
    assert list(row) == list(COLLECTION_KEYS)
    assert (row["documents"], row["embedding_model"], row["schema"]) == (2, MINILM, 2)
    assert row["chunks"] >= 2 and row["chunk_tokens"] == 128
    assert 'data-kind="collections"' in list_collections(**where)._repr_html_()


def test_added_texts_filters_get_and_delete(indexed: Backend, embed_model_dir: Path,
                                             tmp_path: Path) -> None:
    with open_localdocs(indexed, embed_model_dir) as ld:
        ids = ld.add_texts(["The heat pump's filter is cleaned in autumn.", "Unrelated text."],
                           metadatas=[{"source": "maintenance-log", "year": 2026}, None])
        assert ids[0] != ids[1]
        hits = ld.search("When is the heat pump filter cleaned?", k=3)
        assert isinstance(hits, SearchResults)
        top = hits[0]
        assert (top.chunk_id, top.origin, top.path) == (ids[0], "text", "maintenance-log")
        assert top.metadata == {"source": "maintenance-log", "year": 2026}
        assert [h.chunk_id for h in ld.search("heat pump", k=5, filter={"year": 2026})] == [ids[0]]
        assert [h.origin for h in ld.search("heat pump", k=5, filter={"origin": "file"})] == ["file"] * 2
        assert [r.chunk_id for r in ld.get([ids[1], "missing", ids[0]])] == [ids[1], ids[0]]
        assert ld.stats()["documents"] == 4
        report = ld.index(tmp_path / "docs", progress=False)  # texts are not files: left alone
        assert not report.removed and len(report.unchanged) == 2
        assert ld.delete([ids[0], ids[1], "missing"]) == 2
        assert ld.stats()["documents"] == 2
        with pytest.raises(InvalidParameterError, match="list of strings"):
            ld.add_texts("one string")
        with pytest.raises(InvalidParameterError, match="list of non-empty strings"):
            ld.delete("abc")  # type: ignore[arg-type]
        with pytest.raises(InvalidParameterError, match="vector must be 384"):
            ld.search_by_vector([0.1, 0.2])
        vector = ld.embed_query("heat pump installation")
        assert [h.path for h in ld.search_by_vector(vector, k=1)] == \
            [h.path for h in ld.search("heat pump installation", k=1, mode="dense")]


def test_reads_of_a_missing_collection_raise(backend: Backend, embed_model_dir: Path) -> None:
    with LocalDocs(**backend, model_path=embed_model_dir) as ld:
        with pytest.raises(CollectionNotFoundError):
            ld.get(["x"])
        with pytest.raises(CollectionNotFoundError):
            ld.delete(["x"])
