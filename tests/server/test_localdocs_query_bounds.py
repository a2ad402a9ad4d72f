"""A query of any length costs about what one of a context's length does: the dense side
embeds its first context window, the keyword side scores its first MAX_KEYWORD_TERMS terms.
Was: a 300,000-word query took 81 s (every window embedded and averaged)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpt4all_rag.localdocs.retrieval import MAX_KEYWORD_TERMS

from .support import Backend, open_localdocs


@pytest.fixture()
def indexed(backend: Backend, tmp_path: Path, embed_model_dir: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "volcano.md").write_text("# Volcanoes\n\nMount Etna in Sicily is an active volcano.\n")
    (docs / "bread.md").write_text("# Bread\n\nKnead the dough and let it rise.\n")
    ld = open_localdocs(backend, embed_model_dir)
    ld.index(docs, progress=False)
    yield ld
    ld.close()


def test_the_dense_side_reads_the_first_context_window(indexed) -> None:
    words = " ".join(f"volcano{i}" for i in range(1500))  # several MiniLM windows
    tail = " bread dough yeast oven" * 2000
    vector = np.asarray(indexed.embed_query(words))
    assert np.allclose(vector, indexed.embed_query(words + tail), atol=1e-6)
    averaged = indexed.embedder.embed(words + tail, prefix=indexed.embedder.query_prefix or "",
                                      long_text_mode="mean")
    assert not np.allclose(vector, averaged, atol=1e-3)  # what searches used to embed
    assert len(indexed.search(words + tail, 1, mode="dense")) == 1


def test_the_keyword_side_scores_the_first_terms_only(indexed) -> None:
    def filler(n: int) -> str:
        return " ".join(f"zz{i}" for i in range(n))

    assert [r.title for r in indexed.search("volcano Etna", 1, mode="keyword")] == ["Volcanoes"]
    assert list(indexed.search(filler(MAX_KEYWORD_TERMS) + " volcano Etna", 1, mode="keyword")) == []
    found = indexed.search(filler(MAX_KEYWORD_TERMS - 2) + " volcano Etna", 1, mode="keyword")
    assert [r.title for r in found] == ["Volcanoes"]


def test_a_collection_of_stopwords_only_searches_empty(backend: Backend, tmp_path: Path,
                                                        embed_model_dir: Path) -> None:
    """Found by schemathesis: bm25s cannot index texts without a single term, and the search
    endpoint answered 500; now the keyword side is empty and dense search still works."""
    docs = tmp_path / "stop"
    docs.mkdir()
    (docs / "words.txt").write_text("The and of a to it is.\n")
    ld = open_localdocs(backend, embed_model_dir)
    try:
        ld.index(docs, progress=False)
        assert ld.search("the", 3, mode="keyword") == []
        assert len(ld.search("the", 3, mode="hybrid")) == 1
        assert len(ld.search("anything", 3, mode="dense")) == 1
    finally:
        ld.close()
