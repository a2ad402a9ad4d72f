"""End to end on real models: a VectorStoreIndex with our embeddings queried with our LLM, the
LocalDocs retriever, and structured output through the JSON-schema grammar."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from li_support import DOCUMENTS, N_THREADS
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.bridge.pydantic import BaseModel
from llama_index.core.prompts import PromptTemplate
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import QueryBundle
from llama_index.embeddings.gpt4all_rag import GPT4AllRagEmbedding
from llama_index.llms.gpt4all_rag import GPT4AllRag, StructuredOutputError
from llama_index.retrievers.gpt4all_rag import LocalDocsRetriever

from gpt4all_rag import errors
from gpt4all_rag.localdocs import LocalDocs

GC_QUESTION = "What does the cyclic garbage collector find?"


@pytest.fixture()
def index(embed_model: GPT4AllRagEmbedding) -> VectorStoreIndex:
    docs = [Document(text=text, metadata={"file_name": name}) for name, text in DOCUMENTS.items()]
    return VectorStoreIndex.from_documents(docs, embed_model=embed_model)


def test_vector_index_query_engine_end_to_end(index: VectorStoreIndex, llm: GPT4AllRag,
                                              embed_model: GPT4AllRagEmbedding) -> None:
    llm.max_tokens = 32
    engine = index.as_query_engine(llm=llm, embed_model=embed_model, similarity_top_k=2)
    response = engine.query(GC_QUESTION)
    assert response.source_nodes[0].node.metadata["file_name"] == "python_gc.txt"
    answer = str(response).lower()
    assert answer.strip()
    # The answer is grounded in the retrieved paragraph (greedy decoding: deterministic).
    assert any(w in answer for w in ("unreachable", "refer to each other", "cycl")), answer

    streamed = index.as_query_engine(llm=llm, embed_model=embed_model, similarity_top_k=2,
                                     streaming=True).query(GC_QUESTION)
    assert "".join(streamed.response_gen) == str(response)

    async_response = asyncio.run(engine.aquery(GC_QUESTION))
    assert str(async_response) == str(response)


def test_vector_index_retrieval_ranks_the_right_paragraph(index: VectorStoreIndex,
                                                          embed_model: GPT4AllRagEmbedding) -> None:
    retriever = index.as_retriever(similarity_top_k=4)
    for question, expected in [("Which river flows into the Black Sea?", "rivers.txt"),
                               ("What makes sourdough rise?", "bread.txt"),
                               ("Where in the plant cell does photosynthesis happen?",
                                "photosynthesis.txt")]:
        hits = retriever.retrieve(question)
        assert hits[0].node.metadata["file_name"] == expected
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


# -- LocalDocs retriever ---------------------------------------------------------------------
@pytest.fixture()
def localdocs(docs_dir: Path, tmp_path: Path, model_dir: Path) -> Iterator[LocalDocs]:
    with LocalDocs("li-test", persist_directory=tmp_path / "db", model_path=model_dir,
                   n_threads=N_THREADS) as ld:
        ld.index(docs_dir, progress=False)
        yield ld


def test_localdocs_retriever_returns_nodes_with_sources(localdocs: LocalDocs,
                                                        docs_dir: Path) -> None:
    retriever = LocalDocsRetriever(localdocs, similarity_top_k=3)
    hits = retriever.retrieve("How does CPython free memory?")
    assert len(hits) == 3
    top = hits[0]
    expected = localdocs.search("How does CPython free memory?", k=3)
    assert [h.node.node_id for h in hits] == [r.chunk_id for r in expected]
    assert [h.score for h in hits] == pytest.approx([r.score for r in expected])
    meta = top.node.metadata
    assert Path(meta["path"]) == (docs_dir / "python_gc.txt").resolve()
    assert meta["file_path"] == meta["path"] and meta["file_name"] == "python_gc.txt"
    assert meta["title"] and meta["chunk_id"] == top.node.node_id
    assert (meta["start_line"], meta["end_line"]) == (1, 1) and meta["page"] is None
    assert meta["citation"] == expected[0].citation()
    assert top.node.get_content() == expected[0].text
    # The LLM sees the title and the file with the text, not the bookkeeping.
    shown = top.node.get_content(metadata_mode="llm")
    assert "python_gc.txt" in shown and "chunk_id" not in shown


def test_localdocs_retriever_opens_the_collection_lazily(localdocs: LocalDocs, tmp_path: Path,
                                                         model_dir: Path) -> None:
    retriever = LocalDocsRetriever(collection="li-test", persist_directory=tmp_path / "db",
                                   model_path=model_dir, n_threads=N_THREADS,
                                   similarity_top_k=2, search_kwargs={"mode": "dense"})
    assert retriever._localdocs is None
    hits = retriever.retrieve("Which river flows into the Black Sea?")
    assert len(hits) == 2 and hits[0].node.metadata["file_name"] == "rivers.txt"
    assert -1.0 <= hits[0].score <= 1.0  # dense mode: cosine similarity
    async_hits = asyncio.run(retriever.aretrieve(QueryBundle("Which river flows into the Black Sea?")))
    assert [h.node.node_id for h in async_hits] == [h.node.node_id for h in hits]
    retriever.close()


def test_localdocs_retriever_over_several_collections(localdocs: LocalDocs, tmp_path: Path,
                                                      model_dir: Path) -> None:
    """Two collections by name: search_collections' fused ranking, each collection's best
    hit first; close() frees both collections' models, and the retriever still works."""
    from gpt4all_rag.localdocs import search_collections

    more = tmp_path / "more"
    more.mkdir()
    (more / "volga.txt").write_text("The Volga is the longest river in Europe and flows into "
                                    "the Caspian Sea.\n", encoding="utf-8")
    (more / "bread.txt").write_text("Sourdough bread rises slowly with wild yeast.\n",
                                    encoding="utf-8")
    with LocalDocs("li-more", persist_directory=tmp_path / "db", model_path=model_dir,
                   n_threads=N_THREADS) as second:
        second.index(more, progress=False)
        question = "Which river flows into a sea?"
        expected = search_collections([localdocs, second], question, 3)
        firsts = {localdocs.search(question, 1)[0].chunk_id, second.search(question, 1)[0].chunk_id}
    retriever = LocalDocsRetriever(collection=["li-test", "li-more"], persist_directory=tmp_path / "db",
                                   model_path=model_dir, n_threads=N_THREADS, similarity_top_k=3)
    hits = retriever.retrieve(question)
    assert [h.node.node_id for h in hits] == [r.chunk_id for r in expected]
    assert {h.node.node_id for h in hits[:2]} == firsts
    assert [ld.collection for ld in retriever.collections] == ["li-test", "li-more"]
    retriever.close()
    assert [h.node.node_id for h in retriever.retrieve(question)] == [h.node.node_id for h in hits]
    by_objects = LocalDocsRetriever([localdocs, *retriever.collections[1:]], similarity_top_k=3)
    assert [h.node.node_id for h in by_objects.retrieve(question)] == [h.node.node_id for h in hits]
    retriever.close()


def test_localdocs_retriever_in_a_query_engine(localdocs: LocalDocs, llm: GPT4AllRag) -> None:
    engine = RetrieverQueryEngine.from_args(LocalDocsRetriever(localdocs, similarity_top_k=1),
                                            llm=llm)
    response = engine.query(GC_QUESTION)
    assert response.source_nodes[0].node.metadata["file_name"] == "python_gc.txt"
    assert str(response).strip()


def test_localdocs_retriever_errors(tmp_path: Path, model_dir: Path) -> None:
    with pytest.raises(errors.InvalidParameterError):
        LocalDocsRetriever(similarity_top_k=0)
    with pytest.raises(errors.CollectionNotFoundError):
        LocalDocsRetriever(collection="never-indexed", persist_directory=tmp_path,
                           model_path=model_dir).retrieve("anything")


# -- structured output -------------------------------------------------------------------------
class Person(BaseModel):
    """A person mentioned in a text."""

    name: str
    age: int


EXTRACT = PromptTemplate("Extract the person from this text: {text}")


def test_structured_predict_follows_the_schema(llm: GPT4AllRag) -> None:
    llm.max_tokens = 40
    person = llm.structured_predict(Person, EXTRACT, text="John is 31 years old.")
    assert person == Person(name="John", age=31)

    partials = list(llm.stream_structured_predict(Person, EXTRACT, text="John is 31 years old."))
    assert len(partials) > 2 and partials[-1] == person

    assert asyncio.run(llm.astructured_predict(Person, EXTRACT, text="John is 31 years old.")) == person

    async def stream() -> list:
        return [p async for p in await llm.astream_structured_predict(
            Person, EXTRACT, text="John is 31 years old.")]

    assert asyncio.run(stream())[-1] == person

    structured = llm.as_structured_llm(Person)
    reply = structured.chat([ChatMessage(role=MessageRole.USER, content="Mary is 25 years old.")])
    assert Person.model_validate_json(reply.message.content).age == 25


def test_structured_predict_errors(llm: GPT4AllRag) -> None:
    with pytest.raises(StructuredOutputError, match="max_tokens"):
        llm.structured_predict(Person, EXTRACT, llm_kwargs={"max_tokens": 4}, text="John is 31.")
    with pytest.raises(ValueError):  # StructuredOutputError is a ValueError
        list(llm.stream_structured_predict(Person, EXTRACT, llm_kwargs={"max_tokens": 4},
                                           text="John is 31."))
    with pytest.raises(errors.InvalidParameterError):
        llm.structured_predict(Person, EXTRACT, llm_kwargs={"grammar": "root ::= \"x\""},
                               text="John is 31.")
    assert llm.structured_predict(Person, EXTRACT, text="John is 31 years old.").age == 31
