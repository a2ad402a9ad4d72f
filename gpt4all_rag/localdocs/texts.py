"""Texts written into a LocalDocs collection directly (not read from files), and deletion and
lookup by id: what :meth:`LocalDocs.add_texts`, :meth:`LocalDocs.delete` and
:meth:`LocalDocs.get` do, through the same bookkeeping as indexing.

Each added text is one document with one chunk: a file record (``origin="text"``, path
``text:<id>``, ``doc_id`` = the id) and a chunk whose id is the caller's id, written with
:meth:`Store.replace_documents` (crash-consistent, replaces an existing text of the same id
as a unit). Every change bumps the collection's revision, so the BM25 index is rebuilt and
incremental indexing never mistakes a text for a file.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import InvalidParameterError
from .records import ChunkRecord, FileRecord, text_metadata
from .retrieval import SearchResult, SearchResults
from .store import Store

__all__ = ["TEXT_GROUP", "add_texts", "delete", "get"]

#: Texts embedded and written together.
TEXT_GROUP = 256
#: Ids LocalDocs gives to files (``doc_id``) and their chunks (``doc_id:NNNNN``).
_FILE_ID_RE = re.compile(r"^[0-9a-f]{24}(:\d{5})?$")


def add_texts(store: Store, embed: Callable[[list[str]], Sequence[Sequence[float]]],
              texts: Iterable[str], metadatas: Sequence[Mapping[str, Any] | None] | None = None,
              ids: Sequence[str | None] | None = None) -> list[str]:
    """Embed and store texts; see :meth:`LocalDocs.add_texts`.

    Args:
        store: the collection, open for writing.
        embed: embeds a batch of texts with the document prefix.
        texts, metadatas, ids: as for :meth:`LocalDocs.add_texts`.

    Returns:
        The ids, in order (a fresh UUID4 where none was given).

    Raises:
        InvalidParameterError: see :meth:`LocalDocs.add_texts`.
    """
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise InvalidParameterError(f"text {i} must be a non-empty string, got {text!r}")
    metas = _aligned("metadatas", metadatas, len(texts))
    given = _aligned("ids", ids, len(texts))
    out = [str(uuid.uuid4()) if i is None else _check_id(i) for i in given]
    if len(set(out)) != len(out):
        dupes = sorted({i for i in out if out.count(i) > 1})
        raise InvalidParameterError(f"ids must be unique within one call, repeated: {dupes}")
    shaped = [text_metadata(m or {}) for m in metas]
    for start in range(0, len(texts), TEXT_GROUP):
        part = range(start, min(start + TEXT_GROUP, len(texts)))
        vectors = embed([texts[i] for i in part])
        batch = []
        for i, vector in zip(part, vectors):
            fields, extra = shaped[i]
            if "path" in fields:
                extra = {**extra, "path": fields["path"]}
            data = texts[i].encode("utf-8", "surrogatepass")
            record = FileRecord(out[i], f"text:{out[i]}", len(data), time.time(),
                                hashlib.sha256(data).hexdigest(), 1, fields.get("title", ""),
                                "indexing", "text")
            batch.append((record, [ChunkRecord(0, texts[i], vector, fields.get("page"),
                                               fields.get("start_line"), fields.get("end_line"),
                                               fields.get("heading"), chunk_id=out[i], extra=extra)]))
        store.replace_documents(batch)
    if texts:
        store.bump_revision()
    return out


def delete(store: Store, ids: Sequence[str]) -> int:
    """Remove the documents that ids belong to; see :meth:`LocalDocs.delete`.

    Returns:
        How many documents (added texts or indexed files) were removed.
    """
    ids = _check_ids(ids)
    doc_ids = sorted(store.doc_ids_of(ids))
    store.remove_documents(doc_ids)
    if doc_ids:
        store.bump_revision()
    return len(doc_ids)


def get(store: Store, ids: Sequence[str]) -> SearchResults:
    """The chunks of these ids, in the order given; see :meth:`LocalDocs.get`."""
    ids = _check_ids(ids)
    found = store.get_chunks(list(dict.fromkeys(ids)))
    return SearchResults(SearchResult.from_stored(found[i], 0.0, {}) for i in dict.fromkeys(ids)
                         if i in found)


def _aligned(name: str, values: Sequence[Any] | None, n: int) -> list[Any]:
    if values is None:
        return [None] * n
    values = list(values)
    if len(values) != n:
        raise InvalidParameterError(f"{name} must have one entry per text: {len(values)} for {n} texts")
    return values


def _check_id(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidParameterError(f"an id must be a non-empty string, got {value!r}")
    if _FILE_ID_RE.match(value):
        raise InvalidParameterError(
            f"id {value!r} has the form LocalDocs gives to indexed files and their chunks; "
            "choose another id (files are updated by indexing them again)")
    return value


def _check_ids(ids: Any) -> list[str]:
    if isinstance(ids, str) or not isinstance(ids, (list, tuple)) or \
            not all(isinstance(i, str) and i for i in ids):
        raise InvalidParameterError(f"ids must be a list of non-empty strings, got {ids!r}")
    return list(ids)
