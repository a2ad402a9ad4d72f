"""GPT4AllRagEmbedding on the real all-MiniLM-L6-v2: vectors, prefixes, batches, async, errors."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import pytest
from li_support import DOCUMENTS, MINILM, N_THREADS, SMOLLM2
from llama_index.core.bridge.pydantic import ValidationError
from llama_index.embeddings.gpt4all_rag import GPT4AllRagEmbedding

from gpt4all_rag import Embed4All, errors
from gpt4all_rag.embedding_rules import EmbeddingRule

TEXTS = list(DOCUMENTS.values())
QUERY = "How does Python free memory?"


def test_vectors_have_the_documented_size_and_norm(embed_model: GPT4AllRagEmbedding) -> None:
    v = embed_model.get_text_embedding(TEXTS[0])
    q = embed_model.get_query_embedding(QUERY)
    for vec in (v, q):
        assert len(vec) == 384 and all(isinstance(x, float) for x in vec)
        assert math.isclose(float(np.linalg.norm(vec)), 1.0, abs_tol=1e-5)


def test_same_vectors_as_embed4all_with_the_models_prefixes(
        embed_model: GPT4AllRagEmbedding, minilm: Embed4All) -> None:
    assert embed_model.resolved_prefixes() == (minilm.query_prefix, minilm.document_prefix) == ("", "")
    assert np.allclose(embed_model.get_query_embedding(QUERY),
                       minilm.embed(QUERY, prefix=minilm.query_prefix), atol=1e-6)
    assert np.allclose(embed_model.get_text_embedding(TEXTS[1]),
                       minilm.embed(TEXTS[1], prefix=minilm.document_prefix), atol=1e-6)


def test_queries_and_documents_get_their_own_prefixes(model_dir: Path) -> None:
    # A model family with distinct task prefixes (as Nomic Embed or E5 have), on real weights.
    with Embed4All(MINILM, model_path=model_dir, allow_download=False, n_threads=N_THREADS) as e:
        e.rule = EmbeddingRule("test", "minilm", "passage", "query",
                               frozenset({"passage", "query"}))
        embed = GPT4AllRagEmbedding(embedder=e)
        q = embed.get_query_embedding(QUERY)
        d = embed.get_text_embedding(QUERY)
        assert not np.allclose(q, d, atol=1e-3)
        assert np.allclose(q, e.embed(QUERY, prefix="query"), atol=1e-6)
        assert np.allclose(d, e.embed(QUERY, prefix="passage"), atol=1e-6)
        # User-set prefixes win; ones the model was not trained with are refused.
        swapped = GPT4AllRagEmbedding(embedder=e, query_prefix="passage", document_prefix="query")
        assert np.allclose(swapped.get_query_embedding(QUERY), d, atol=1e-6)
        with pytest.raises(errors.InvalidParameterError):
            GPT4AllRagEmbedding(embedder=e, query_prefix="search_query").get_query_embedding(QUERY)
        # An unknown model needs explicit prefixes.
        e.rule = None
        with pytest.raises(errors.InvalidParameterError, match="query_prefix"):
            GPT4AllRagEmbedding(embedder=e).get_query_embedding(QUERY)
        explicit = GPT4AllRagEmbedding(embedder=e, query_prefix="", document_prefix="")
        assert len(explicit.get_text_embedding_batch(TEXTS[:2])) == 2


def test_batches_equal_single_calls(minilm: Embed4All) -> None:
    embed = GPT4AllRagEmbedding(embedder=minilm, embed_batch_size=3)  # several engine calls
    texts = TEXTS * 3
    batch = np.array(embed.get_text_embedding_batch(texts))
    singles = np.array([embed.get_text_embedding(t) for t in TEXTS])
    assert batch.shape == (12, 384)
    assert np.abs(batch - np.tile(singles, (3, 1))).max() <= 1e-4


def test_queries_find_the_right_document(embed_model: GPT4AllRagEmbedding) -> None:
    docs = np.array(embed_model.get_text_embedding_batch(TEXTS))
    for query, expected in [(QUERY, "python_gc.txt"), ("Which river flows to the Black Sea?",
                                                      "rivers.txt"),
                            ("How do plants make sugar from light?", "photosynthesis.txt")]:
        best = int(np.argmax(docs @ np.array(embed_model.get_query_embedding(query))))
        assert list(DOCUMENTS)[best] == expected


def test_async_equals_sync(embed_model: GPT4AllRagEmbedding) -> None:
    async def main() -> tuple[list[float], list[float], list[list[float]]]:
        return (await embed_model.aget_query_embedding(QUERY),
                await embed_model.aget_text_embedding(TEXTS[0]),
                await embed_model.aget_text_embedding_batch(TEXTS))

    q, t, batch = asyncio.run(main())
    assert np.allclose(q, embed_model.get_query_embedding(QUERY), atol=1e-6)
    assert np.allclose(t, embed_model.get_text_embedding(TEXTS[0]), atol=1e-6)
    assert np.allclose(batch, embed_model.get_text_embedding_batch(TEXTS), atol=1e-4)


def test_lazy_loading_and_close(model_dir: Path) -> None:
    embed = GPT4AllRagEmbedding(MINILM, model_path=model_dir, allow_download=False,
                                n_threads=N_THREADS)
    assert not embed._embedder.loaded  # nothing loaded until the first call
    assert len(embed.get_query_embedding("hi")) == 384
    client = embed.client
    embed.close()
    embed.close()  # idempotent
    with pytest.raises(errors.ModelClosedError):
        embed.get_query_embedding("hi")
    with pytest.raises(errors.ModelClosedError):
        client.embed("hi")  # it owned the model, so the model is freed


def test_shared_embedder_stays_open(minilm: Embed4All) -> None:
    embed = GPT4AllRagEmbedding(embedder=minilm)
    embed.close()
    with pytest.raises(errors.ModelClosedError):
        embed.get_text_embedding("hi")
    assert len(minilm.embed("hi")) == 384


def test_errors(model_dir: Path, embed_model: GPT4AllRagEmbedding, tmp_path: Path) -> None:
    with pytest.raises(errors.ModelNotFoundError):
        GPT4AllRagEmbedding(MINILM, model_path=tmp_path / "missing",
                            allow_download=False).get_query_embedding("hi")
    with pytest.raises(errors.UnsupportedOperationError):
        GPT4AllRagEmbedding(SMOLLM2, model_path=model_dir, allow_download=False,
                            n_threads=N_THREADS).get_query_embedding("hi")
    with pytest.raises(errors.InvalidParameterError):
        embed_model.get_text_embedding("")
    with pytest.raises(errors.InvalidParameterError):  # not a Matryoshka model
        GPT4AllRagEmbedding(embedder=embed_model.client, dimensionality=128).get_query_embedding("hi")
    with pytest.raises(ValidationError):
        GPT4AllRagEmbedding(MINILM, long_text_mode="middle")
    with pytest.raises(errors.InvalidParameterError):
        GPT4AllRagEmbedding(embedder="MiniLM")  # type: ignore[arg-type]
    assert len(embed_model.get_query_embedding("still usable")) == 384


def test_long_texts_are_pooled_or_truncated(minilm: Embed4All) -> None:
    long_text = " ".join(TEXTS * 3)  # ~600 tokens: two of MiniLM's 512-token windows
    mean = GPT4AllRagEmbedding(embedder=minilm).get_text_embedding(long_text)
    first = GPT4AllRagEmbedding(embedder=minilm, long_text_mode="truncate").get_text_embedding(long_text)
    assert np.allclose(mean, minilm.embed(long_text, long_text_mode="mean"), atol=1e-6)
    assert np.allclose(first, minilm.embed(long_text, long_text_mode="truncate"), atol=1e-6)
    assert not np.allclose(mean, first, atol=1e-3)
