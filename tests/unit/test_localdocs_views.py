"""LocalDocs without a model: metadata filters, the progress rule, HTML views, JSON shapes and
the Chroma embedding function's configuration checks."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from gpt4all_rag import _progress
from gpt4all_rag.errors import InvalidParameterError
from gpt4all_rag.localdocs import Collections, IndexReport, SearchResult, SearchResults
from gpt4all_rag.localdocs.filters import to_where
from gpt4all_rag.localdocs.records import text_metadata
from gpt4all_rag.localdocs.store import LocalDocsEmbeddingFunction

MINILM = "all-MiniLM-L6-v2.gguf2.f16.gguf"


def _result(**over: Any) -> SearchResult:
    base = dict(text="Descale the <kettle> every Friday.", score=0.5, path="/docs/a & b.md",
                title="Kitchen", page=None, start_line=3, end_line=9, heading="Kitchen > Kettle",
                chunk_id="0123456789abcdef01234567:00000", ranks={"dense": 1})
    return SearchResult(**{**base, **over})


# -- filters ---------------------------------------------------------------------------------
@pytest.mark.parametrize("flt, where", [
    (None, None),
    ({}, None),
    ({"extension": "MD"}, {"extension": ".md"}),
    ({"extension": [".md", "RST"]}, {"extension": {"$in": [".md", ".rst"]}}),
    ({"title": "Kitchen", "page": {"$gte": 2}},
     {"$and": [{"title": "Kitchen"}, {"page": {"$gte": 2}}]}),
    ({"$or": [{"heading": "A"}, {"path": "/x/y.txt"}]},
     {"$or": [{"heading": "A"}, {"path": "/x/y.txt"}]}),
    ({"$and": [{"team": "it"}]}, {"team": "it"}),
])
def test_filters_become_chroma_where_clauses(flt: Any, where: Any) -> None:
    assert to_where(flt) == where


@pytest.mark.parametrize("flt", [
    "extension=.md", {"": 1}, {"$not": {"a": 1}}, {"page": {"$like": 3}}, {"title": None},
    {"title": {"x": 1}}, {"$or": []}, {"$or": "a"}, {"page": {"$in": []}}, {"extension": [[1]]},
])
def test_malformed_filters_are_refused(flt: Any) -> None:
    with pytest.raises(InvalidParameterError):
        to_where(flt)


def test_added_text_metadata_is_split_into_fields_filters_and_an_exact_copy() -> None:
    fields, extra = text_metadata({"source": "memo.pdf", "page": 2, "heading": "Intro", "n": 3,
                                   "tags": ["a"], "doc_id": "mine", "title": 7})
    assert fields == {"path": "memo.pdf", "page": 2, "heading": "Intro"}
    assert extra["source"] == "memo.pdf" and extra["n"] == 3
    assert "tags" not in extra and "doc_id" not in extra and "title" not in extra
    assert extra["g4r_metadata"] == ('{"source": "memo.pdf", "page": 2, "heading": "Intro", "n": 3, '
                                     '"tags": ["a"], "doc_id": "mine", "title": 7}')
    for bad in ({1: "x"}, {"x": float("nan")}, {"x": object()}, ["x"]):
        with pytest.raises(InvalidParameterError):
            text_metadata(bad)  # type: ignore[arg-type]


# -- progress rule ---------------------------------------------------------------------------
def test_progress_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _progress.show_progress(True) is True
    assert _progress.show_progress(False) is False
    monkeypatch.setattr(_progress, "_stderr_is_a_terminal", lambda: False)
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert _progress.show_progress(None) is False  # a pipe, no kernel
    monkeypatch.setattr(_progress, "_stderr_is_a_terminal", lambda: True)
    assert _progress.show_progress(None) is True  # a terminal
    with pytest.raises(InvalidParameterError, match="progress"):
        _progress.show_progress("yes")  # type: ignore[arg-type]


def test_a_disabled_bar_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with _progress.progress_bar(enabled=False, total=3, desc="files") as bar:
        bar.update(3)
    with _progress.progress_bar(enabled=True, total=3, desc="files") as bar:
        bar.update(3)
    err = capsys.readouterr().err
    assert err.count("files") >= 1 and "3/3" in err


# -- HTML views and JSON shapes --------------------------------------------------------------
def test_search_results_are_a_list_shown_as_an_escaped_table() -> None:
    results = SearchResults([_result(), _result(score=0.25, heading=None, start_line=None,
                                                end_line=None, page=4)])
    assert results == [_result(), _result(score=0.25, heading=None, start_line=None,
                                          end_line=None, page=4)]
    page = results._repr_html_()
    assert page.startswith('<table class="g4r-localdocs" data-kind="search-results">')
    assert page.count("<tr>") == 3  # header + 2 rows
    assert "/docs/a &amp; b.md, lines 3-9" in page and "Kitchen &gt; Kettle" in page
    assert "&lt;kettle&gt;" in page and "<kettle>" not in page
    assert "/docs/a &amp; b.md, page 4" in page and "0.2500" in page
    assert SearchResults()._repr_html_().endswith(">no results</p>")
    assert "lines 3-9" in _result()._repr_html_()


def test_search_result_as_dict_has_the_documented_keys() -> None:
    d = SearchResults([_result()]).as_dicts()[0]
    assert list(d) == ["rank", "text", "score", "path", "title", "page", "start_line", "end_line",
                       "heading", "chunk_id", "citation", "ranks", "origin", "metadata"]
    assert d["rank"] == 1 and d["citation"] == "/docs/a & b.md, lines 3-9" and d["origin"] == "file"


def test_index_report_html_and_dict() -> None:
    report = IndexReport(indexed=[f"/d/{i}.md" for i in range(12)], unchanged=["/d/u.md"],
                         skipped=[("/d/x.bin", "binary file")], n_chunks=30)
    page = report._repr_html_()
    assert "<caption>12 indexed (30 chunks), 1 unchanged, 0 removed, 1 skipped</caption>" in page
    assert "… and 2 more" in page and "/d/x.bin: binary file" in page
    assert report.as_dict() == {"indexed": report.indexed, "unchanged": ["/d/u.md"], "removed": [],
                                "skipped": [{"path": "/d/x.bin", "reason": "binary file"}],
                                "n_chunks": 30, "timings": {}}
    report.timings = {"scan": 0.01, "read": 1.25, "chunk": 2.0, "embed": 10.0, "store": 0.5,
                      "total": 12.34}
    assert report.timing_summary() == ("12.3 s: scan 0.0 s, read 1.2 s, chunk 2.0 s, embed 10.0 s, "
                                       "store 0.5 s")


def test_collections_html() -> None:
    rows = Collections([{"name": "notes<1>", "documents": 3, "chunks": 41,
                         "embedding_model": MINILM, "chunk_tokens": 128, "overlap_tokens": 16}])
    page = rows._repr_html_()
    assert 'data-kind="collections"' in page and "notes&lt;1&gt;" in page
    assert "128 tokens, 16 overlap" in page and ">41<" in page
    assert Collections()._repr_html_().endswith(">no collections</p>")


# -- the Chroma embedding function's configuration -------------------------------------------
def test_embedding_function_config_names_the_model_only() -> None:
    ef = LocalDocsEmbeddingFunction(MINILM, "/home/me/models", query_prefix="search_query")
    config = ef.get_config()
    assert config == {"model_name": MINILM, "document_prefix": None, "query_prefix": "search_query"}
    again = LocalDocsEmbeddingFunction.build_from_config(config)
    assert again.get_config() == config and again.model_path is None
    # A config of an older version named a folder: it is used only where it exists.
    old = LocalDocsEmbeddingFunction.build_from_config({**config, "model_path": "/nonexistent/x"})
    assert old.model_path is None
    assert not ef.is_legacy()


@pytest.mark.parametrize("config", [
    {"model_name": "/abs/model.gguf"}, {"model_name": "dir/model.gguf"}, {"model_name": ""},
    {"model_name": 3}, {}, {"model_name": MINILM, "query_prefix": 1},
    {"model_name": MINILM, "device": "gpu"}, [MINILM],
])
def test_validate_config_refuses_bad_configs(config: Any) -> None:
    with pytest.raises(InvalidParameterError):
        LocalDocsEmbeddingFunction.validate_config(config)
    assert issubclass(InvalidParameterError, ValueError)  # what Chroma expects


def test_validate_config_update_refuses_another_model_or_prefix() -> None:
    ef = LocalDocsEmbeddingFunction(MINILM)
    ef.validate_config_update(ef.get_config(), LocalDocsEmbeddingFunction(MINILM).get_config())
    for new in ({"model_name": "other.gguf"},
                {"model_name": MINILM, "query_prefix": "search_query"}):
        with pytest.raises(InvalidParameterError, match="re-index"):
            ef.validate_config_update(ef.get_config(), {**ef.get_config(), **new})
