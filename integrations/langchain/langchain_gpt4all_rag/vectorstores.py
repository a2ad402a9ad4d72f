"""``LocalDocsVectorStore``: a LangChain vector store over a gpt4all-rag LocalDocs collection."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from gpt4all_rag.embed4all import DEFAULT_MODEL_NAME
from gpt4all_rag.errors import CollectionNotFoundError, InvalidParameterError

from .embeddings import GPT4AllEmbeddings

if TYPE_CHECKING:
    from gpt4all_rag.localdocs import LocalDocs, SearchResult

__all__ = ["LocalDocsVectorStore"]

Mode = Literal["hybrid", "dense", "keyword"]


class LocalDocsVectorStore(VectorStore):
    """A LocalDocs collection as a LangChain ``VectorStore``.

    Searches are LocalDocs' own (hybrid dense + BM25 by default, the same code GPT4All chat
    sessions, the retrievers and the CLI use), and writes go through LocalDocs' bookkeeping:
    :meth:`add_texts` / :meth:`add_documents` store each text as a document of the
    collection with its own record (one chunk, the given id, the metadata given back exactly),
    and :meth:`delete` removes whole documents and their records; both bump the collection's
    revision, so the BM25 index and incremental indexing stay right. Files indexed with
    ``LocalDocs.index()`` / ``gpt4all-rag index`` are searched alongside.

    Example:
        .. code-block:: python

            from gpt4all_rag.localdocs import LocalDocs
            from langchain_gpt4all_rag import LocalDocsVectorStore

            docs = LocalDocs("handbook")
            docs.index("~/handbook")
            store = LocalDocsVectorStore(localdocs=docs)
            store.add_texts(["The office closes at 6 pm."], metadatas=[{"source": "memo"}])
            store.similarity_search("When does the office close?", k=3,
                                    filter={"extension": [".md", ".txt"]})
            retriever = store.as_retriever(search_type="mmr", search_kwargs={"k": 3})

    Args:
        localdocs: an open :class:`gpt4all_rag.localdocs.LocalDocs` (the caller keeps
            ownership); takes precedence over the options below.
        collection: collection name (default ``"default"``); created on the first write.
        persist_directory: folder of the embedded Chroma database (None: LocalDocs' default).
        chroma_url: ``http://host:port`` of a Chroma server instead of the embedded database.
        embedding_model, model_path, document_prefix, query_prefix, n_threads: as for
            ``LocalDocs`` (None: what the collection was built with, or the defaults).
        embedding: a :class:`GPT4AllEmbeddings` whose model (``model``, ``model_path``, the
            prefixes, ``n_threads``) LocalDocs should embed with, where the options above do
            not say. LocalDocs computes the vectors itself, so other embeddings are refused.
        mode: default search mode, ``"hybrid"``, ``"dense"`` or ``"keyword"``.

    Raises:
        gpt4all_rag.errors.InvalidParameterError: (a ValueError) ``embedding`` is not a
            GPT4AllEmbeddings, or an unknown mode.

    Documents: ``page_content`` is the chunk's text and ``id`` its id. A text added here
    carries exactly the metadata it was added with; a chunk of an indexed file carries
    ``source`` (the file's path), ``title``, ``page``, ``start_line``, ``end_line``,
    ``heading``, ``chunk_id`` and ``citation`` (``"path, lines 3-9"``).

    Filters (``filter=`` on every search; see :mod:`gpt4all_rag.localdocs.filters`): a dict of
    conditions on ``path``, ``extension`` (``".md"``), ``title``, ``heading``, ``page`` or an
    added text's metadata keys; a list value matches any of its values, Chroma's ``$``
    operators and ``$and`` / ``$or`` work as in Chroma.

    Scores: :meth:`similarity_search_with_score` gives LocalDocs' score, higher is better (the
    fused score in [0, 1] in hybrid mode, cosine similarity in dense mode, BM25 in keyword mode);
    ``similarity_search_with_relevance_scores`` ranks by cosine similarity, clipped to [0, 1].

    A collection that does not exist yet reads as empty. Thread safety: as LocalDocs
    (searches concurrently, writes one at a time); the async methods run in worker threads.
    """

    def __init__(self, localdocs: LocalDocs | None = None, *, collection: str = "default",
                 persist_directory: str | None = None, chroma_url: str | None = None,
                 embedding_model: str | None = None, model_path: str | None = None,
                 document_prefix: str | None = None, query_prefix: str | None = None,
                 n_threads: int | None = None, embedding: Embeddings | None = None,
                 mode: Mode = "hybrid") -> None:
        if embedding is not None and not isinstance(embedding, GPT4AllEmbeddings):
            raise InvalidParameterError(
                f"LocalDocsVectorStore embeds with LocalDocs' own GGUF model; pass a "
                f"GPT4AllEmbeddings (or None), not {type(embedding).__name__}")
        if mode not in ("hybrid", "dense", "keyword"):
            raise InvalidParameterError(f"mode must be 'hybrid', 'dense' or 'keyword', got {mode!r}")
        if embedding is not None:
            embedding_model = embedding_model or embedding.model
            model_path = model_path or embedding.model_path
            document_prefix = embedding.document_prefix if document_prefix is None else document_prefix
            query_prefix = embedding.query_prefix if query_prefix is None else query_prefix
            n_threads = n_threads or embedding.n_threads
        self._localdocs = localdocs
        self._options: dict[str, Any] = {
            "collection": collection, "persist_directory": persist_directory,
            "chroma_url": chroma_url, "embedding_model": embedding_model,
            "model_path": model_path, "document_prefix": document_prefix,
            "query_prefix": query_prefix, "n_threads": n_threads}
        self._embedding = embedding
        self.mode: Mode = mode
        self._lock = threading.Lock()

    # -- the collection -----------------------------------------------------------------------
    @property
    def localdocs(self) -> LocalDocs:
        """The LocalDocs collection (opened on first use from the options)."""
        with self._lock:
            if self._localdocs is None:
                from gpt4all_rag.localdocs import LocalDocs

                self._localdocs = LocalDocs(**self._options)
            return self._localdocs

    @property
    def embeddings(self) -> Embeddings:
        """A :class:`GPT4AllEmbeddings` on the collection's embedding model (its weights load
        only if it is used)."""
        with self._lock:
            if self._embedding is None:
                ld = self._localdocs
                if ld is None:
                    opts = self._options
                    self._embedding = GPT4AllEmbeddings(
                        model=opts["embedding_model"] or DEFAULT_MODEL_NAME, model_path=opts["model_path"],
                        document_prefix=opts["document_prefix"], query_prefix=opts["query_prefix"],
                        n_threads=opts["n_threads"], allow_download=False)
                else:
                    self._embedding = GPT4AllEmbeddings(
                        model=ld.embedding_model, model_path=str(ld.model_path),
                        document_prefix=ld.document_prefix, query_prefix=ld.query_prefix,
                        allow_download=False)
            return self._embedding

    # -- writes -------------------------------------------------------------------------------
    def add_texts(self, texts: Iterable[str], metadatas: list[dict[Any, Any]] | None = None, *,
                  ids: list[str | None] | None = None, **kwargs: Any) -> list[str]:
        """Store texts as documents of the collection (``LocalDocs.add_texts``).

        Args:
            texts: non-empty strings.
            metadatas: one dict per text (JSON values), given back exactly by searches.
            ids: one id per text (None entries get a new UUID4); an existing id is replaced.

        Returns:
            The ids, in order.

        Raises:
            gpt4all_rag.errors.InvalidParameterError: empty texts, lists of other lengths,
                repeated ids, unusable metadata, an unknown keyword argument.
        """
        _no_kwargs("add_texts", kwargs)
        return self.localdocs.add_texts(list(texts), metadatas, ids)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Remove the documents these ids belong to (``LocalDocs.delete``: an added text by its
        id; an indexed file, all of it, by any of its chunk ids). Unknown ids are ignored.

        Returns:
            True.

        Raises:
            gpt4all_rag.errors.InvalidParameterError: ``ids`` is None (this never empties a
                collection: use ``LocalDocs.remove()``), not a list of strings, or an unknown
                keyword argument is given.
        """
        _no_kwargs("delete", kwargs)
        if ids is None:
            raise InvalidParameterError("delete() needs the ids to remove; LocalDocs.remove() "
                                        "deletes a whole collection")
        try:
            self.localdocs.delete(list(ids))
        except CollectionNotFoundError:
            pass  # nothing to delete
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents of these ids, in the order given; unknown ids are left out."""
        try:
            return [_document(r) for r in self.localdocs.get(list(ids))]
        except CollectionNotFoundError:
            return []

    # -- searches -----------------------------------------------------------------------------
    def similarity_search(self, query: str, k: int = 4, filter: dict[str, Any] | None = None,  # noqa: A002
                          **kwargs: Any) -> list[Document]:
        """The ``k`` best documents for ``query``; ``mode=`` overrides the store's mode."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter=filter, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4,
                                     filter: dict[str, Any] | None = None,  # noqa: A002
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        """``(document, score)`` pairs, best first; the score as in the class docs (higher is
        better). Keyword arguments: ``mode``, ``candidates`` (as for ``LocalDocs.search``).

        Raises:
            gpt4all_rag.errors.InvalidParameterError: an empty query, k < 1, an unknown mode,
                a malformed filter, an unknown keyword argument.
        """
        mode = kwargs.pop("mode", self.mode)
        candidates = kwargs.pop("candidates", None)
        _no_kwargs("similarity_search", kwargs)
        try:
            results = self.localdocs.search(query, k, mode=mode, candidates=candidates, filter=filter)
        except CollectionNotFoundError:
            return []
        return [(_document(r), r.score) for r in results]

    def _similarity_search_with_relevance_scores(self, query: str, k: int = 4,
                                                 **kwargs: Any) -> list[tuple[Document, float]]:
        kwargs["mode"] = "dense"
        return [(doc, min(1.0, max(0.0, score)))
                for doc, score in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4,
                                    filter: dict[str, Any] | None = None,  # noqa: A002
                                    **kwargs: Any) -> list[Document]:
        """The ``k`` documents nearest to a query vector (dense retrieval)."""
        _no_kwargs("similarity_search_by_vector", kwargs)
        try:
            return [_document(r) for r in self.localdocs.search_by_vector(embedding, k, filter=filter)]
        except CollectionNotFoundError:
            return []

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                      lambda_mult: float = 0.5,
                                      filter: dict[str, Any] | None = None,  # noqa: A002
                                      **kwargs: Any) -> list[Document]:
        """``k`` documents that match ``query`` and differ from each other: maximal marginal
        relevance (Carbonell and Goldstein, SIGIR 1998) over the ``fetch_k`` nearest chunks.

        Args:
            query: the query.
            k: documents returned.
            fetch_k: nearest chunks considered (>= k).
            lambda_mult: 1 ranks by relevance only, 0 by diversity only.
            filter: as for :meth:`similarity_search`.

        Raises:
            gpt4all_rag.errors.InvalidParameterError: an empty query, k < 1, fetch_k < k,
                lambda_mult outside [0, 1], a malformed filter.
        """
        return self.max_marginal_relevance_search_by_vector(
            self.localdocs.embed_query(query), k, fetch_k, lambda_mult, filter=filter, **kwargs)

    def max_marginal_relevance_search_by_vector(self, embedding: list[float], k: int = 4,
                                                fetch_k: int = 20, lambda_mult: float = 0.5,
                                                filter: dict[str, Any] | None = None,  # noqa: A002
                                                **kwargs: Any) -> list[Document]:
        """:meth:`max_marginal_relevance_search` from a query vector."""
        _no_kwargs("max_marginal_relevance_search", kwargs)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidParameterError(f"k must be a positive integer, got {k!r}")
        if isinstance(fetch_k, bool) or not isinstance(fetch_k, int) or fetch_k < k:
            raise InvalidParameterError(f"fetch_k must be an integer >= k ({k}), got {fetch_k!r}")
        if not 0.0 <= float(lambda_mult) <= 1.0:
            raise InvalidParameterError(f"lambda_mult must be in [0, 1], got {lambda_mult!r}")
        try:
            found = self.localdocs.search_by_vector(embedding, fetch_k, filter=filter,
                                                    with_embeddings=True)
        except CollectionNotFoundError:
            return []
        if not found:
            return []
        chosen = maximal_marginal_relevance(np.asarray(embedding, dtype=np.float32),
                                            [r.embedding for r in found],
                                            lambda_mult=float(lambda_mult), k=k)
        return [_document(found[i]) for i in chosen]

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings | None = None,
                   metadatas: list[dict[Any, Any]] | None = None, *,
                   ids: list[str] | None = None, **kwargs: Any) -> LocalDocsVectorStore:
        """A store (``kwargs``: the constructor's options) holding ``texts``."""
        store = cls(embedding=embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store


def _document(result: SearchResult) -> Document:
    if result.origin == "text":
        return Document(id=result.chunk_id, page_content=result.text, metadata=dict(result.metadata))
    return Document(id=result.chunk_id, page_content=result.text, metadata={
        "source": result.path, "title": result.title, "page": result.page,
        "start_line": result.start_line, "end_line": result.end_line, "heading": result.heading,
        "chunk_id": result.chunk_id, "citation": result.citation()})


def _no_kwargs(method: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise InvalidParameterError(f"{method}() got unsupported keyword argument(s): {sorted(kwargs)}")
