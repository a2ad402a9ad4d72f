"""LocalDocsVectorStore on real LocalDocs collections (MiniLM embeddings), embedded and on a
real Chroma server: LangChain's standard suite, then what LocalDocs adds (filters, MMR, files
and texts side by side, the bookkeeping)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore, VectorStoreRetriever
from langchain_gpt4all_rag import GPT4AllEmbeddings, LocalDocsVectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests
from lc_helpers import MINILM, N_THREADS, models_dir

from gpt4all_rag.errors import CollectionNotFoundError, InvalidParameterError
from gpt4all_rag.localdocs import LocalDocs, list_collections
from gpt4all_rag.localdocs.store import FileRecord, Store, make_client

BACKENDS = ("embedded", "server")

FILES = {
    "kettle.md": "# Kitchen\n\n## Kettle\n\nThe office kettle is on the second floor.\n"
                 "Descale it every Friday with citric acid.\n",
    "parking.txt": "Visitors park in bay C.\nThe garage closes at 8 pm on weekdays.\n",
    "printer.rst": "Printer\n=======\n\nThe printer on the third floor prints in colour.\n"
                   "Toner is in the cupboard next to it.\n",
}


def _options(kind: str, request: pytest.FixtureRequest, folder: Path) -> dict[str, Any]:
    """LocalDocs options for a fresh collection on the embedded store or the server."""
    where = {"persist_directory": str(folder / "db")} if kind == "embedded" else \
        {"chroma_url": request.getfixturevalue("chroma_server")}
    return {"collection": f"lc-{uuid.uuid4().hex[:12]}", "model_path": str(models_dir()),
            "embedding_model": MINILM, "n_threads": N_THREADS, **where}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    return _options(request.param, request, tmp_path)


class TestLocalDocsVectorStoreStandard(VectorStoreIntegrationTests):
    """LangChain's standard vector-store suite, once per backend. LocalDocs embeds with its
    own model (MiniLM), so ``get_embeddings()`` (a fake) is not used."""

    @pytest.fixture(params=BACKENDS)
    def vectorstore(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
        store = LocalDocsVectorStore(**_options(request.param, request, tmp_path))
        try:
            yield store
        finally:
            store.localdocs.close()
            try:
                store.localdocs.remove()
            except CollectionNotFoundError:  # a test that wrote nothing left no collection
                pass


@pytest.fixture
def filled(backend: dict[str, Any], tmp_path: Path) -> Iterator[LocalDocsVectorStore]:
    """A collection with FILES indexed and two texts added through the vector store."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in FILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    with LocalDocs(**backend) as ld:
        ld.index(folder, progress=False)
        store = LocalDocsVectorStore(localdocs=ld)
        store.add_texts(["The canteen serves soup on Mondays.", "The lift is out of order."],
                        metadatas=[{"source": "memo-12", "team": "facilities", "n": 3},
                                   {"source": "memo-13", "team": "it", "tags": ["a", "b"]}],
                        ids=["memo-12", "memo-13"])
        yield store


def _names(docs: list[Document]) -> list[str]:
    return [Path(d.metadata["source"]).name for d in docs]


def test_files_and_texts_are_searched_together(filled: LocalDocsVectorStore) -> None:
    docs = filled.similarity_search("Which day is soup served in the canteen?", k=2)
    assert docs[0].id == "memo-12"
    assert docs[0].metadata == {"source": "memo-12", "team": "facilities", "n": 3}
    kettle = filled.similarity_search("How do I descale the kettle?", k=1)[0]
    assert kettle.metadata["source"].endswith("kettle.md")
    assert kettle.metadata["heading"] == "Kitchen > Kettle"
    assert kettle.metadata["citation"].startswith(kettle.metadata["source"] + ", line")


@pytest.mark.parametrize("flt, expected", [
    ({"extension": ".txt"}, ["parking.txt"]),
    ({"extension": ["md", ".RST"]}, ["kettle.md", "printer.rst"]),
    ({"heading": "Printer"}, ["printer.rst"]),
    ({"$or": [{"title": "Kitchen"}, {"extension": ".txt"}]}, ["kettle.md", "parking.txt"]),
])
def test_filters_on_extension_heading_and_title(filled: LocalDocsVectorStore,
                                               flt: dict[str, Any], expected: list[str]) -> None:
    for mode in ("hybrid", "dense", "keyword"):
        docs = filled.similarity_search("Where is the kettle and where do visitors park?", k=5,
                                        filter=flt, mode=mode)
        assert sorted(set(_names(docs))) <= expected, mode
        if mode != "keyword":  # BM25 only returns chunks that share a word with the query
            assert sorted(set(_names(docs))) == expected, mode


def test_filter_on_path_and_on_added_metadata(filled: LocalDocsVectorStore) -> None:
    path = str(next(iter(filled.localdocs.search("kettle", k=1, mode="keyword"))).path)
    docs = filled.similarity_search("anything about the office", k=5, filter={"path": path})
    assert docs and all(d.metadata["source"] == path for d in docs)
    it = filled.similarity_search("office", k=5, filter={"team": "it"})
    assert [d.id for d in it] == ["memo-13"]
    assert it[0].metadata["tags"] == ["a", "b"]  # not filterable, but given back exactly


def test_scores_and_relevance_scores(filled: LocalDocsVectorStore) -> None:
    pairs = filled.similarity_search_with_score("garage closing time", k=3, mode="dense")
    scores = [s for _, s in pairs]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
    relevant = filled.similarity_search_with_relevance_scores("garage closing time", k=3)
    assert [d.id for d, _ in relevant] == [d.id for d, _ in pairs]
    assert all(0.0 <= s <= 1.0 for _, s in relevant)


def test_mmr_prefers_different_chunks(filled: LocalDocsVectorStore) -> None:
    # Two copies of one sentence: plain similarity returns both, MMR only one of them.
    filled.add_texts(["The kettle is descaled on Fridays.", "The kettle is descaled on Fridays!"],
                     ids=["dup-1", "dup-2"])
    query = "When is the kettle descaled?"
    top = [d.id for d in filled.similarity_search(query, k=2, mode="dense")]
    assert set(top) == {"dup-1", "dup-2"}
    mmr = filled.max_marginal_relevance_search(query, k=2, fetch_k=6, lambda_mult=0.3)
    assert len(mmr) == 2 and len({"dup-1", "dup-2"} & {d.id for d in mmr}) == 1
    retriever = filled.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 6,
                                                                     "lambda_mult": 0.3})
    assert isinstance(retriever, VectorStoreRetriever)
    assert [d.id for d in retriever.invoke(query)] == [d.id for d in mmr]


def _records(backend: dict[str, Any]) -> dict[str, FileRecord]:
    client = make_client(backend.get("persist_directory"), backend.get("chroma_url"))
    return Store(client, backend["collection"], create=False).file_records()


def _revision(backend: dict[str, Any]) -> int:
    where = {k: backend.get(k) for k in ("persist_directory", "chroma_url")}
    (row,) = [r for r in list_collections(**where) if r["name"] == backend["collection"]]
    return int(row["revision"])


def test_writes_keep_the_bookkeeping_right(filled: LocalDocsVectorStore, backend: dict[str, Any],
                                           tmp_path: Path) -> None:
    ld = filled.localdocs
    texts = {p: r for p, r in _records(backend).items() if r.origin == "text"}
    assert set(texts) == {"text:memo-12", "text:memo-13"}
    assert all(r.state == "done" and r.n_chunks == 1 and r.doc_id == p[5:] for p, r in texts.items())
    revision = _revision(backend)
    # BM25 sees a text as soon as it is added (the revision changed).
    filled.add_texts(["Zanzibar-flavoured tea is in the top drawer."], ids=["tea"])
    assert _revision(backend) == revision + 1
    assert [r.chunk_id for r in ld.search("Zanzibar", k=1, mode="keyword")] == ["tea"]
    # Re-indexing the folder leaves texts alone and finds the files unchanged.
    report = ld.index(tmp_path / "docs", progress=False)
    assert sorted(Path(p).name for p in report.unchanged) == sorted(FILES)
    assert not report.removed and not report.indexed
    # Deleting a file chunk removes the file as a unit; indexing puts it back.
    kettle = filled.similarity_search("kettle", k=1, filter={"extension": ".md"})[0]
    filled.delete([kettle.id])
    assert not filled.similarity_search("kettle", k=5, filter={"extension": ".md"})
    assert ld.search("Zanzibar", k=1, mode="keyword")[0].chunk_id == "tea"
    again = ld.index(tmp_path / "docs", progress=False)
    assert [Path(p).name for p in again.indexed] == ["kettle.md"]
    filled.delete(["tea", "memo-13", "no-such-id"])
    assert filled.get_by_ids(["tea", "memo-13", "memo-12"])[0].id == "memo-12"
    assert not ld.search("Zanzibar", k=1, mode="keyword")


def test_bad_input_gets_the_documented_errors(filled: LocalDocsVectorStore) -> None:
    with pytest.raises(InvalidParameterError, match="non-empty string"):
        filled.add_texts([""])
    with pytest.raises(InvalidParameterError, match="one entry per text"):
        filled.add_texts(["a", "b"], metadatas=[{}])
    with pytest.raises(InvalidParameterError, match="unique"):
        filled.add_texts(["a", "b"], ids=["x", "x"])
    with pytest.raises(InvalidParameterError, match="form LocalDocs gives"):
        filled.add_texts(["a"], ids=["0123456789abcdef01234567:00000"])
    with pytest.raises(InvalidParameterError, match="JSON"):
        filled.add_texts(["a"], metadatas=[{"when": object()}])
    with pytest.raises(InvalidParameterError, match="needs the ids"):
        filled.delete(None)
    with pytest.raises(InvalidParameterError, match="unknown operator"):
        filled.similarity_search("kettle", filter={"page": {"$like": 3}})
    with pytest.raises(InvalidParameterError, match="fetch_k"):
        filled.max_marginal_relevance_search("kettle", k=3, fetch_k=2)
    with pytest.raises(InvalidParameterError, match="unsupported keyword"):
        filled.similarity_search("kettle", top_n=3)
    with pytest.raises(InvalidParameterError, match="GPT4AllEmbeddings"):
        LocalDocsVectorStore(embedding=object())  # type: ignore[arg-type]
    # The store is still usable.
    assert filled.similarity_search("kettle", k=1)


def test_from_texts_takes_the_model_from_gpt4all_embeddings(backend: dict[str, Any]) -> None:
    emb = GPT4AllEmbeddings(model_name=MINILM, model_path=str(models_dir()), n_threads=N_THREADS)
    options = {k: v for k, v in backend.items() if k not in ("embedding_model", "model_path", "n_threads")}
    store = LocalDocsVectorStore.from_texts(["Pigeons nest on the roof."], emb,
                                            metadatas=[{"source": "roof"}], ids=["roof"], **options)
    try:
        assert store.localdocs.embedding_model == MINILM
        assert store.similarity_search("birds on the roof", k=1)[0].id == "roof"
        assert store.embeddings.embed_query("birds") == pytest.approx(
            store.localdocs.embed_query("birds"), abs=1e-5)
    finally:
        store.localdocs.remove()
        store.localdocs.close()
