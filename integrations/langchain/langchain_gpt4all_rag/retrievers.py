"""``LocalDocsRetriever``: a LangChain retriever over a gpt4all-rag LocalDocs collection."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, PrivateAttr

from ._common import run_blocking

if TYPE_CHECKING:
    from gpt4all_rag.localdocs import LocalDocs, SearchResult

__all__ = ["LocalDocsRetriever"]


class LocalDocsRetriever(BaseRetriever):
    """Retrieve chunks of LocalDocs collections (dense + BM25 hybrid search by default).

    This is the same retrieval code that GPT4All chat sessions and the CLI use. Give either
    :class:`gpt4all_rag.localdocs.LocalDocs` instances (``localdocs=``) or the collections'
    names and options, from which they are opened on first use. Several collections are
    searched together by :func:`gpt4all_rag.localdocs.search_collections` (their rankings fused
    by reciprocal rank fusion, as the server and ``chat_session`` do).

    Example:
        .. code-block:: python

            from gpt4all_rag.localdocs import LocalDocs
            from langchain_gpt4all_rag import LocalDocsRetriever

            docs = LocalDocs("handbook")
            docs.index("~/handbook")
            retriever = LocalDocsRetriever(localdocs=docs, k=3)
            retriever.invoke("How do I request leave?")

    Fields:
        localdocs: an open LocalDocs collection, or a list of them (takes precedence over the
            options below).
        collection: collection name (default ``"default"``), or a list of names.
        persist_directory: folder of the embedded Chroma database (None: LocalDocs' default).
        chroma_url: ``http://host:port`` of a Chroma server instead of the embedded database.
        embedding_model, model_path, document_prefix, query_prefix, n_threads: as for
            ``LocalDocs`` (None: what the collection was built with, or the defaults).
        k: number of documents returned (>= 1, default 4); ``invoke(query, k=2)`` overrides.
        mode: ``"hybrid"`` (default), ``"dense"`` or ``"keyword"``; per call too.
        filter: a metadata filter such as ``{"extension": ".md"}`` (see
            :mod:`gpt4all_rag.localdocs.filters`); per call too. None: every chunk.

    Each :class:`~langchain_core.documents.Document` has ``page_content`` = the chunk's text
    and ``metadata``: ``source`` (file path), ``title``, ``page`` (1-based PDF page or None),
    ``start_line``/``end_line`` (1-based, inclusive, or None), ``heading``, ``chunk_id``,
    ``score`` (higher is better; with several collections, the fused rank score),
    ``citation`` (``"path, lines 3-9"``). Its ``id`` is the chunk id.

    Raises (on calls):
        gpt4all_rag.errors.CollectionNotFoundError: nothing was indexed into the collection.
        gpt4all_rag.errors.CollectionMismatchError: built with another embedding model.
        gpt4all_rag.errors.InvalidParameterError: empty query, k < 1, unknown mode, a
            malformed filter.

    Thread safety: searches may run concurrently (LocalDocs allows it).
    """

    model_config = ConfigDict(protected_namespaces=(), arbitrary_types_allowed=True,
                              extra="forbid")

    localdocs: Any | None = Field(default=None, exclude=True)
    collection: str | list[str] = "default"
    persist_directory: str | None = None
    chroma_url: str | None = None
    embedding_model: str | None = None
    model_path: str | None = None
    document_prefix: str | None = None
    query_prefix: str | None = None
    n_threads: int | None = Field(default=None, gt=0)
    k: int = Field(default=4, ge=1)
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"
    filter: dict[str, Any] | None = None

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _docs(self) -> list[LocalDocs]:
        with self._lock:
            if self.localdocs is None:
                from gpt4all_rag.localdocs import LocalDocs

                names = [self.collection] if isinstance(self.collection, str) else self.collection
                opened = [LocalDocs(
                    name, persist_directory=self.persist_directory,
                    chroma_url=self.chroma_url, embedding_model=self.embedding_model,
                    model_path=self.model_path, document_prefix=self.document_prefix,
                    query_prefix=self.query_prefix, n_threads=self.n_threads)
                    for name in dict.fromkeys(names)]
                self.localdocs = opened[0] if len(opened) == 1 else opened
            return list(self.localdocs) if isinstance(self.localdocs, (list, tuple)) else [self.localdocs]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[Document]:
        k = kwargs.pop("k", self.k)
        mode = kwargs.pop("mode", self.mode)
        where = kwargs.pop("filter", self.filter)
        if kwargs:
            raise ValueError(f"unsupported keyword argument(s): {sorted(kwargs)}; "
                             "accepted: k, mode, filter")
        from gpt4all_rag.localdocs import search_collections

        return [to_document(r) for r in search_collections(self._docs(), query, k, mode=mode,
                                                           filter=where)]

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun,
                                       **kwargs: Any) -> list[Document]:
        return await run_blocking(
            lambda: self._get_relevant_documents(query, run_manager=run_manager.get_sync(),
                                                 **kwargs))


def to_document(result: SearchResult) -> Document:
    """A LangChain document from a LocalDocs search result (see :class:`LocalDocsRetriever`).

    A text added with ``add_texts`` carries its own metadata, plus ``chunk_id`` and ``score``.
    """
    if result.origin == "text":
        return Document(id=result.chunk_id, page_content=result.text,
                        metadata={**result.metadata, "chunk_id": result.chunk_id,
                                  "score": result.score})
    return Document(
        id=result.chunk_id,
        page_content=result.text,
        metadata={"source": result.path, "title": result.title, "page": result.page,
                  "start_line": result.start_line, "end_line": result.end_line,
                  "heading": result.heading, "chunk_id": result.chunk_id,
                  "score": result.score, "citation": result.citation()})
