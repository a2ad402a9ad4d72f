"""LocalDocs as a Model Context Protocol server, so agents (Claude Desktop, Cursor, VS Code,
LangGraph through langchain-mcp-adapters) reach the collections: ``gpt4all-rag mcp`` over stdio,
and the same server at ``/mcp`` (streamable HTTP) in ``gpt4all-rag serve``, behind its API key.

Tools (built with the ``mcp`` SDK's FastMCP; JSON schemas from the signatures below):

* ``search``: hybrid, dense or keyword search of one or several collections (all by default),
  fused as ``chat_session(localdocs=[...])`` and the HTTP API fuse them
  (:func:`gpt4all_rag.localdocs.search_collections`). Each hit has its citation, path, title,
  heading path, page or line span, excerpt and score.
* ``list_collections``: name, documents, chunks, embedding model, when it last changed.
* ``read_document``: a span of an indexed document (lines, or a PDF page), at most
  :data:`MAX_LINES` lines and :data:`MAX_CHARS` characters, so an agent can read around a hit.
  Only paths of indexed documents are read: nothing else on disk is reachable through it.
* ``index_folder``: index a folder into a collection (incrementally); registered only when the
  server is started with ``--allow-index`` (it writes).

Every bad argument is a tool error with a message (the MCP ``isError`` result), never a crash.
Searches take a seat of the pool's LocalDocs admission, as the HTTP API's do.
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any, Literal

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, Field

from .. import errors
from .pool import SEARCH, ApiError, ModelPool

__all__ = ["MAX_CHARS", "MAX_LINES", "localdocs_mcp"]

#: The most lines and characters one ``read_document`` call returns.
MAX_LINES, MAX_CHARS = 200, 20_000


class Hit(BaseModel):
    """One search result."""

    rank: int
    citation: str = Field(description="path with page or lines, for the answer")
    path: str
    title: str | None
    heading: str | None = Field(description="the heading path above the excerpt")
    page: int | None
    start_line: int | None
    end_line: int | None
    excerpt: str
    score: float


class CollectionInfo(BaseModel):
    name: str
    documents: int
    chunks: int
    embedding_model: str | None
    updated_at: float | None = Field(description="Unix time of its last change (None: not recorded)")


class Span(BaseModel):
    """A span of an indexed document."""

    path: str
    title: str
    page: int | None = Field(description="the PDF page read, else None")
    start_line: int
    end_line: int
    total_lines: int = Field(description="lines of the document (of the page for a PDF)")
    text: str
    truncated: bool = Field(description="the span was cut at MAX_LINES lines or MAX_CHARS characters")


class IndexResult(BaseModel):
    collection: str
    indexed: list[str]
    unchanged: int
    removed: list[str]
    skipped: list[dict[str, str]]
    n_chunks: int


def _tool_error(exc: Exception) -> ToolError:
    message = exc.message if isinstance(exc, ApiError) else str(exc)
    return ToolError(message)


def localdocs_mcp(pool: ModelPool, *, allow_index: bool = False) -> FastMCP:
    """The MCP server of ``pool``'s LocalDocs collections (its streamable HTTP endpoint is
    ``/mcp``; Host checks are the HTTP server's own, :mod:`.guards`)."""
    server = FastMCP(
        "gpt4all-rag LocalDocs",
        instructions="Search the user's local documents (LocalDocs collections) and read them. "
                     "Cite results by their citation.",
        streamable_http_path="/mcp", stateless_http=True, log_level="WARNING",
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))

    async def run(fn: Any) -> Any:
        try:
            return await asyncio.to_thread(fn)
        except (errors.GPT4AllRagError, ValueError, OSError) as exc:
            raise _tool_error(exc) from None

    def names() -> list[str]:
        return [row["name"] for row in pool.collections()]

    @server.tool(description="Search local documents. Returns the best excerpts with their "
                             "citation (path, page or lines), heading and score, best first.")
    async def search(query: Annotated[str, Field(min_length=1, description="what to look for")],
                     collections: Annotated[list[str] | None, Field(
                         description="collection names (default: all)")] = None,
                     k: Annotated[int, Field(ge=1, le=50, description="results")] = 5,
                     mode: Literal["hybrid", "dense", "keyword"] = "hybrid") -> list[Hit]:
        from ..localdocs import search_collections

        def find() -> list[Hit]:
            chosen = list(dict.fromkeys(collections)) if collections else names()
            opened = [pool.localdocs(name) for name in chosen]
            if not opened:
                return []
            results = search_collections(opened, query, k, mode=mode)
            return [Hit(rank=i, citation=r.citation(),
                        path=r.path, title=r.title, heading=r.heading, page=r.page,
                        start_line=r.start_line, end_line=r.end_line, excerpt=r.text, score=r.score)
                    for i, r in enumerate(results, start=1)]

        async with pool.admit(SEARCH):
            return await run(find)

    @server.tool(description="List the LocalDocs collections with their documents, chunks, "
                             "embedding model and the time of their last change.")
    async def list_collections() -> list[CollectionInfo]:
        rows = await run(pool.collections)
        return [CollectionInfo(name=r["name"], documents=r.get("documents") or 0, chunks=r.get("chunks") or 0,
                               embedding_model=r.get("embedding_model"), updated_at=r.get("updated_at"))
                for r in rows]

    @server.tool(description=f"Read a span of an indexed document (a path from search results): "
                             f"lines start_line..end_line, or a PDF page; at most {MAX_LINES} lines.")
    async def read_document(
            path: Annotated[str, Field(min_length=1, description="the document's path, as search gives it")],
            start_line: Annotated[int, Field(ge=1)] = 1,
            end_line: Annotated[int | None, Field(ge=1, description="default: start_line + 199")] = None,
            page: Annotated[int | None, Field(ge=1, description="PDF page (lines count within it)")] = None,
            collection: Annotated[str | None, Field(description="where it is indexed (default: any)")] = None,
    ) -> Span:
        def read() -> Span:
            return _read_span(pool, path, start_line, end_line, page, [collection] if collection else names())

        return await run(read)

    if allow_index:
        @server.tool(description="Index the documents under a folder into a collection "
                                 "(created if new; incremental: unchanged files are skipped).")
        async def index_folder(path: Annotated[str, Field(min_length=1)],
                               collection: Annotated[str, Field(min_length=3, max_length=63)]) -> IndexResult:
            def index() -> IndexResult:
                from ..localdocs import LocalDocs

                config = pool.config
                with LocalDocs(collection, persist_directory=config.persist_directory,
                               chroma_url=config.chroma_url, model_path=config.model_directory,
                               n_threads=config.n_threads) as ld:
                    report = ld.index(path, progress=False)
                return IndexResult(collection=collection, indexed=report.indexed, unchanged=len(report.unchanged),
                                   removed=report.removed, n_chunks=report.n_chunks,
                                   skipped=[{"path": p, "reason": why} for p, why in report.skipped])

            return await run(index)

    return server


def _read_span(pool: ModelPool, path: str, start_line: int, end_line: int | None, page: int | None,
               collections: list[str]) -> Span:
    """The span of ``path`` if one of ``collections`` indexed it (else ToolError)."""
    from ..localdocs import loaders

    if not any(path in pool.localdocs(name).documents() for name in collections):
        raise ToolError(f"{path} is not an indexed document (read_document reads only paths that "
                        "search returns)")
    if not os.path.isfile(path):
        raise ToolError(f"{path} was indexed but is no longer on disk")
    doc = loaders.load(path)
    sections = [s for s in doc.sections if page is None or s.page == page]
    if page is not None and not sections:
        raise ToolError(f"{path} has no page {page}")
    lines = "\n".join(s.text for s in sections).splitlines() or [""]
    end = min(end_line or start_line + MAX_LINES - 1, start_line + MAX_LINES - 1, len(lines))
    if start_line > len(lines):
        raise ToolError(f"start_line {start_line} is past the end ({len(lines)} lines)")
    if end < start_line:
        raise ToolError(f"end_line {end_line} is before start_line {start_line}")
    text = "\n".join(lines[start_line - 1:end])
    wanted = min(end_line if end_line is not None else len(lines), len(lines))  # no end: the rest
    truncated = wanted > end or len(text) > MAX_CHARS
    return Span(path=path, title=doc.title, page=page, start_line=start_line, end_line=end,
                total_lines=len(lines), text=text[:MAX_CHARS], truncated=truncated)
