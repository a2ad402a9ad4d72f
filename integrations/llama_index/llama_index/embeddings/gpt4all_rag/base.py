"""``GPT4AllRagEmbedding``: LlamaIndex embeddings from gpt4all-rag's ``Embed4All``.

Queries and documents get the task prefixes the model was trained with (Nomic Embed:
``search_query`` / ``search_document``; E5: ``query`` / ``passage``; BGE: its query
instruction; MiniLM: none), as :mod:`gpt4all_rag.embedding_rules` records them
(:meth:`gpt4all_rag.Embed4All.resolve_prefix`). Models the rules do not know need
``query_prefix`` and ``document_prefix`` (``""`` for none).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Literal

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

from gpt4all_rag.lazy import Lazy
from gpt4all_rag import Embed4All, errors
from gpt4all_rag.embed4all import DEFAULT_MODEL_NAME, PrefixTask

__all__ = ["DEFAULT_EMBEDDING_MODEL", "GPT4AllRagEmbedding"]

#: The default model: Embed4All's, :data:`gpt4all_rag.embed4all.DEFAULT_MODEL_NAME`.
DEFAULT_EMBEDDING_MODEL = DEFAULT_MODEL_NAME
#: How a caller gives prefixes explicitly, named in the error for a model without known ones.
_HINT = "GPT4AllRagEmbedding(query_prefix=..., document_prefix=...)"


class GPT4AllRagEmbedding(BaseEmbedding):
    """Local text embeddings (Embed4All) with the model's query and document prefixes.

    The model is loaded on first use, or an already loaded :class:`gpt4all_rag.Embed4All` can
    be passed as ``embedder``. Vectors have L2 norm 1 and ``dimensionality`` entries (the
    model's full size unless a Matryoshka model is truncated). Texts longer than the model's
    window are split into overlapping windows whose vectors are averaged
    (``long_text_mode="mean"``) or cut to the first window (``"truncate"``). A batch is packed
    into as few model evaluations as fit, so a larger ``embed_batch_size`` (default 64) is
    faster.

    Thread safety: calls may come from several threads; the engine serialises them.

    Example:
        >>> from llama_index.embeddings.gpt4all_rag import GPT4AllRagEmbedding
        >>> embed = GPT4AllRagEmbedding(model_path="~/models")
        >>> len(embed.get_query_embedding("where is the config file?"))  # doctest: +SKIP
        384

    Every embedding method (they load the model on first use) raises gpt4all-rag's errors:

    Raises:
        ModelNotFoundError: (a FileNotFoundError) the model file or ``model_path`` is missing.
        ModelLoadError: (a ValueError) the file is not a loadable GGUF model.
        UnsupportedOperationError: (a ValueError) the model is not an embedding model.
        InvalidParameterError: (a ValueError) an empty text, a prefix the model does not take,
            an unknown model without explicit prefixes, or a bad ``dimensionality``.
        ModelClosedError: the embedding model was closed.
    """

    model_name: str = Field(
        default=DEFAULT_EMBEDDING_MODEL,
        description="Embedding model file (or catalogue name, or absolute path).")
    embed_batch_size: int = Field(
        default=64, gt=0, le=2048, description="Texts per call to the engine.")
    model_path: str | None = Field(
        default=None, description="Directory holding the model; None: GPT4All's default.")
    allow_download: bool = Field(
        default=True, description="Allow downloading a catalogue model that is not present.")
    n_threads: int | None = Field(default=None, gt=0, description="CPU threads; None: automatic.")
    device: str | None = Field(default=None, description="'cpu' (None), 'gpu', 'cuda', ...")
    query_prefix: str | None = Field(
        default=None,
        description="Task prefix of queries (without the ': '); None: the model's own.")
    document_prefix: str | None = Field(
        default=None,
        description="Task prefix of documents (without the ': '); None: the model's own.")
    dimensionality: int | None = Field(
        default=None, gt=0, description="Output size of Matryoshka models; None: full size.")
    long_text_mode: Literal["mean", "truncate"] = Field(
        default="mean", description="How texts longer than the model's window are embedded.")

    _embedder: Lazy[Embed4All] = PrivateAttr()

    def __init__(self, model_name: str | None = None, *, embedder: Embed4All | None = None,
                 **kwargs: Any) -> None:
        """Configure the embedding model; it is loaded on first use.

        Args:
            model_name: the GGUF embedding model; default :data:`DEFAULT_EMBEDDING_MODEL`.
            embedder: an already loaded ``Embed4All`` to use; the caller keeps ownership
                (``close()`` does not free it).
            **kwargs: the fields documented on the class, and LlamaIndex's ``BaseEmbedding``
                fields (``callback_manager``, ``num_workers``, ``embeddings_cache``).

        Raises:
            pydantic.ValidationError: (a ValueError) a field out of range.
            InvalidParameterError: ``embedder`` is not an ``Embed4All``.
        """
        if embedder is not None and not isinstance(embedder, Embed4All):
            raise errors.InvalidParameterError(
                f"embedder must be a gpt4all_rag.Embed4All, got {type(embedder).__name__}")
        if model_name is None and embedder is not None:
            model_name = embedder.path.name
        if model_name is not None:
            kwargs["model_name"] = os.fspath(model_name)
        if kwargs.get("model_path") is not None:
            kwargs["model_path"] = os.path.expanduser(os.fspath(kwargs["model_path"]))
        super().__init__(**kwargs)
        self._embedder = Lazy(self._load, free=Embed4All.close,
                              what=f"this GPT4AllRagEmbedding ({self.model_name})")
        if embedder is not None:
            self._embedder.set(embedder)

    @classmethod
    def class_name(cls) -> str:
        return "GPT4AllRagEmbedding"

    # -- model lifetime -------------------------------------------------------------------
    @property
    def client(self) -> Embed4All:
        """The underlying ``Embed4All``, loaded on first access (thread-safe).

        Raises:
            ModelNotFoundError, ModelLoadError, UnsupportedOperationError: as ``Embed4All()``.
            ModelClosedError: :meth:`close` was called.
        """
        return self._embedder.get()

    def _load(self) -> Embed4All:
        return Embed4All(self.model_name, n_threads=self.n_threads, device=self.device,
                         model_path=self.model_path, allow_download=self.allow_download)

    def close(self) -> None:
        """Free the model (unless it was passed in as ``embedder``). Idempotent."""
        self._embedder.close()

    # -- prefixes ---------------------------------------------------------------------------
    def resolved_prefixes(self) -> tuple[str, str]:
        """The ``(query, document)`` prefixes in use (loads the model).

        Raises:
            InvalidParameterError: the model is unknown and a prefix was not given, or a
                given prefix is not one the model takes.
        """
        return self._prefix("query"), self._prefix("document")

    def _prefix(self, task: PrefixTask) -> str:
        own = self.query_prefix if task == "query" else self.document_prefix
        return self.client.resolve_prefix(own, task, hint=_HINT)

    def _embed(self, texts: list[str], *, query: bool) -> list[Embedding]:
        return self.client.embed(
            list(texts), prefix=self._prefix("query" if query else "document"),
            dimensionality=self.dimensionality, long_text_mode=self.long_text_mode)

    # -- BaseEmbedding ------------------------------------------------------------------------
    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embed([query], query=True)[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embed([text], query=False)[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embed(texts, query=False)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)
