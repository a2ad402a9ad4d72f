"""LocalDocs' Chroma embedding function: how plain Chroma reopens a LocalDocs collection.

:class:`LocalDocsEmbeddingFunction` is registered with Chroma under the name ``gpt4all-rag``
when this module is imported (importing :mod:`gpt4all_rag.localdocs` does), and is stored in
each collection's configuration by its model's file name and task prefixes. With
:mod:`~gpt4all_rag.localdocs.store`, this is the only module that imports :mod:`chromadb`
(Chroma's base class and registry are needed where the class is defined).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from .. import paths
from ..lazy import Lazy
from ..embed4all import DEFAULT_MODEL_NAME, Embed4All
from ..errors import InvalidParameterError

__all__ = ["LocalDocsEmbeddingFunction"]

#: How a caller gives prefixes explicitly, named in the error for a model without known ones.
_HINT = "LocalDocsEmbeddingFunction(document_prefix=..., query_prefix=...)"


@register_embedding_function
class LocalDocsEmbeddingFunction(EmbeddingFunction[Documents]):
    """A Chroma embedding function over :class:`~gpt4all_rag.Embed4All`.

    Registered with Chroma under the name ``gpt4all-rag`` (:meth:`name`) when this module is
    imported. A plain ``chromadb`` process, on this machine or another, reopens a LocalDocs
    collection and queries it by text this way::

        import chromadb
        import gpt4all_rag.localdocs  # registers "gpt4all-rag" with Chroma

        client = chromadb.PersistentClient(path="...")   # or chromadb.HttpClient(...)
        collection = client.get_collection("notes")
        collection.query(query_texts=["how do I renew my passport?"], n_results=3)

    Without the import, Chroma refuses the collection ("Embedding function gpt4all-rag not
    found"). The collection's configuration stores the model's file name and task prefixes
    (:meth:`get_config`), never a folder: the reopening process finds the model in its default
    model directory (``$GPT4ALL_MODEL_PATH``, else ``~/.cache/gpt4all``; see
    :mod:`gpt4all_rag.paths`), or the caller passes
    ``embedding_function=LocalDocsEmbeddingFunction(name, model_path=...)``. Texts get the
    model's document prefix, queries (``embed_query``) its query prefix. The model is loaded on
    first use.

    Args:
        model_name: the embedding model's file name (e.g.
            :data:`~gpt4all_rag.embed4all.DEFAULT_MODEL_NAME`).
        model_path: its directory (None: the default model directory). Not part of the stored
            configuration.
        document_prefix, query_prefix: task prefixes; None uses the model's rules
            (:meth:`~gpt4all_rag.Embed4All.resolve_prefix`).
        n_threads: CPU threads (None: automatic).

    Raises:
        InvalidParameterError: (a ValueError) ``model_name`` is not a plain file name or a
            prefix is not a string or None.
    """

    def __init__(self, model_name: str, model_path: str | None = None, *,
                 document_prefix: str | None = None, query_prefix: str | None = None,
                 n_threads: int | None = None) -> None:
        self.validate_config({"model_name": model_name, "document_prefix": document_prefix,
                              "query_prefix": query_prefix})
        self.model_name = model_name
        self.model_path = model_path
        self.document_prefix = document_prefix
        self.query_prefix = query_prefix
        self.n_threads = n_threads
        self._embedder: Lazy[Embed4All] = Lazy(self._load, free=Embed4All.close)

    @property
    def embedder(self) -> Embed4All:
        """The :class:`~gpt4all_rag.Embed4All` (loaded on first use, once, also when several
        threads ask first)."""
        return self._embedder.get()

    def _load(self) -> Embed4All:
        folder = self.model_path or str(paths.model_directory())  # the default folder as of now
        return Embed4All(self.model_name, model_path=folder, allow_download=False,
                         n_threads=self.n_threads)

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - Chroma's signature
        prefix = self.embedder.resolve_prefix(self.document_prefix, "document", hint=_HINT)
        return _as_embeddings(self.embedder.embed(list(input), prefix=prefix))

    def embed_query(self, input: Documents) -> Embeddings:  # noqa: A002
        # Chroma wraps __call__ to normalise its result, but not embed_query: the HTTP client
        # calls .tolist() on each vector, so these must be numpy arrays.
        prefix = self.embedder.resolve_prefix(self.query_prefix, "query", hint=_HINT)
        # As LocalDocs.embed_query: a query's first context window.
        return _as_embeddings(self.embedder.embed(list(input), prefix=prefix, long_text_mode="truncate"))

    @staticmethod
    def name() -> str:
        """The name Chroma knows this function by: ``"gpt4all-rag"``."""
        return "gpt4all-rag"

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def supported_spaces(self) -> list[str]:  # type: ignore[override]
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        """The configuration Chroma stores: ``model_name``, ``document_prefix``,
        ``query_prefix`` (no folder: it would not exist on another machine)."""
        return {"model_name": self.model_name, "document_prefix": self.document_prefix,
                "query_prefix": self.query_prefix}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "LocalDocsEmbeddingFunction":
        """The function a stored configuration describes (see :meth:`validate_config`).

        A ``model_path`` from a configuration written by an older version is used only when
        that folder exists here.
        """
        LocalDocsEmbeddingFunction.validate_config(config)
        folder = config.get("model_path")
        return LocalDocsEmbeddingFunction(
            config["model_name"], folder if folder and os.path.isdir(folder) else None,
            document_prefix=config.get("document_prefix"), query_prefix=config.get("query_prefix"))

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """Check a configuration: ``model_name`` a plain file name (no folder), the prefixes a
        string or None, no other keys (``model_path``, written by older versions, is allowed).

        Raises:
            InvalidParameterError: (a ValueError, as Chroma expects) what is wrong, and the value.
        """
        if not isinstance(config, dict):
            raise InvalidParameterError(f"the gpt4all-rag embedding function's config must be a "
                                        f"dict, got {config!r}")
        unknown = sorted(set(config) - {"model_name", "document_prefix", "query_prefix", "model_path"})
        if unknown:
            raise InvalidParameterError(f"unknown keys in the gpt4all-rag embedding function's "
                                        f"config: {unknown}")
        name = config.get("model_name")
        if not isinstance(name, str) or not name or name in (".", "..") or "/" in name \
                or "\\" in name or "\0" in name:
            raise InvalidParameterError(
                f"model_name must be a model's file name such as {DEFAULT_MODEL_NAME!r} "
                f"(no folder: the model directory is found on each machine), got {name!r}")
        for key in ("document_prefix", "query_prefix", "model_path"):
            if config.get(key) is not None and not isinstance(config[key], str):
                raise InvalidParameterError(f"{key} must be a string or None, got {config[key]!r}")

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        """Refuse changing the model or a prefix of an existing collection (its stored vectors
        would no longer match new queries); re-index instead.

        Chroma (1.5) calls this after its backend has stored the new configuration, so the
        error reaches the caller but does not undo the change; LocalDocs itself checks the
        build it recorded in the collection's metadata, which such an update leaves alone.

        Raises:
            InvalidParameterError: the update changes ``model_name``, ``document_prefix`` or
                ``query_prefix``, or the new configuration is invalid.
        """
        self.validate_config(new_config)
        for key in ("model_name", "document_prefix", "query_prefix"):
            if old_config.get(key) != new_config.get(key):
                raise InvalidParameterError(
                    f"the {key} of a LocalDocs collection cannot change ({old_config.get(key)!r} -> "
                    f"{new_config.get(key)!r}): its vectors were computed with the old one; "
                    "re-index the collection (LocalDocs(..., reindex=True) / --reindex)")




def _as_embeddings(vectors: Sequence[Sequence[float]]) -> Embeddings:
    """Chroma's embeddings type: one float32 numpy vector per text."""
    return [np.asarray(v, dtype=np.float32) for v in vectors]
