"""Listing the LocalDocs collections of a Chroma database or server."""

from __future__ import annotations

import os
from typing import Any

from . import store

__all__ = ["COLLECTION_KEYS", "Collections", "list_collections"]

#: The keys of each listed collection (``gpt4all-rag collections --json`` prints the same).
COLLECTION_KEYS = ("name", "documents", "chunks", "embedding_model", "dimensionality",
                   "chunk_tokens", "overlap_tokens", "chunker", "schema", "revision", "updated_at")


class Collections(list[dict[str, Any]]):
    """A list of collections (dicts with :data:`COLLECTION_KEYS`; None where a collection does
    not record a value), sorted by name, that Jupyter shows as a table."""

    def _repr_html_(self) -> str:
        from .display import collections_html

        return collections_html(self)


def list_collections(persist_directory: str | os.PathLike[str] | None = None,
                     chroma_url: str | None = None) -> Collections:
    """The LocalDocs collections of an embedded database or a Chroma server.

    Args:
        persist_directory: folder of the embedded database (None: the default,
            :func:`gpt4all_rag.paths.localdocs_directory`).
        chroma_url: ``http://host:port`` of a Chroma server instead.

    Returns:
        :class:`Collections`: ``documents`` counts indexed files and added texts, ``chunks``
        the chunks, ``updated_at`` is the Unix time of the last change (None before it was
        recorded); the rest is how the collection was built.

    Raises:
        InvalidParameterError: a malformed URL.
        StoreError: the database cannot be opened or read.
    """
    client = store.make_client(persist_directory, chroma_url)
    return Collections(_row(r) for r in store.list_collections(client))


def _row(raw: dict[str, Any]) -> dict[str, Any]:
    return {key: raw.get(key) for key in COLLECTION_KEYS}
