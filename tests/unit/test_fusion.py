"""Fusion of dense and keyword rankings: the convex combination of min-max scaled scores
(the hybrid default) and reciprocal rank fusion, and hybrid_search's checks of its options."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gpt4all_rag.errors import InvalidParameterError
from gpt4all_rag.localdocs.retrieval import (convex_score_fusion, hybrid_search,
                                             keyword_query, reciprocal_rank_fusion)


def test_convex_fusion_scales_each_ranking_and_weights_them() -> None:
    fused = convex_score_fusion(
        {"dense": [("a", 0.9), ("b", 0.7), ("c", 0.5)], "keyword": [("c", 12.0), ("d", 2.0)]},
        {"dense": 0.5, "keyword": 0.5})
    scores = {cid: s for cid, s, _ in fused}
    assert scores == pytest.approx({"a": 0.5, "b": 0.25, "c": 0.5, "d": 0.0})
    # equal scores: the best single rank first (a is dense #1, c is keyword #1), then the id
    assert [cid for cid, _, _ in fused] == ["a", "c", "b", "d"]
    assert dict((cid, r) for cid, _, r in fused)["c"] == {"dense": 3, "keyword": 1}


def test_convex_fusion_with_one_ranking_empty_keeps_its_order() -> None:
    fused = convex_score_fusion({"dense": [("x", 0.3), ("y", 0.3), ("z", 0.1)], "keyword": []},
                                {"dense": 0.5, "keyword": 0.5})
    assert [cid for cid, _, _ in fused] == ["x", "y", "z"]
    assert [s for _, s, _ in fused] == pytest.approx([0.5, 0.5, 0.0])


def test_convex_fusion_of_equal_scores_gives_full_weight() -> None:
    fused = convex_score_fusion({"keyword": [("p", 4.0), ("q", 4.0)]}, {"keyword": 0.5})
    assert [s for _, s, _ in fused] == pytest.approx([0.5, 0.5])


def test_rrf_is_unchanged() -> None:
    fused = reciprocal_rank_fusion({"dense": ["a", "b"], "keyword": ["b"]})
    assert [(cid, round(s, 6)) for cid, s, _ in fused] == [
        ("b", round(1 / 62 + 1 / 61, 6)), ("a", round(1 / 61, 6))]


@pytest.mark.parametrize("kwargs", [{"fusion": "sum"}, {"dense_weight": 1.5},
                                    {"dense_weight": -0.1}, {"dense_weight": True}])
def test_hybrid_search_rejects_bad_fusion_options(kwargs: dict) -> None:
    with pytest.raises(InvalidParameterError):
        hybrid_search(None, None, lambda q: [0.0], "query", 4, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("query", "expected"), [
    ("What is msgstr?", "msgstr"),
    ("How do I delete files?", "delete files"),
    ("Why does sed fail?", "sed fail"),
    ("Is there a way to count lines?", "count lines"),
    ("list directory contents", "list directory contents"),
    ("whatis database", "whatis database"),
    ("What?", "What?"),
])
def test_keyword_query_strips_question_openers(query: str, expected: str) -> None:
    assert keyword_query(query) == expected


class _Collection:
    """A collection's ranking for one query (what LocalDocs.search returns), as test data."""

    def __init__(self, name: str, scores: list[float]) -> None:
        from gpt4all_rag.localdocs import SearchResult

        self.results = [SearchResult(text=f"{name} {i}", score=s, path=f"/{name}/{i}.md", title=name,
                                     page=None, start_line=1, end_line=2, heading=None,
                                     chunk_id=f"{name}:{i:05d}", ranks={"dense": i + 1})
                        for i, s in enumerate(scores)]
        self.asked: list[tuple[Any, ...]] = []

    def search(self, query: str, k: int, *, mode: str = "hybrid", candidates: int | None = None,
               filter: Any = None) -> list:  # noqa: A002
        self.asked.append((query, k, mode, candidates, filter))
        return self.results[:k]


def test_several_collections_are_fused_by_rank_not_by_their_scores() -> None:
    """Was: results of several collections sorted by score, though hybrid scores are min-max
    scaled per collection (each collection's best is 1.0): a weak collection's best beat a
    strong collection's second best regardless of rank."""
    from gpt4all_rag.localdocs import search_collections

    strong = _Collection("strong", [1.0, 0.99, 0.98, 0.97])
    weak = _Collection("weak", [1.0, 0.2])
    fused = search_collections([strong, weak], "q", 3, mode="dense", filter={"extension": ".md"})
    assert [r.text for r in fused] == ["strong 0", "weak 0", "strong 1"]
    assert fused[0].score == pytest.approx(1 / 61) and fused[2].score == pytest.approx(1 / 62)
    assert strong.asked == weak.asked == [("q", 3, "dense", None, {"extension": ".md"})]


def test_one_collection_keeps_its_results_and_scores() -> None:
    from gpt4all_rag.localdocs import search_collections

    only = _Collection("only", [0.9, 0.4])
    assert search_collections([only], "q", 5) == only.results
    with pytest.raises(InvalidParameterError):
        search_collections([], "q", 3)


def _hybrid_sentences(text: str) -> list[str]:
    """The sentences of ``text`` that say how hybrid search fuses its two rankings."""
    sentences = re.split(r"(?<=[.;])\s", " ".join(text.split()))
    return [s for s in sentences if re.search(r"hybrid", s, re.I) and re.search(r"fus", s, re.I)]


def test_the_docs_say_the_fusion_the_code_uses() -> None:
    """Every place that tells a user how hybrid search fuses names the default (the notebook
    and the server schema once said reciprocal rank fusion after the default changed)."""
    from gpt4all_rag.localdocs import LocalDocs
    from gpt4all_rag.server.schemas import LocalDocsOptions

    default = inspect.signature(hybrid_search).parameters["fusion"].default
    assert default == "convex"
    root = Path(__file__).resolve().parents[2]
    notebook = json.loads((root / "examples" / "localdocs.ipynb").read_text())
    docs = {
        "README.md": (root / "README.md").read_text(),
        "examples/localdocs.ipynb": "\n".join("".join(c["source"]) for c in notebook["cells"]
                                              if c["cell_type"] == "markdown"),
        "LocalDocsOptions": LocalDocsOptions.__doc__ or "",
        "LocalDocs.search": LocalDocs.search.__doc__ or "",
    }
    for where, text in docs.items():
        sentences = _hybrid_sentences(text)
        assert sentences, f"{where} no longer says how hybrid search fuses"
        for sentence in sentences:
            assert "convex" in sentence, (where, sentence)
