"""The exception hierarchy of gpt4all-rag.

Every error the package raises on purpose derives from :class:`GPT4AllRagError`. Where the seed
GPT4All SDK raised a builtin type (``ValueError``, ``FileNotFoundError``, ``RuntimeError``), the
subclass also derives from that builtin, so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import builtins


class GPT4AllRagError(Exception):
    """Base class of every error raised on purpose by gpt4all-rag."""


class NativeLibraryError(GPT4AllRagError, OSError):
    """The native library cannot be found or loaded, or its ABI version does not match."""


class ModelLoadError(GPT4AllRagError, ValueError):
    """A model file exists but cannot be loaded: not GGUF, truncated, unsupported architecture."""


class ModelNotFoundError(GPT4AllRagError, builtins.FileNotFoundError):
    """A model file (or the directory that should hold it) does not exist."""


class ModelClosedError(GPT4AllRagError, RuntimeError):
    """The model was used after ``close()``."""


class InvalidParameterError(GPT4AllRagError, ValueError):
    """A parameter is out of its documented range."""


class ContextOverflowError(GPT4AllRagError, ValueError):
    """The input does not fit into the model's context window."""


class ChatTemplateError(GPT4AllRagError, ValueError):
    """A chat template is missing, malformed, or tried something the sandbox forbids."""


class UnsupportedOperationError(GPT4AllRagError, ValueError):
    """The model cannot do what was asked (e.g. generate text with an embedding model)."""


class GenerationError(GPT4AllRagError, RuntimeError):
    """llama.cpp failed while evaluating tokens."""


class GrammarError(GPT4AllRagError, ValueError):
    """A GBNF grammar or JSON schema for constrained generation is invalid."""


class ConcurrentUseError(GPT4AllRagError, RuntimeError):
    """A thread tried to use a model while its own open streaming generations hold every
    sequence of it (it would wait for itself)."""


class ModelBusyError(GPT4AllRagError, RuntimeError):
    """Every sequence of a model is busy and the caller could not wait: ``max_waiting`` callers
    already waited (``reason == "queue_full"``) or ``wait_timeout`` passed (``"timeout"``)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class CancellationError(GPT4AllRagError):
    """Work was cancelled by a callback (the seed's ``CancellationError``)."""


class DownloadError(GPT4AllRagError, ValueError):
    """A download failed: HTTP error, broken connection, wrong size or checksum, stall."""


class StoreError(GPT4AllRagError):
    """Base class of LocalDocs index and store errors."""


class CollectionMismatchError(StoreError, ValueError):
    """A collection was built with a different embedding model, dimensionality or chunking."""


class CollectionNotFoundError(StoreError, LookupError):
    """The named LocalDocs collection does not exist."""


class DocumentLoadError(GPT4AllRagError, ValueError):
    """A document cannot be read (binary, corrupt, too large, unreadable)."""


class DatasetError(GPT4AllRagError, ValueError):
    """A BEIR data folder is missing a file or holds a malformed one."""


__all__ = [
    "CancellationError",
    "ChatTemplateError",
    "CollectionMismatchError",
    "CollectionNotFoundError",
    "ConcurrentUseError",
    "ModelBusyError",
    "ContextOverflowError",
    "DatasetError",
    "DocumentLoadError",
    "DownloadError",
    "GPT4AllRagError",
    "GenerationError",
    "GrammarError",
    "InvalidParameterError",
    "ModelClosedError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NativeLibraryError",
    "StoreError",
    "UnsupportedOperationError",
]
