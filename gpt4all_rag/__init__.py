"""gpt4all-rag: the GPT4All Python SDK on a current llama.cpp, with LocalDocs on ChromaDB.

Public names: :class:`GPT4All`, :class:`Embed4All`, and the exceptions of
:mod:`gpt4all_rag.errors`. Logging goes to the ``gpt4all_rag`` logger (silent unless the
application configures logging).
"""

import logging as _logging

from .embed4all import Embed4All
from .errors import (
    CancellationError,
    ChatTemplateError,
    ContextOverflowError,
    DownloadError,
    GPT4AllRagError,
    ModelBusyError,
    ModelClosedError,
    ModelLoadError,
    ModelNotFoundError,
    UnsupportedOperationError,
)
from .gpt4all import GPT4All

_logging.getLogger("gpt4all_rag").addHandler(_logging.NullHandler())

__all__ = [
    "CancellationError",
    "ChatTemplateError",
    "ContextOverflowError",
    "DownloadError",
    "Embed4All",
    "GPT4All",
    "GPT4AllRagError",
    "ModelBusyError",
    "ModelClosedError",
    "ModelLoadError",
    "ModelNotFoundError",
    "UnsupportedOperationError",
]
