"""GPT4AllEmbeddings on the real all-MiniLM-L6-v2 GGUF model, plus LangChain's standard suites."""

from __future__ import annotations

import math
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings
from langchain_gpt4all_rag import GPT4AllEmbeddings
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from lc_helpers import MINILM, embedding_params

from gpt4all_rag.embedding_rules import find_rule
from gpt4all_rag.errors import InvalidParameterError, ModelNotFoundError

TEXTS = ["The cat sat on the mat.", "Stock markets fell sharply today.",
         "A kitten is sleeping on a rug."]


class TestGPT4AllEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return GPT4AllEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": MINILM, "model_path": "/nonexistent/models", "allow_download": False}


class TestGPT4AllEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return GPT4AllEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return embedding_params()


@pytest.fixture(scope="module")
def emb() -> GPT4AllEmbeddings:
    return GPT4AllEmbeddings(**embedding_params())


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def test_vectors_have_the_documented_size_and_norm(emb: GPT4AllEmbeddings) -> None:
    vectors = emb.embed_documents(TEXTS)
    assert len(vectors) == 3
    for v in vectors:
        assert len(v) == 384
        assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, abs_tol=1e-5)
    # Meaning: the two cat sentences are closer to each other than to the markets one.
    assert _cos(vectors[0], vectors[2]) > _cos(vectors[0], vectors[1])


def test_batch_equals_single_calls(emb: GPT4AllEmbeddings) -> None:
    batch = emb.embed_documents(TEXTS)
    small_batches = GPT4AllEmbeddings(**embedding_params(batch_size=2)).embed_documents(TEXTS)
    for text, v, w in zip(TEXTS, batch, small_batches):
        single = emb.embed_documents([text])[0]
        assert max(abs(a - b) for a, b in zip(v, single)) < 1e-4
        assert max(abs(a - b) for a, b in zip(v, w)) < 1e-4


def test_minilm_takes_no_prefix_so_query_equals_document(emb: GPT4AllEmbeddings) -> None:
    q = emb.embed_query(TEXTS[0])
    d = emb.embed_documents([TEXTS[0]])[0]
    assert max(abs(a - b) for a, b in zip(q, d)) < 1e-4


def test_query_prefix_of_the_model_family_is_applied() -> None:
    emb = GPT4AllEmbeddings(**embedding_params())
    embedder = emb.embedder
    # The vector of the literal text "search_query: <query>", embedded without a prefix.
    expected = embedder.embed("search_query: where is the cat", prefix="")
    expected_doc = embedder.embed("search_document: the cat is here", prefix="")
    # Pretend the model is Nomic Embed v1.5: its rule adds search_query / search_document.
    embedder.rule = find_rule("nomic-embed-text-v1.5")
    got = emb.embed_query("where is the cat")
    got_doc = emb.embed_documents(["the cat is here"])[0]
    assert max(abs(a - b) for a, b in zip(got, expected)) < 1e-4
    assert max(abs(a - b) for a, b in zip(got_doc, expected_doc)) < 1e-4


def test_unknown_model_needs_explicit_prefixes() -> None:
    emb = GPT4AllEmbeddings(**embedding_params())
    emb.embedder.rule = None  # a model the prefix rules do not know
    with pytest.raises(InvalidParameterError, match="document_prefix"):
        emb.embed_query("hello")
    explicit = GPT4AllEmbeddings(**embedding_params(query_prefix="", document_prefix=""))
    explicit.embedder.rule = None
    assert len(explicit.embed_query("hello")) == 384


def test_a_prefix_the_model_was_not_trained_with_is_refused() -> None:
    emb = GPT4AllEmbeddings(**embedding_params(query_prefix="search_query"))
    with pytest.raises(InvalidParameterError):
        emb.embed_query("hello")


def test_empty_input_list_and_empty_text(emb: GPT4AllEmbeddings) -> None:
    assert emb.embed_documents([]) == []
    with pytest.raises(InvalidParameterError):
        emb.embed_query("")
    assert len(emb.embed_query("still usable")) == 384


async def test_async_equals_sync(emb: GPT4AllEmbeddings) -> None:
    sync = emb.embed_documents(TEXTS)
    got = await emb.aembed_documents(TEXTS)
    assert max(abs(a - b) for v, w in zip(sync, got) for a, b in zip(v, w)) < 1e-6
    q = await emb.aembed_query(TEXTS[0])
    assert max(abs(a - b) for a, b in zip(q, emb.embed_query(TEXTS[0]))) < 1e-6


def test_weights_load_lazily() -> None:
    emb = GPT4AllEmbeddings(model="missing.gguf", model_path="/nonexistent", allow_download=False)
    with pytest.raises(ModelNotFoundError):
        emb.embed_query("hello")


def test_dimensionality_below_full_size_needs_a_matryoshka_model() -> None:
    emb = GPT4AllEmbeddings(**embedding_params(dimensionality=128))
    with pytest.raises(InvalidParameterError, match="Matryoshka"):
        emb.embed_query("hello")


def test_model_name_is_an_alias_of_model(emb: GPT4AllEmbeddings) -> None:
    # langchain-community's GPT4AllEmbeddings takes model_name=; code moving over keeps working.
    params = embedding_params()
    alias = GPT4AllEmbeddings(**{**{k: v for k, v in params.items() if k != "model"},
                                 "model_name": params["model"]})
    assert alias.model == MINILM
    assert alias.embed_query("a kitten") == pytest.approx(emb.embed_query("a kitten"), abs=1e-5)
    same = GPT4AllEmbeddings(model=MINILM, model_name=MINILM, allow_download=False)
    assert same.model == MINILM
    with pytest.raises(ValueError, match="name different models"):
        GPT4AllEmbeddings(model=MINILM, model_name="other.gguf")
