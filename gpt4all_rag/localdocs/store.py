"""LocalDocs storage on ChromaDB: the only module that imports :mod:`chromadb`.

A LocalDocs collection ``NAME`` is two Chroma collections, so that everything retrieval and
incremental indexing need lives in Chroma and works the same on the embedded client and on a
Chroma server shared by several machines:

* ``NAME``: one record per chunk. Id ``<doc_id>:<chunk index, 5 digits>``, where ``doc_id`` is
  derived from the document's absolute path (:func:`doc_id_for`), the chunk text as the
  document, the embedding computed by LocalDocs (document prefix), and metadata: ``doc_id``,
  ``path``, ``title``, ``chunk_index``, and where known ``page``, ``start_line``, ``end_line``,
  ``heading``. The collection's metadata records how it was built (``g4r_embedding_model``,
  ``g4r_dimensionality``, chunking settings, schema version) and a ``g4r_revision`` counter
  that changes whenever its content does (the keyword index is rebuilt when it changes).
* ``NAME__files``: one record per document (id ``doc_id``): ``path``, ``size_bytes``,
  ``mtime`` (the ``repr`` of the float, a string: Chroma does not give every float back
  exactly), ``content_hash``, ``n_chunks``, ``title`` and ``state`` (``"indexing"`` while its
  chunks are being replaced, ``"done"`` after). A 1-dimensional placeholder vector satisfies
  Chroma.

Chroma quirks handled here (see the project's FACTS): ``add`` with an existing id is ignored,
so a document's chunks are deleted before new ones are added; ``upsert`` merges metadata, so
file records always carry every key; metadata values may not be ``None``; collection names
need 3 to 512 characters of ``[a-zA-Z0-9._-]``.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlparse

import chromadb
import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from .. import paths
from ..errors import CollectionMismatchError, CollectionNotFoundError, InvalidParameterError, StoreError

__all__ = [
    "ChunkRecord", "FileRecord", "LocalDocsEmbeddingFunction", "Store", "StoredChunk",
    "default_persist_directory", "doc_id_for", "make_client",
]

SCHEMA_VERSION = 1
FILES_SUFFIX = "__files"
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,61}[a-zA-Z0-9]$")
_WRITE_BATCH = 1000  # records per Chroma write (well under its max batch size)
_READ_PAGE = 5000


def default_persist_directory() -> Path:
    """Where the embedded Chroma database lives: ``$GPT4ALL_RAG_LOCALDOCS_DIR``, else
    ``localdocs`` in gpt4all-rag's platform data folder (``$XDG_DATA_HOME/gpt4all-rag/localdocs``,
    by default ``~/.local/share/gpt4all-rag/localdocs``); see :mod:`gpt4all_rag.paths`."""
    return paths.localdocs_directory()


def doc_id_for(path: str) -> str:
    """Stable id of a document: the first 24 hex digits of SHA-256 of its absolute path."""
    return hashlib.sha256(os.path.abspath(path).encode("utf-8", "surrogateescape")).hexdigest()[:24]


def make_client(persist_directory: str | os.PathLike[str] | None = None,
                chroma_url: str | None = None) -> Any:
    """A Chroma client: ``HttpClient`` for ``chroma_url``, else an embedded persistent client.

    Args:
        persist_directory: folder of the embedded database (None: the default directory).
        chroma_url: ``http://host:port`` of a Chroma server; wins over persist_directory.

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
        directory = Path(persist_directory) if persist_directory else default_persist_directory()
        directory.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(directory), settings=settings)
    except InvalidParameterError:
        raise
    except Exception as exc:  # noqa: BLE001 - chromadb raises many unrelated types here
        where = chroma_url or str(persist_directory or default_persist_directory())
        raise StoreError(f"cannot open the Chroma database at {where}: {type(exc).__name__}: {exc}") from exc


@register_embedding_function
class LocalDocsEmbeddingFunction(EmbeddingFunction[Documents]):
    """A Chroma embedding function over :class:`~gpt4all_rag.Embed4All`.

    Registered with Chroma under :meth:`name`, so a collection created with it can be reopened
    in a new process (``client.get_collection(name)``) and queried with ``query_texts``: texts
    get the model's document prefix, queries (``embed_query``) its query prefix. The model is
    loaded on first use.

    Args:
        model_name: the embedding model file (e.g. ``all-MiniLM-L6-v2.gguf2.f16.gguf``).
        model_path: its directory (None: the default model directory).
        document_prefix, query_prefix: task prefixes; None uses the model's rules.
        n_threads: CPU threads (None: automatic).
    """

    def __init__(self, model_name: str, model_path: str | None = None, *,
                 document_prefix: str | None = None, query_prefix: str | None = None,
                 n_threads: int | None = None) -> None:
        self.model_name = model_name
        self.model_path = model_path
        self.document_prefix = document_prefix
        self.query_prefix = query_prefix
        self.n_threads = n_threads
        self._embedder: Any = None

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from ..embed4all import Embed4All

            self._embedder = Embed4All(self.model_name, model_path=self.model_path,
                                       allow_download=False, n_threads=self.n_threads)
        return self._embedder

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - Chroma's signature
        prefix = self.document_prefix if self.document_prefix is not None else self.embedder.document_prefix
        return _as_embeddings(self.embedder.embed(list(input), prefix=prefix))

    def embed_query(self, input: Documents) -> Embeddings:  # noqa: A002
        # Chroma wraps __call__ to normalise its result, but not embed_query: the HTTP client
        # calls .tolist() on each vector, so these must be numpy arrays.
        prefix = self.query_prefix if self.query_prefix is not None else self.embedder.query_prefix
        return _as_embeddings(self.embedder.embed(list(input), prefix=prefix))

    @staticmethod
    def name() -> str:
        return "gpt4all-rag"

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def supported_spaces(self) -> list[str]:  # type: ignore[override]
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "model_path": self.model_path,
                "document_prefix": self.document_prefix, "query_prefix": self.query_prefix}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "LocalDocsEmbeddingFunction":
        return LocalDocsEmbeddingFunction(
            config["model_name"], config.get("model_path"),
            document_prefix=config.get("document_prefix"), query_prefix=config.get("query_prefix"))


@dataclass(frozen=True)
class FileRecord:
    """Bookkeeping of one indexed document (see the module docstring)."""

    doc_id: str
    path: str
    size_bytes: int
    mtime: float
    content_hash: str
    n_chunks: int
    title: str
    state: str  # "indexing" or "done"

    def metadata(self) -> dict[str, Any]:
        # mtime as repr(): Chroma does not round-trip every float64 exactly (1795307564.6310275
        # comes back as ...277 from both clients), and a changed mtime costs a full re-hash.
        return {"path": self.path, "size_bytes": self.size_bytes,
                "mtime": repr(float(self.mtime)), "content_hash": self.content_hash,
                "n_chunks": self.n_chunks, "title": self.title, "state": self.state}


@dataclass(frozen=True)
class ChunkRecord:
    """A chunk to store: its text, vector ``list[float]`` and source span."""

    chunk_index: int
    text: str
    embedding: Sequence[float]
    page: int | None
    start_line: int | None
    end_line: int | None
    heading: str | None


@dataclass(frozen=True)
class StoredChunk:
    """A chunk read back from the store."""

    chunk_id: str
    text: str
    metadata: Mapping[str, Any]


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
        except (CollectionNotFoundError, CollectionMismatchError):
            raise
        except Exception as exc:  # noqa: BLE001 - chromadb raises many unrelated types here
            raise StoreError(f"cannot open collection {collection!r}: {type(exc).__name__}: {exc}") from exc

    # -- build info ---------------------------------------------------------------------------
    @property
    def build_info(self) -> dict[str, Any]:
        """How the collection was built (keys without the ``g4r_`` prefix)."""
        meta = self.chunks.metadata or {}
        return {k[4:]: v for k, v in meta.items() if k.startswith("g4r_") and k not in
                ("g4r_schema", "g4r_revision")}

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
        return int((self._fresh_metadata() or {}).get("g4r_revision", 0))

    def _fresh_metadata(self) -> Mapping[str, Any] | None:
        return self.client.get_collection(self.name).metadata

    def bump_revision(self) -> None:
        meta = dict(self._fresh_metadata() or {})
        meta["g4r_revision"] = int(meta.get("g4r_revision", 0)) + 1
        meta.pop("hnsw:space", None)
        self.chunks.modify(metadata=meta)

    # -- files --------------------------------------------------------------------------------
    def file_records(self) -> dict[str, FileRecord]:
        """Every document's record, by path."""
        out: dict[str, FileRecord] = {}
        for ids, metas, _docs in self._pages(self.files, include=["metadatas"]):
            for doc_id, m in zip(ids, metas):
                out[m["path"]] = FileRecord(doc_id, m["path"], int(m["size_bytes"]), float(m["mtime"]),
                                            str(m["content_hash"]), int(m["n_chunks"]),
                                            str(m.get("title", "")), str(m["state"]))
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
        self.put_files([FileRecord(**{**r.__dict__, "state": "indexing"}) for r, _ in documents])
        doc_ids = [r.doc_id for r, _ in documents]
        self.chunks.delete(where={"doc_id": {"$in": doc_ids}} if len(doc_ids) > 1 else {"doc_id": doc_ids[0]})
        rows = [(r, c) for r, chunks in documents for c in chunks]
        for start in range(0, len(rows), _WRITE_BATCH):
            part = rows[start:start + _WRITE_BATCH]
            self.chunks.add(
                ids=[f"{r.doc_id}:{c.chunk_index:05d}" for r, c in part],
                embeddings=[list(map(float, c.embedding)) for _, c in part],
                documents=[c.text for _, c in part],
                metadatas=[_chunk_metadata(r, c) for r, c in part])
        self.put_files([FileRecord(**{**r.__dict__, "state": "done", "n_chunks": len(chunks)})
                        for r, chunks in documents])

    def remove_document(self, doc_id: str) -> None:
        """Delete a document's chunks, then its record."""
        self.chunks.delete(where={"doc_id": doc_id})
        self.files.delete(ids=[doc_id])

    def count(self) -> int:
        return int(self.chunks.count())

    def all_chunks(self) -> Iterable[StoredChunk]:
        """Every chunk (id, text, metadata), in pages."""
        for ids, metas, docs in self._pages(self.chunks, include=["metadatas", "documents"]):
            for cid, m, d in zip(ids, metas, docs):
                yield StoredChunk(cid, d or "", m or {})

    def get_chunks(self, ids: Sequence[str]) -> dict[str, StoredChunk]:
        if not ids:
            return {}
        r = self.chunks.get(ids=list(ids), include=["metadatas", "documents"])
        return {cid: StoredChunk(cid, d or "", m or {})
                for cid, m, d in zip(r["ids"], r["metadatas"], r["documents"])}

    def query(self, embedding: Sequence[float], n_results: int) -> list[tuple[StoredChunk, float]]:
        """Nearest chunks by cosine distance: ``[(chunk, similarity = 1 - distance)]``."""
        n = min(n_results, self.count())
        if n <= 0:
            return []
        r = self.chunks.query(query_embeddings=[list(map(float, embedding))], n_results=n,
                              include=["metadatas", "documents", "distances"])
        return [(StoredChunk(cid, d or "", m or {}), 1.0 - float(dist))
                for cid, m, d, dist in zip(r["ids"][0], r["metadatas"][0], r["documents"][0],
                                           r["distances"][0])]

    def delete_collection(self) -> None:
        """Remove the collection and its file records."""
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
    """Raise InvalidParameterError unless ``collection`` is a valid LocalDocs collection name."""
    if not isinstance(collection, str) or not _NAME_RE.match(collection) or ".." in collection \
            or collection.endswith(FILES_SUFFIX):
        raise InvalidParameterError(
            f"invalid collection name {collection!r}: use 3-63 letters, digits, '.', '_' or '-', "
            f"starting and ending with a letter or digit, not ending in {FILES_SUFFIX!r}")


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


def _as_embeddings(vectors: Sequence[Sequence[float]]) -> Embeddings:
    """Chroma's embeddings type: one float32 numpy vector per text."""
    return [np.asarray(v, dtype=np.float32) for v in vectors]


def _chunk_metadata(record: FileRecord, c: ChunkRecord) -> dict[str, Any]:
    meta: dict[str, Any] = {"doc_id": record.doc_id, "path": record.path, "title": record.title,
                            "chunk_index": c.chunk_index}
    for key in ("page", "start_line", "end_line", "heading"):
        value = getattr(c, key)
        if value is not None:
            meta[key] = value
    return meta

