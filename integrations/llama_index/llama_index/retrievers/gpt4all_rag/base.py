"""``LocalDocsRetriever``: a LlamaIndex retriever over a gpt4all-rag LocalDocs collection.

Retrieval is LocalDocs' own (the same code the ``GPT4All`` chat sessions, the LangChain
retriever and the CLI use); this adapter only turns its results into ``NodeWithScore``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import TYPE_CHECKING, Any, Sequence

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from gpt4all_rag import errors

if TYPE_CHECKING:
    from gpt4all_rag.localdocs import LocalDocs
    from gpt4all_rag.localdocs.retrieval import SearchResult

__all__ = ["LLM_METADATA_KEYS", "LocalDocsRetriever", "node_from_result"]

#: Metadata keys the LLM sees with each chunk (the rest is for citations and tooling).
LLM_METADATA_KEYS = ("title", "file_path", "page")


def node_from_result(result: SearchResult) -> NodeWithScore:
    """A LocalDocs search result as a LlamaIndex node with its source metadata.

    The node's id is the chunk id; its metadata holds ``path`` (and ``file_path`` /
    ``file_name``, the names LlamaIndex's readers use), ``title``, ``page``, ``start_line``,
    ``end_line``, ``heading``, ``chunk_id`` and ``citation`` (``"path, lines 10-24"``);
    values LocalDocs does not know are None. Only ``title``, ``file_path`` and ``page`` are
    shown to the LLM with the text.
    """
    metadata: dict[str, Any] = {
        "path": result.path,
        "file_path": result.path,
        "file_name": os.path.basename(result.path),
        "title": result.title,
        "page": result.page,
        "start_line": result.start_line,
        "end_line": result.end_line,
        "heading": result.heading,
        "chunk_id": result.chunk_id,
        "citation": result.citation(),
    }
    node = TextNode(
        id_=result.chunk_id, text=result.text, metadata=metadata,
        excluded_llm_metadata_keys=[k for k in metadata if k not in LLM_METADATA_KEYS],
        excluded_embed_metadata_keys=list(metadata))
    return NodeWithScore(node=node, score=result.score)


class LocalDocsRetriever(BaseRetriever):
    """Retrieve chunks of LocalDocs collections as ``NodeWithScore`` with source metadata.

    Either pass open :class:`gpt4all_rag.localdocs.LocalDocs` objects (the caller keeps
    ownership) or the arguments to open them, which happens on the first query. Scores are
    LocalDocs' (higher is better; see :class:`gpt4all_rag.localdocs.SearchResult`), results
    best first. Several collections are searched together by
    :func:`gpt4all_rag.localdocs.search_collections` (their rankings fused by reciprocal rank
    fusion, as the server and ``chat_session`` do; scores are then the fused ones).

    Example:
        >>> from llama_index.retrievers.gpt4all_rag import LocalDocsRetriever
        >>> retriever = LocalDocsRetriever(collection="notes", similarity_top_k=3)
        >>> for hit in retriever.retrieve("how do I rotate the logs?"):  # doctest: +SKIP
        ...     print(hit.score, hit.node.metadata["citation"])

    Thread safety: as LocalDocs; opening is guarded so concurrent first queries open one.
    """

    def __init__(self, localdocs: LocalDocs | Sequence[LocalDocs] | None = None, *,
                 collection: str | Sequence[str] = "default",
                 persist_directory: str | os.PathLike[str] | None = None,
                 chroma_url: str | None = None, embedding_model: str | None = None,
                 model_path: str | os.PathLike[str] | None = None,
                 document_prefix: str | None = None, query_prefix: str | None = None,
                 n_threads: int | None = None, similarity_top_k: int = 4,
                 search_kwargs: dict[str, Any] | None = None,
                 callback_manager: CallbackManager | None = None, verbose: bool = False) -> None:
        """Configure the retriever.

        Args:
            localdocs: an open LocalDocs, or several; when given, the collection arguments
                are ignored.
            collection: the collection's name, or several names.
            persist_directory: the embedded Chroma store's folder; None: LocalDocs' default.
            chroma_url: a Chroma server (``http://host:port``) instead of the embedded store.
            embedding_model: the embedding model; None: the one the collection was built with
                (LocalDocs' rule).
            model_path: folder of the embedding model; None: GPT4All's default.
            document_prefix, query_prefix: task prefixes for embedding models the prefix
                rules do not know (LocalDocs' own arguments).
            n_threads: CPU threads for embedding queries; None: automatic.
            similarity_top_k: how many chunks to return (>= 1).
            search_kwargs: further keyword arguments of ``LocalDocs.search`` (e.g. ``mode``).
            callback_manager, verbose: as LlamaIndex's ``BaseRetriever``.

        Raises:
            InvalidParameterError: (a ValueError) ``similarity_top_k`` < 1.
        """
        if isinstance(similarity_top_k, bool) or not isinstance(similarity_top_k, int) \
                or similarity_top_k < 1:
            raise errors.InvalidParameterError(
                f"similarity_top_k must be an integer >= 1, got {similarity_top_k!r}")
        super().__init__(callback_manager=callback_manager, verbose=verbose)
        self.similarity_top_k = similarity_top_k
        self.search_kwargs = dict(search_kwargs or {})
        self._localdocs: list[LocalDocs] | None = None
        if localdocs is not None:
            self._localdocs = list(localdocs) if isinstance(localdocs, (list, tuple)) else [localdocs]
        self._owns_localdocs = localdocs is None
        self._names = [collection] if isinstance(collection, str) else list(dict.fromkeys(collection))
        self._open_kwargs: dict[str, Any] = {
            "persist_directory": persist_directory,
            "chroma_url": chroma_url, "embedding_model": embedding_model,
            "model_path": model_path, "document_prefix": document_prefix,
            "query_prefix": query_prefix, "n_threads": n_threads}
        self._lock = threading.Lock()

    @property
    def collections(self) -> list[LocalDocs]:
        """The LocalDocs collections searched, opened on first access.

        Raises:
            InvalidParameterError: a bad collection name.
            StoreError: Chroma cannot be opened.
        """
        if self._localdocs is None:
            with self._lock:
                if self._localdocs is None:
                    from gpt4all_rag.localdocs import LocalDocs

                    self._localdocs = [LocalDocs(name, **self._open_kwargs) for name in self._names]
        return self._localdocs

    @property
    def localdocs(self) -> LocalDocs:
        """The first (usually the only) collection of :attr:`collections`."""
        return self.collections[0]

    def close(self) -> None:
        """Free the embedding models of the LocalDocs this retriever opened (not of those
        passed in). The retriever stays usable: the models reload on the next query."""
        if self._owns_localdocs and self._localdocs is not None:
            for ld in self._localdocs:
                ld.close()

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """LocalDocs' search, as nodes best first.

        Raises:
            CollectionNotFoundError: (a LookupError) nothing was indexed into the collection.
            CollectionMismatchError: (a ValueError) it was built with another embedding model.
            InvalidParameterError: an empty query or a bad ``search_kwargs`` value.
        """
        from gpt4all_rag.localdocs import search_collections

        results = search_collections(self.collections, query_bundle.query_str,
                                     self.similarity_top_k, **self.search_kwargs)
        return [node_from_result(r) for r in results]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)
