"""Hybrid retrieval (dense + BM25 scores fused) is at least as good as either mode alone on a
small labelled set: fifteen short documents (ten topics and five near neighbours) and twelve
questions with a known answer file. Some questions are paraphrases (dense should win), some
hinge on an exact code such as ``E-4471`` (keywords should win). A sanity check, not a
benchmark.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gpt4all_rag.localdocs import LocalDocs
from gpt4all_rag.localdocs.retrieval import Mode

from . import corpus
from .support import Backend, open_localdocs

TOP = 3


@pytest.fixture(scope="module")
def labelled(module_backend: Backend, tmp_path_factory: pytest.TempPathFactory,
             embed_model_dir: Path) -> Iterator[tuple[LocalDocs, dict[str, Path]]]:
    paths = corpus.write_labelled(tmp_path_factory.mktemp("labelled"))
    with open_localdocs(module_backend, embed_model_dir) as ld:
        report = ld.index(next(iter(paths.values())).parent, progress=False)
        assert len(report.indexed) == len(corpus.LABELLED_DOCS)
        yield ld, paths


def hits(ld: LocalDocs, paths: dict[str, Path], mode: Mode) -> list[str]:
    """The questions whose answer file is among the top results."""
    found = []
    for question, answer in corpus.LABELLED_QUESTIONS:
        results = ld.search(question, k=TOP, mode=mode)
        if str(paths[answer]) in {r.path for r in results}:
            found.append(question)
    return found


def test_hybrid_finds_at_least_as_many_answers_as_each_mode(
        labelled: tuple[LocalDocs, dict[str, Path]]) -> None:
    ld, paths = labelled
    hybrid, dense, keyword = (hits(ld, paths, "hybrid"), hits(ld, paths, "dense"),
                              hits(ld, paths, "keyword"))
    summary = f"top-{TOP} hits: hybrid {len(hybrid)}, dense {len(dense)}, keyword {len(keyword)}"
    assert len(hybrid) >= len(dense), summary
    assert len(hybrid) >= len(keyword), summary
    assert len(hybrid) >= len(corpus.LABELLED_QUESTIONS) - 1, summary
    # an exact code is found by keywords, and fusion keeps it
    assert "What does E-4471 mean?" in hybrid and "What does E-4471 mean?" in keyword, summary


def test_fused_ranks_come_from_both_rankings(labelled: tuple[LocalDocs, dict[str, Path]]) -> None:
    ld, paths = labelled
    question, answer = corpus.LABELLED_QUESTIONS[4]  # "form VR-12": both rankings agree
    best = ld.search(question, k=TOP)[0]
    assert best.path == str(paths[answer])
    assert set(best.ranks) == {"dense", "keyword"}
    dense = ld.search(question, k=TOP, mode="dense")
    keyword = ld.search(question, k=TOP, mode="keyword")
    assert best.ranks["dense"] == 1 + [r.chunk_id for r in dense].index(best.chunk_id)
    assert best.ranks["keyword"] == 1 + [r.chunk_id for r in keyword].index(best.chunk_id)
