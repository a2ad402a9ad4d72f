"""``GPT4AllEmbeddings``: LangChain embeddings on a local GGUF embedding model (Embed4All)."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from gpt4all_rag.lazy import Lazy
from gpt4all_rag import Embed4All
from gpt4all_rag.embed4all import DEFAULT_MODEL_NAME

from ._common import run_blocking

__all__ = ["GPT4AllEmbeddings"]


class GPT4AllEmbeddings(BaseModel, Embeddings):
    """Text embeddings from a local GGUF embedding model, through gpt4all-rag's ``Embed4All``.

    Documents and queries get the task prefixes their model was trained with (Nomic Embed:
    ``search_document:`` / ``search_query:``; BGE: a query instruction; E5: ``passage:`` /
    ``query:``; MiniLM: none), as ``Embed4All`` knows them from the model's name
    (:meth:`gpt4all_rag.Embed4All.resolve_prefix`). For a model it does not know, set
    ``document_prefix`` and ``query_prefix`` (``""`` for none).

    Example:
        .. code-block:: python

            from langchain_gpt4all_rag import GPT4AllEmbeddings

            emb = GPT4AllEmbeddings(model="all-MiniLM-L6-v2.gguf2.f16.gguf")
            vectors = emb.embed_documents(["first text", "second text"])
            query = emb.embed_query("what is in the first text?")

    Fields:
        model: GGUF embedding model file name (in ``model_path``) or path; default
            :data:`gpt4all_rag.embed4all.DEFAULT_MODEL_NAME`. ``model_name=`` is accepted as
            another name for it (langchain-community's ``GPT4AllEmbeddings`` calls it that).
        model_path: directory of the model (None: ``~/.cache/gpt4all``).
        allow_download: download a missing catalogue model (default True).
        n_threads: CPU threads (None: a default). device: as for ``ChatGPT4All``.
        n_ctx: context window of the embedding model in tokens (None: the engine's default);
            longer texts are embedded in windows and averaged (``long_text_mode``).
        document_prefix, query_prefix: task prefixes without the trailing colon; None uses the
            model's known prefixes (required for models without a known rule). For a known
            model, only prefixes that model was trained with are accepted.
        dimensionality: output size for Matryoshka models (Nomic Embed v1.5: 64..768);
            None means the full size.
        long_text_mode: ``"mean"`` (average the windows of a long text, default) or
            ``"truncate"`` (embed the first window only).
        batch_size: texts per engine call in ``embed_documents`` (the engine packs each call
            into as few evaluations as fit); bounds memory for very long lists.

    Vectors are lists of floats with L2 norm 1. Weights load on the first call. Thread safety:
    calls are serialised by the engine; the async methods run in a worker thread.

    Raises:
        pydantic.ValidationError: (a ValueError) an unknown field, a bad value, or both
            ``model`` and ``model_name`` with different values.

    Raises (on calls):
        gpt4all_rag.ModelNotFoundError, gpt4all_rag.ModelLoadError: as for loading any model.
        gpt4all_rag.UnsupportedOperationError: the model is not an embedding model.
        gpt4all_rag.errors.InvalidParameterError: (a ValueError) an empty text, a prefix the
            model does not take, an unknown model's missing prefix, a bad dimensionality.
    """

    model_config = ConfigDict(protected_namespaces=(), arbitrary_types_allowed=True,
                              extra="forbid")

    model: str = DEFAULT_MODEL_NAME
    model_path: str | None = None
    allow_download: bool = True
    n_threads: int | None = Field(default=None, gt=0)
    device: str | None = None
    n_ctx: int | None = Field(default=None, gt=0)
    document_prefix: str | None = None
    query_prefix: str | None = None
    dimensionality: int | None = Field(default=None, gt=0)
    long_text_mode: Literal["mean", "truncate"] = "mean"
    batch_size: int = Field(default=64, gt=0)

    _embedder: Lazy[Embed4All] = PrivateAttr()

    def model_post_init(self, context: Any) -> None:
        self._embedder = Lazy(self._load, free=Embed4All.close)

    @model_validator(mode="before")
    @classmethod
    def _model_name_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "model_name" in data:
            data = dict(data)
            name = data.pop("model_name")
            if "model" in data and data["model"] != name:
                raise ValueError(f"model={data['model']!r} and model_name={name!r} name different "
                                 "models; give one of them")
            data["model"] = name
        return data

    @property
    def embedder(self) -> Embed4All:
        """The loaded :class:`gpt4all_rag.Embed4All` (loads the model on first use)."""
        return self._embedder.get()

    def _load(self) -> Embed4All:
        extra: dict[str, Any] = {} if self.n_ctx is None else {"n_ctx": self.n_ctx}
        return Embed4All(self.model, model_path=self.model_path, allow_download=self.allow_download,
                         n_threads=self.n_threads, device=self.device, **extra)

    def close(self) -> None:
        """Free the model. The next call loads it again."""
        self._embedder.reset()

    def _prefix(self, task: Literal["document", "query"]) -> str:
        own = self.document_prefix if task == "document" else self.query_prefix
        return self.embedder.resolve_prefix(
            own, task, hint="GPT4AllEmbeddings(document_prefix=..., query_prefix=...)")

    def _embed(self, texts: list[str], prefix: str) -> list[list[float]]:
        embedder = self.embedder
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            out.extend(embedder.embed(texts[start:start + self.batch_size], prefix=prefix,
                                      dimensionality=self.dimensionality,
                                      long_text_mode=self.long_text_mode))
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents with the document prefix.

        Args:
            texts: the documents (each non-empty).

        Returns:
            One vector per text, in order (an empty list for no texts).
        """
        if not texts:
            return []
        return self._embed(list(texts), self._prefix("document"))

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query with the query prefix.

        Args:
            text: the query (non-empty).

        Returns:
            The vector.
        """
        return self._embed([text], self._prefix("query"))[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`, run in a worker thread."""
        return await run_blocking(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`, run in a worker thread."""
        return await run_blocking(self.embed_query, text)
