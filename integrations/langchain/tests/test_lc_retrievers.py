"""LocalDocsRetriever over a real LocalDocs collection (embedded Chroma, MiniLM embeddings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_gpt4all_rag import LocalDocsRetriever
from langchain_tests.integration_tests import RetrieversIntegrationTests
from lc_helpers import MINILM, models_dir

from gpt4all_rag.errors import CollectionNotFoundError
from gpt4all_rag.localdocs import LocalDocs

FILES = {
    "cats.md": "# Cats\n\nCats are small domesticated carnivores.\nThey sleep up to sixteen "
               "hours a day and purr when content.\n",
    "volcanoes.txt": "Volcanoes form where magma reaches the surface of the Earth.\nMount Etna "
                     "in Sicily is one of the most active volcanoes in Europe.\n",
    "bread.md": "# Baking bread\n\nKnead the dough for ten minutes.\nLet it rise for an hour "
                "before baking at 220 degrees.\n",
    "trains.txt": "The first public steam railway opened in 1825.\nHigh-speed trains in Japan "
                  "are called Shinkansen.\n",
}


def _build(root: Path) -> dict[str, Any]:
    """Index FILES into a new collection under ``root``; the retriever's options for it."""
    docs_dir = root / "docs"
    docs_dir.mkdir()
    for name, text in FILES.items():
        (docs_dir / name).write_text(text, encoding="utf-8")
    options = {"collection": "lc-test", "persist_directory": str(root / "db"),
               "embedding_model": MINILM, "model_path": str(models_dir())}
    with LocalDocs(**options) as ld:
        ld.index(docs_dir, progress=False)
    return options


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _build(tmp_path_factory.mktemp("localdocs"))


class TestLocalDocsRetrieverStandard(RetrieversIntegrationTests):
    """LangChain's standard retriever suite."""

    options: ClassVar[dict[str, Any]] = {}

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _collection(cls, tmp_path_factory: pytest.TempPathFactory) -> None:
        cls.options = _build(tmp_path_factory.mktemp("localdocs-std"))

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return LocalDocsRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def retriever_query_example(self) -> str:
        return "How long do cats sleep?"


def test_documents_carry_text_source_and_citation(collection: dict[str, Any]) -> None:
    retriever = LocalDocsRetriever(**collection, k=2)
    docs = retriever.invoke("How long do cats sleep?")
    assert len(docs) == 2
    top = docs[0]
    assert isinstance(top, Document)
    assert "sixteen hours" in top.page_content
    meta = top.metadata
    assert Path(meta["source"]).name == "cats.md"
    assert meta["start_line"] >= 1 and meta["end_line"] >= meta["start_line"]
    assert meta["page"] is None
    assert meta["chunk_id"] == top.id
    assert isinstance(meta["score"], float)
    assert meta["citation"].startswith(meta["source"]) and "line" in meta["citation"]
    assert docs[0].metadata["score"] >= docs[1].metadata["score"]


def test_an_open_localdocs_instance_and_per_call_mode(collection: dict[str, Any]) -> None:
    with LocalDocs(**collection) as ld:
        retriever = LocalDocsRetriever(localdocs=ld, k=1)
        docs = retriever.invoke("Shinkansen", mode="keyword")
        assert len(docs) == 1 and Path(docs[0].metadata["source"]).name == "trains.txt"
        dense = retriever.invoke("Which mountain in Sicily erupts?", mode="dense")
        assert Path(dense[0].metadata["source"]).name == "volcanoes.txt"


async def test_async_equals_sync(collection: dict[str, Any]) -> None:
    retriever = LocalDocsRetriever(**collection, k=3)
    sync = retriever.invoke("baking dough")
    got = await retriever.ainvoke("baking dough")
    assert [d.id for d in got] == [d.id for d in sync]


def test_unknown_call_argument_is_refused(collection: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        LocalDocsRetriever(**collection).invoke("cats", top_n=2)


def test_missing_collection_raises(tmp_path: Path) -> None:
    retriever = LocalDocsRetriever(collection="nothing-here", persist_directory=str(tmp_path),
                                   embedding_model=MINILM, model_path=str(models_dir()))
    with pytest.raises(CollectionNotFoundError):
        retriever.invoke("cats")


def test_a_metadata_filter_restricts_the_documents(collection: dict[str, Any]) -> None:
    retriever = LocalDocsRetriever(**collection, k=4, filter={"extension": ".md"})
    docs = retriever.invoke("How long do cats sleep?")
    assert {Path(d.metadata["source"]).name for d in docs} == {"cats.md", "bread.md"}
    txt = retriever.invoke("trains", filter={"extension": ".txt"}, mode="dense")
    assert {Path(d.metadata["source"]).name for d in txt} == {"volcanoes.txt", "trains.txt"}


def test_several_collections_are_fused_by_rank(collection: dict[str, Any], tmp_path: Path) -> None:
    """One retriever over two collections gets search_collections' fused ranking: each
    collection's best hit comes before either's second."""
    from gpt4all_rag.localdocs import search_collections

    docs_dir = tmp_path / "more"
    docs_dir.mkdir()
    (docs_dir / "tea.md").write_text("# Tea\n\nGreen tea is steeped at 80 degrees for two "
                                     "minutes.\n", encoding="utf-8")
    (docs_dir / "cats-more.md").write_text("# Cat naps\n\nA sleeping cat curls up to keep "
                                           "warm.\n", encoding="utf-8")
    more = {**collection, "collection": "lc-more"}
    with LocalDocs(**more) as ld:
        ld.index(docs_dir, progress=False)
    retriever = LocalDocsRetriever(**{**collection, "collection": ["lc-test", "lc-more"]}, k=3)
    docs = retriever.invoke("How long do cats sleep?")
    opts = {k: v for k, v in collection.items() if k != "collection"}
    with LocalDocs("lc-test", **opts) as a, LocalDocs("lc-more", **opts) as b:
        expected = search_collections([a, b], "How long do cats sleep?", 3)
        firsts = {a.search("How long do cats sleep?", 1)[0].chunk_id,
                  b.search("How long do cats sleep?", 1)[0].chunk_id}
    assert [d.id for d in docs] == [r.chunk_id for r in expected]
    assert {d.id for d in docs[:2]} == firsts
    assert [d.metadata["score"] for d in docs] == pytest.approx([r.score for r in expected])
    by_objects = LocalDocsRetriever(localdocs=retriever.localdocs, k=3).invoke("How long do cats sleep?")
    assert [d.id for d in by_objects] == [d.id for d in docs]
