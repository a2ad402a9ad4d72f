"""What LocalDocs stores per document and per chunk, and how metadata is shaped for Chroma.

The layout of the two Chroma collections is described in :mod:`gpt4all_rag.localdocs.store`;
this module holds the records written there and read back, without importing chromadb.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..errors import InvalidParameterError

__all__ = ["ChunkRecord", "FileRecord", "RESERVED_KEYS", "StoredChunk", "chunk_metadata",
           "doc_id_for", "path_extension", "text_metadata"]

#: Chunk metadata keys LocalDocs writes itself; an added text's metadata cannot set these
#: (they stay in its ``g4r_metadata`` copy).
RESERVED_KEYS = frozenset({"doc_id", "chunk_index", "origin", "extension", "g4r_metadata"})
#: Keys of an added text's metadata that fill the chunk's own fields when their type fits.
_TEXT_FIELDS = {"title": str, "heading": str, "page": int, "start_line": int, "end_line": int}


def doc_id_for(path: str) -> str:
    """Stable id of a document: the first 24 hex digits of SHA-256 of its absolute path."""
    return hashlib.sha256(os.path.abspath(path).encode("utf-8", "surrogateescape")).hexdigest()[:24]


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
    origin: str = "file"  # "file" (indexed from disk) or "text" (added with add_texts)

    def metadata(self) -> dict[str, Any]:
        # mtime as repr(): Chroma does not round-trip every float64 exactly (1795307564.6310275
        # comes back as ...277 from both clients), and a changed mtime costs a full re-hash.
        return {"path": self.path, "size_bytes": self.size_bytes,
                "mtime": repr(float(self.mtime)), "content_hash": self.content_hash,
                "n_chunks": self.n_chunks, "title": self.title, "state": self.state,
                "origin": self.origin}


@dataclass(frozen=True)
class ChunkRecord:
    """A chunk to store: its text, vector ``list[float]`` and source span.

    ``chunk_id`` None gives the file chunk id ``<doc_id>:<chunk_index, 5 digits>``; an added
    text passes its own. ``extra`` is metadata stored with the chunk besides LocalDocs' own
    (an added text's, see :func:`text_metadata`); a ``"path"`` in it replaces the record's
    path in the chunk (an added text's ``source``).
    """

    chunk_index: int
    text: str
    embedding: Sequence[float]
    page: int | None
    start_line: int | None
    end_line: int | None
    heading: str | None
    chunk_id: str | None = None
    extra: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class StoredChunk:
    """A chunk read back from the store (``embedding`` only when asked for)."""

    chunk_id: str
    text: str
    metadata: Mapping[str, Any]
    embedding: Sequence[float] | None = None


def path_extension(path: str) -> str:
    """A path's extension as stored in chunk metadata: lower case with its dot (``".md"``),
    ``""`` for none."""
    return os.path.splitext(path)[1].lower()


def text_metadata(metadata: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split an added text's metadata into the chunk's own fields and the extra metadata
    stored with it (module docstring).

    Returns:
        ``(fields, extra)``: ``fields`` holds ``title``, ``heading``, ``page``,
        ``start_line``, ``end_line`` where the metadata has them with the right type, and
        ``path`` from ``source`` or ``path`` (a string); ``extra`` holds the storable values
        (str, int, float, bool) of the other keys (``source`` included; not the reserved
        ones), and ``g4r_metadata``: all of the metadata as JSON.

    Raises:
        InvalidParameterError: the metadata is not a mapping with string keys, or is not
            JSON-serialisable.
    """
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) and k for k in metadata):
        raise InvalidParameterError(f"metadata must be a dict with non-empty string keys, got {metadata!r}")
    try:
        encoded = json.dumps(dict(metadata), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"metadata must be JSON-serialisable ({exc}): {metadata!r}") from exc
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = {"g4r_metadata": encoded}
    for key, value in metadata.items():
        want = _TEXT_FIELDS.get(key)
        if want is not None:
            if isinstance(value, want) and not isinstance(value, bool):
                fields[key] = value
        elif key in ("source", "path"):
            if isinstance(value, str) and value and "path" not in fields:
                fields["path"] = value
        if key not in RESERVED_KEYS and key not in _TEXT_FIELDS and key != "path" \
                and not key.startswith("g4r_") and isinstance(value, (str, int, float, bool)):
            extra[key] = value
    return fields, extra


def chunk_metadata(record: FileRecord, c: ChunkRecord) -> dict[str, Any]:
    """The metadata stored with a chunk (see :mod:`gpt4all_rag.localdocs.store`)."""
    meta: dict[str, Any] = dict(c.extra or {})
    source = meta.pop("path", None)
    path = source or record.path
    meta.update({"doc_id": record.doc_id, "path": path, "title": record.title,
                 "chunk_index": c.chunk_index,
                 "extension": path_extension(path) if record.origin == "file" or source else "",
                 "origin": record.origin})
    for key in ("page", "start_line", "end_line", "heading"):
        value = getattr(c, key)
        if value is not None:
            meta[key] = value
    return meta

