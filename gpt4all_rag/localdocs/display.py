"""HTML views of LocalDocs objects for Jupyter (the ``_repr_html_`` of search results, index
reports and collection listings). Every value is escaped; tables carry the class
``g4r-localdocs`` and a ``data-kind`` naming what they show, for styling and tests."""

from __future__ import annotations

import html
from typing import Any, Iterable, Protocol, Sequence

__all__ = ["collections_html", "index_report_html", "search_results_html"]

#: Characters of a chunk shown in a results table (the rest is elided).
EXCERPT_CHARS = 240
#: Paths listed per group of an index report before "... and N more".
REPORT_PATHS = 10


class _Result(Protocol):
    """What a results table reads of a :class:`~gpt4all_rag.localdocs.SearchResult` (this
    module imports neither it nor :class:`~gpt4all_rag.localdocs.IndexReport`: they import it)."""

    @property
    def text(self) -> str: ...

    @property
    def score(self) -> float: ...

    @property
    def heading(self) -> str | None: ...

    def citation(self) -> str: ...


class _Report(Protocol):
    """What a report table reads of an :class:`~gpt4all_rag.localdocs.IndexReport`."""

    indexed: list[str]
    unchanged: list[str]
    removed: list[str]
    skipped: list[tuple[str, str]]

    def summary(self) -> str: ...


def _table(kind: str, headers: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f'<table class="g4r-localdocs" data-kind="{kind}">{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1].rstrip() + "…"


def search_results_html(results: Sequence[_Result]) -> str:
    """A table of results: rank, citation (with the heading path), score and an excerpt."""
    if not results:
        return '<p class="g4r-localdocs" data-kind="search-results">no results</p>'
    rows = []
    for i, r in enumerate(results, start=1):
        where = html.escape(r.citation())
        if r.heading:
            where += f"<br><small>{html.escape(r.heading)}</small>"
        rows.append((str(i), where, f"{r.score:.4f}", html.escape(_excerpt(r.text))))
    return _table("search-results", ("#", "source", "score", "excerpt"), rows)


def index_report_html(report: _Report) -> str:
    """The summary line, then the indexed, removed and skipped paths (the first few of each)."""
    rows = []
    for label, items in (("indexed", report.indexed), ("removed", report.removed),
                         ("skipped", [f"{p}: {why}" for p, why in report.skipped])):
        if not items:
            continue
        shown = "<br>".join(html.escape(str(x)) for x in items[:REPORT_PATHS])
        if len(items) > REPORT_PATHS:
            shown += f"<br>… and {len(items) - REPORT_PATHS} more"
        rows.append((html.escape(label), str(len(items)), shown))
    rows.append(("unchanged", str(len(report.unchanged)), ""))
    return _table("index-report", ("", "files", "paths"), rows, caption=report.summary())


def collections_html(rows: Sequence[dict[str, Any]]) -> str:
    """A table of collections: name, documents, chunks, embedding model, chunking."""
    if not rows:
        return '<p class="g4r-localdocs" data-kind="collections">no collections</p>'
    cells = [(html.escape(str(r.get("name", ""))), str(r.get("documents", "")), str(r.get("chunks", "")),
              html.escape(str(r.get("embedding_model", "?"))),
              html.escape(f"{r.get('chunk_tokens', '?')} tokens, {r.get('overlap_tokens', '?')} overlap"))
             for r in rows]
    return _table("collections", ("collection", "documents", "chunks", "embedding model", "chunks of"),
                  cells)
