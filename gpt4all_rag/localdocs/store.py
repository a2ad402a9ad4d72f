"""LocalDocs storage on ChromaDB: the two collections of a LocalDocs collection, and clients.

With :mod:`~gpt4all_rag.localdocs.embedding_function` (the Chroma embedding function that lets
plain Chroma reopen a collection), the only module that imports :mod:`chromadb`.

A LocalDocs collection ``NAME`` is two Chroma collections, so that everything retrieval and
incremental indexing need lives in Chroma and works the same on the embedded client and on a
Chroma server shared by several machines:

* ``NAME``: one record per chunk. Id ``<doc_id>:<chunk index, 5 digits>``, where ``doc_id`` is
  derived from the document's absolute path (:func:`doc_id_for`), the chunk text as the
  document, the embedding computed by LocalDocs (document prefix), and metadata: ``doc_id``,
  ``path``, ``title``, ``chunk_index``, ``extension`` (of the path, lower case with its dot,
  e.g. ``".md"``; ``""`` if none), ``origin`` (``"file"`` for an indexed file, ``"text"`` for a
  text added with :meth:`LocalDocs.add_texts`), and where known ``page``, ``start_line``,
  ``end_line``, ``heading``. An added text is one chunk whose id is the caller's; it also
  carries the caller's metadata: each key whose value Chroma can store (str, int, float,
  bool) as itself, for filters, and all of it as JSON under ``g4r_metadata``, to be given
  back exactly. The collection's metadata records how it was built (``g4r_embedding_model``,
  ``g4r_dimensionality``, chunking settings, schema version) and a ``g4r_revision`` counter
  that changes whenever its content does (the keyword index is rebuilt when it changes), with
  ``g4r_updated_at`` (Unix seconds of that change), and ``g4r_writing``, True from a writer's
  first change of content until its closing revision bump (a persisted keyword index is never
  written or trusted while it is True; a writer that died leaves it True until the next
  completed write, which only costs rebuilds). Two
  writers on one collection at once are not coordinated: the first to finish clears the flag
  while the other still writes, and the counter is a read-modify-write of Chroma metadata.
* ``NAME__files``: one record per document (id ``doc_id``): ``path``, ``size_bytes``,
  ``mtime`` (the ``repr`` of the float, a string: Chroma does not give every float back
  exactly), ``content_hash``, ``n_chunks``, ``title`` and ``state`` (``"indexing"`` while its
  chunks are being replaced, ``"done"`` after) and ``origin``. An added text's record has the
  text's id as ``doc_id`` and ``text:<id>`` as ``path``, so it never collides with a file. A
  1-dimensional placeholder vector satisfies Chroma.

Schema versions (``g4r_schema``): 1 had no ``extension`` and ``origin``; a collection of
version 1 gets them added to every chunk when it is first opened.

Chroma quirks handled here (see the project's FACTS): ``add`` with an existing id is ignored,
so a document's chunks are deleted before new ones are added; ``upsert`` merges metadata, so
file records always carry every key; metadata values may not be ``None``; collection names
need 3 to 512 characters of ``[a-zA-Z0-9._-]``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlparse

import chromadb

from .. import paths
from ..errors import CollectionMismatchError, CollectionNotFoundError, InvalidParameterError, StoreError
from ..names import FILES_SUFFIX, check_collection_name
from .embedding_function import LocalDocsEmbeddingFunction
from .keyword_cache import KeywordCache
from .records import (ChunkRecord, FileRecord, StoredChunk, chunk_metadata, doc_id_for,
                      path_extension)

# ChunkRecord, FileRecord, StoredChunk and doc_id_for live in .records and
# LocalDocsEmbeddingFunction in .embedding_function; re-exported here.
__all__ = [
    "ChunkRecord", "FileRecord", "LocalDocsEmbeddingFunction", "Store", "StoredChunk",
    "default_persist_directory", "doc_id_for", "make_client",
]

SCHEMA_VERSION = 2
_WRITE_BATCH = 1000  # records per Chroma write (well under its max batch size)
_READ_PAGE = 5000


def default_persist_directory() -> Path:
    """Where the embedded Chroma database lives: ``$GPT4ALL_RAG_LOCALDOCS_DIR``, else
    ``localdocs`` in gpt4all-rag's platform data folder (``$XDG_DATA_HOME/gpt4all-rag/localdocs``,
    by default ``~/.local/share/gpt4all-rag/localdocs``); see :mod:`gpt4all_rag.paths`."""
    return paths.localdocs_directory()


def make_client(persist_directory: str | os.PathLike[str] | None = None,
                chroma_url: str | None = None, *, fresh: bool = False) -> Any:
    """A Chroma client: ``HttpClient`` for ``chroma_url``, else an embedded persistent client.

    Args:
        persist_directory: folder of the embedded database (None: the default directory).
        chroma_url: ``http://host:port`` of a Chroma server; wins over persist_directory.
        fresh: an embedded client that reads the database as it is now. Chroma shares one
            in-process system per folder, whose vector index keeps what it loaded: records
            another process added later stay invisible to its queries (measured with Chroma
            1.5: a record added by a second process is found by ``get`` but not by ``query``,
            until a new system is made). ``fresh`` makes a new system (clients made before
            keep working, on their own view).

    Raises:
        InvalidParameterError: a malformed URL.
        StoreError: the database cannot be opened or the server is unreachable.
    """
    settings = chromadb.config.Settings(anonymized_telemetry=False)
    try:
        if chroma_url:
            u = urlparse(chroma_url)
            if u.scheme not in ("http", "https") or not u.hostname:
                raise InvalidParameterError(f"chroma_url must look like http://host:port, got {chroma_url!r}")
            port = u.port or (443 if u.scheme == "https" else 8000)
            client = chromadb.HttpClient(host=u.hostname, port=port, ssl=u.scheme == "https",
                                         settings=settings)
            client.heartbeat()
            return client
        directory = paths.expand(persist_directory) if persist_directory else default_persist_directory()
        directory.mkdir(parents=True, exist_ok=True)
        with _FRESH_LOCK:  # Chroma's cache of systems is a class attribute
            if fresh:
                chromadb.api.client.SharedSystemClient.clear_system_cache()
            return chromadb.PersistentClient(path=str(directory), settings=settings)
    except InvalidParameterError:
        raise
    except Exception as exc:  # noqa: BLE001 - chromadb raises many unrelated types here
        where = chroma_url or str(persist_directory or default_persist_directory())
        raise StoreError(f"cannot open the Chroma database at {where}: {type(exc).__name__}: {exc}") from exc


_FRESH_LOCK = threading.Lock()


class Store:
    """One LocalDocs collection on a Chroma client.

    Args:
        client: from :func:`make_client`.
        collection: the collection name (3-63 characters of letters, digits, ``.``, ``_``,
            ``-``, starting and ending with a letter or digit).
        build_info: how the collection is built (embedding model, dimensionality, chunking).
            Required to create the collection; when the collection exists, it must match.
        embedding_function: registered with the chunk collection so it can be reopened with
            plain Chroma.
        create: create the collection when missing (else :class:`CollectionNotFoundError`).

    Raises:
        InvalidParameterError: a bad name.
        CollectionNotFoundError: the collection does not exist and ``create`` is False.
        CollectionMismatchError: (a ValueError) it was built with another model or settings.
        StoreError: Chroma failed.
    """

    def __init__(self, client: Any, collection: str, *, build_info: Mapping[str, Any] | None = None,
                 embedding_function: LocalDocsEmbeddingFunction | None = None,
                 create: bool = True) -> None:
        check_name(collection)
        self.client = client
        self.name = collection
        try:
            existing = {c.name for c in client.list_collections()}
            if collection not in existing:
                if not create or build_info is None:
                    raise CollectionNotFoundError(
                        f"no LocalDocs collection named {collection!r}; index documents into it first")
                meta = {f"g4r_{k}": v for k, v in build_info.items()}
                meta.update(g4r_schema=SCHEMA_VERSION, g4r_revision=0)
                self.chunks = client.create_collection(
                    collection, metadata=meta, embedding_function=embedding_function,
                    configuration={"hnsw": {"space": "cosine"}})
            else:
                self.chunks = client.get_collection(collection, embedding_function=embedding_function) \
                    if embedding_function is not None else client.get_collection(collection)
                self.check_build_info(build_info)
            self.files = client.get_or_create_collection(collection + FILES_SUFFIX,
                                                         embedding_function=None)
            if int((self.chunks.metadata or {}).get("g4r_schema", 1)) < SCHEMA_VERSION:
                self._upgrade_schema()
            # The revision this handle's view holds (see :meth:`freshness`).
            self._seen_revision = int((self.chunks.metadata or {}).get("g4r_revision", 0))
        except (CollectionNotFoundError, CollectionMismatchError):
            raise
        except Exception as exc:  # noqa: BLE001 - chromadb raises many unrelated types here
            raise StoreError(f"cannot open collection {collection!r}: {type(exc).__name__}: {exc}") from exc

    # -- build info ---------------------------------------------------------------------------
    @property
    def build_info(self) -> dict[str, Any]:
        """How the collection was built (keys without the ``g4r_`` prefix; its state, such as
        the revision and the time of the last change, left out)."""
        meta = self.chunks.metadata or {}
        return {k[4:]: v for k, v in meta.items() if k.startswith("g4r_") and k not in
                ("g4r_schema", "g4r_revision", "g4r_writing", "g4r_updated_at")}

    def check_build_info(self, wanted: Mapping[str, Any] | None) -> None:
        if not wanted:
            return
        have = self.build_info
        diffs = [f"{k}: collection has {have.get(k)!r}, requested {v!r}"
                 for k, v in wanted.items() if have.get(k) != v]
        if diffs:
            raise CollectionMismatchError(
                f"collection {self.name!r} was built differently ({'; '.join(diffs)}); use the "
                "same settings, or re-index it from scratch (reindex=True / --reindex)")

    @property
    def revision(self) -> int:
        """Changes whenever the collection's content does."""
        return self.content_state()[0]

    def content_state(self) -> tuple[int, bool]:
        """``(revision, writing)`` read fresh from Chroma: the revision counter, and whether a
        writer has changed content since the last revision bump (see the module docstring).

        Raises:
            StoreError: Chroma failed.
        """
        meta = self._fresh_metadata() or {}
        return int(meta.get("g4r_revision", 0)), bool(meta.get("g4r_writing", False))

    @property
    def cache_identity(self) -> str:
        """What names this collection in a local cache: where the store is (the embedded
        database's absolute folder or the server's ``scheme://host:port``), tenant, database,
        name and Chroma's id of the collection (a new one for a collection deleted and created
        again). The same on every machine that uses the same server address."""
        settings = self.client.get_settings()
        if settings.is_persistent:
            where = "file:" + os.path.abspath(str(settings.persist_directory))
        else:
            scheme = "https" if settings.chroma_server_ssl_enabled else "http"
            where = f"{scheme}://{settings.chroma_server_host}:{settings.chroma_server_http_port}"
        return "\n".join([where, str(getattr(self.client, "tenant", "")),
                          str(getattr(self.client, "database", "")), self.name, str(self.chunks.id)])

    def freshness(self) -> str:
        """How this handle stands against the collection as it is now (one read of Chroma).

        Returns:
            ``"current"``; ``"replaced"`` when the collection was deleted and created again
            (open a new :class:`Store`); ``"stale"`` when another process changed its content
            since this handle was opened or last wrote, on an embedded database, whose
            in-process vector index does not see such changes (open a new :class:`Store` on
            ``make_client(..., fresh=True)``). A Chroma server always answers from its current
            state, so a handle on one is only ever current or replaced.

        Raises:
            CollectionNotFoundError: the collection does not exist (any more).
            StoreError: Chroma failed.
        """
        found = self._current()
        if found.id != self.chunks.id:
            return "replaced"
        revision = int((found.metadata or {}).get("g4r_revision", 0))
        if revision != self._seen_revision:
            if self.client.get_settings().is_persistent:
                return "stale"
            self._seen_revision = revision
        return "current"

    def _current(self) -> Any:
        """The chunk collection of this name as Chroma has it now (read fresh).

        Raises:
            CollectionNotFoundError: it does not exist (any more).
            StoreError: Chroma failed.
        """
        try:
            return self.client.get_collection(self.name)
        except Exception as exc:  # noqa: BLE001 - chromadb raises many unrelated types here
            if type(exc).__name__ in ("NotFoundError", "InvalidCollectionException") \
                    or "does not exist" in str(exc):
                raise CollectionNotFoundError(f"no LocalDocs collection named {self.name!r} (it "
                                              "was removed)") from exc
            raise StoreError(f"cannot read collection {self.name!r}: {type(exc).__name__}: {exc}") from exc

    def _fresh_metadata(self) -> Mapping[str, Any] | None:
        return self._current().metadata

    def bump_revision(self) -> None:
        """Count a change of content (the keyword index is rebuilt on the next query), record
        its time (``g4r_updated_at``, Unix seconds) and clear ``g4r_writing``: the writer has
        finished."""
        revision = self.content_state()[0] + 1
        self._modify_metadata(g4r_revision=revision, g4r_writing=False, g4r_updated_at=time.time())
        self._seen_revision = revision  # this process's own change: its view has it

    def _begin_write(self) -> None:
        """Set ``g4r_writing`` before a change of content (read fresh each time: another
        writer's bump may have cleared it since this object's last write)."""
        if not self.content_state()[1]:
            self._modify_metadata(g4r_writing=True)

    def _modify_metadata(self, **changes: Any) -> None:
        meta = dict(self._fresh_metadata() or {})
        meta.update(changes)
        meta.pop("hnsw:space", None)
        self.chunks.modify(metadata=meta)

    def _upgrade_schema(self) -> None:
        """Schema 1 -> 2: add ``extension`` and ``origin`` to every chunk (metadata updates
        merge, so nothing else changes), then record the new version."""
        for ids, metas, _docs in self._pages(self.chunks, include=["metadatas"]):
            self.chunks.update(ids=ids, metadatas=[
                {"extension": path_extension(str((m or {}).get("path", ""))), "origin": "file"}
                for m in metas])
        self._modify_metadata(g4r_schema=SCHEMA_VERSION)

    # -- files --------------------------------------------------------------------------------
    def file_records(self) -> dict[str, FileRecord]:
        """Every document's record, by path."""
        out: dict[str, FileRecord] = {}
        for ids, metas, _docs in self._pages(self.files, include=["metadatas"]):
            for doc_id, m in zip(ids, metas):
                out[m["path"]] = FileRecord(doc_id, m["path"], int(m["size_bytes"]), float(m["mtime"]),
                                            str(m["content_hash"]), int(m["n_chunks"]),
                                            str(m.get("title", "")), str(m["state"]),
                                            str(m.get("origin", "file")))
        return out

    def put_file(self, record: FileRecord) -> None:
        self.put_files([record])

    def put_files(self, records: Sequence[FileRecord]) -> None:
        """Write file records (every key each time: Chroma's upsert merges metadata)."""
        for start in range(0, len(records), _WRITE_BATCH):
            part = records[start:start + _WRITE_BATCH]
            self.files.upsert(ids=[r.doc_id for r in part], embeddings=[[1.0]] * len(part),
                              documents=[r.path for r in part], metadatas=[r.metadata() for r in part])

    # -- chunks -------------------------------------------------------------------------------
    def replace_document(self, record: FileRecord, chunks: Sequence[ChunkRecord]) -> None:
        """Replace one document's chunks as a unit; see :meth:`replace_documents`."""
        self.replace_documents([(record, chunks)])

    def replace_documents(self, documents: Sequence[tuple[FileRecord, Sequence[ChunkRecord]]]) -> None:
        """Replace several documents' chunks, each as a unit, crash-consistently.

        The file records go to ``state="indexing"`` first, the old chunks are deleted, the new
        ones added, and the records go to ``"done"`` last; a run killed in between leaves
        records that the next run sees as unfinished and redoes (deterministic ids: no
        duplicates). Writing several documents together saves Chroma round trips (four per
        group instead of four per document).
        """
        if not documents:
            return
        self._begin_write()
        self.put_files([FileRecord(**{**r.__dict__, "state": "indexing"}) for r, _ in documents])
        doc_ids = [r.doc_id for r, _ in documents]
        self.chunks.delete(where={"doc_id": {"$in": doc_ids}} if len(doc_ids) > 1 else {"doc_id": doc_ids[0]})
        rows = [(r, c) for r, chunks in documents for c in chunks]
        for start in range(0, len(rows), _WRITE_BATCH):
            part = rows[start:start + _WRITE_BATCH]
            self.chunks.add(
                ids=[c.chunk_id or f"{r.doc_id}:{c.chunk_index:05d}" for r, c in part],
                embeddings=[list(map(float, c.embedding)) for _, c in part],
                documents=[c.text for _, c in part],
                metadatas=[chunk_metadata(r, c) for r, c in part])
        self.put_files([FileRecord(**{**r.__dict__, "state": "done", "n_chunks": len(chunks)})
                        for r, chunks in documents])

    def remove_document(self, doc_id: str) -> None:
        """Delete a document's chunks, then its record."""
        self.remove_documents([doc_id])

    def remove_documents(self, doc_ids: Sequence[str]) -> None:
        """Delete documents' chunks, then their records (unknown ids are ignored)."""
        if not doc_ids:
            return
        self._begin_write()
        ids = list(doc_ids)
        self.chunks.delete(where={"doc_id": {"$in": ids}} if len(ids) > 1 else {"doc_id": ids[0]})
        self.files.delete(ids=ids)

    def doc_ids_of(self, ids: Sequence[str]) -> set[str]:
        """The documents that chunk ids or document ids belong to (unknown ids are left out)."""
        if not ids:
            return set()
        found = {str((m or {})["doc_id"]) for m in
                 self.chunks.get(ids=list(ids), include=["metadatas"])["metadatas"] or []}
        return found | set(self.files.get(ids=list(ids), include=[])["ids"])

    def count(self) -> int:
        """Number of chunks."""
        return int(self.chunks.count())

    def ids_matching(self, where: Mapping[str, Any]) -> list[str]:
        """Ids of the chunks whose metadata match a Chroma ``where`` filter."""
        out: list[str] = []
        offset = 0
        while True:
            ids = self.chunks.get(where=dict(where), include=[], limit=_READ_PAGE, offset=offset)["ids"]
            out.extend(ids)
            if len(ids) < _READ_PAGE:
                return out
            offset += len(ids)

    def all_chunks(self) -> Iterable[StoredChunk]:
        """Every chunk (id, text, metadata), in pages."""
        for ids, metas, docs in self._pages(self.chunks, include=["metadatas", "documents"]):
            for cid, m, d in zip(ids, metas, docs):
                yield StoredChunk(cid, d or "", m or {})

    def get_chunks(self, ids: Sequence[str]) -> dict[str, StoredChunk]:
        """The chunks of these ids, by id (unknown ids are left out)."""
        if not ids:
            return {}
        r = self.chunks.get(ids=list(ids), include=["metadatas", "documents"])
        return {cid: StoredChunk(cid, d or "", m or {})
                for cid, m, d in zip(r["ids"], r["metadatas"], r["documents"])}

    def query(self, embedding: Sequence[float], n_results: int, *,
              where: Mapping[str, Any] | None = None,
              with_embeddings: bool = False) -> list[tuple[StoredChunk, float]]:
        """Nearest chunks by cosine distance: ``[(chunk, similarity = 1 - distance)]``.

        Args:
            embedding: the query vector.
            n_results: at most this many.
            where: a Chroma metadata filter (see :mod:`gpt4all_rag.localdocs.filters`).
            with_embeddings: also read each chunk's vector (``StoredChunk.embedding``).
        """
        include = ["metadatas", "documents", "distances"] + (["embeddings"] if with_embeddings else [])
        r = self._nearest(embedding, n_results, where, include)
        if r is None:
            return []
        vectors = r["embeddings"][0] if with_embeddings else [None] * len(r["ids"][0])
        return [(StoredChunk(cid, d or "", m or {}, None if v is None else [float(x) for x in v]),
                 1.0 - float(dist))
                for cid, m, d, dist, v in zip(r["ids"][0], r["metadatas"][0], r["documents"][0],
                                              r["distances"][0], vectors)]

    def nearest_ids(self, embedding: Sequence[float], n_results: int, *,
                    where: Mapping[str, Any] | None = None) -> list[tuple[str, float]]:
        """As :meth:`query`, but only ``[(chunk id, similarity)]``: reading no texts or
        metadata, it costs a fraction of it (2 of 15 ms for 40 of 40k chunks here), for callers
        that keep a few of the candidates (hybrid fusion) and read those with
        :meth:`get_chunks`."""
        r = self._nearest(embedding, n_results, where, ["distances"])
        if r is None:
            return []
        return [(cid, 1.0 - float(dist)) for cid, dist in zip(r["ids"][0], r["distances"][0])]

    def _nearest(self, embedding: Sequence[float], n_results: int,
                 where: Mapping[str, Any] | None, include: list[str]) -> Any:
        # No count() first: Chroma (>= 1.5) returns fewer results when the collection holds
        # fewer, and counting cost 9 of the 42 ms of a hybrid search at 40k chunks.
        if n_results <= 0:
            return None
        return self.chunks.query(query_embeddings=[list(map(float, embedding))], n_results=n_results,
                                 where=dict(where) if where else None, include=include)

    def delete_collection(self) -> None:
        """Remove the collection and its file records, and this machine's cached keyword index
        of it (:mod:`~gpt4all_rag.localdocs.keyword_cache`, in the default cache folder).

        Raises:
            StoreError: Chroma failed.
        """
        KeywordCache(paths.bm25_cache_directory(), self.cache_identity).discard()
        for name in (self.name, self.name + FILES_SUFFIX):
            try:
                self.client.delete_collection(name)
            except Exception as exc:  # noqa: BLE001
                raise StoreError(f"cannot delete collection {name!r}: {exc}") from exc

    @staticmethod
    def _pages(collection: Any, include: list[str]) -> Iterable[tuple[list, list, list]]:
        offset = 0
        while True:
            r = collection.get(include=include, limit=_READ_PAGE, offset=offset)
            ids = r["ids"]
            if not ids:
                return
            metas = r.get("metadatas") or [None] * len(ids)
            docs = r.get("documents") or [None] * len(ids)
            yield ids, metas, docs
            if len(ids) < _READ_PAGE:
                return
            offset += len(ids)


def check_name(collection: str) -> None:
    """Raise InvalidParameterError unless ``collection`` is a valid LocalDocs collection name
    (:func:`gpt4all_rag.names.check_collection_name`)."""
    check_collection_name(collection)


def list_collections(client: Any) -> list[dict[str, Any]]:
    """LocalDocs collections on a client: name, chunk count, document count and build info."""
    out = []
    try:
        names = sorted(c.name for c in client.list_collections())
        for name in names:
            if name.endswith(FILES_SUFFIX) or name + FILES_SUFFIX not in names:
                continue
            col = client.get_collection(name)
            meta = col.metadata or {}
            out.append({"name": name, "chunks": col.count(),
                        "documents": client.get_collection(name + FILES_SUFFIX).count(),
                        **{k[4:]: v for k, v in meta.items() if k.startswith("g4r_")}})
    except Exception as exc:  # noqa: BLE001
        raise StoreError(f"cannot list collections: {type(exc).__name__}: {exc}") from exc
    return out

