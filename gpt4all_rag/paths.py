"""Where gpt4all-rag keeps files: model, cache and data folders.

Each folder is, in order of precedence:

1. its environment variable, when set and not empty (``~`` expanded);
2. the platform's convention, through :mod:`platformdirs`: on Linux the XDG base directories
   (``$XDG_CACHE_HOME``, default ``~/.cache``; ``$XDG_DATA_HOME``, default
   ``~/.local/share``), on macOS ``~/Library/Caches`` and ``~/Library/Application Support``,
   on Windows ``%LOCALAPPDATA%``.

============================  ===========================  =====================================
folder                        environment variable         platform default (Linux, no XDG_*)
============================  ===========================  =====================================
:func:`model_directory`       ``GPT4ALL_MODEL_PATH``       ``~/.cache/gpt4all`` (the seed's)
:func:`cache_directory`       ``GPT4ALL_RAG_CACHE``        ``~/.cache/gpt4all-rag``
:func:`pypi_models_directory` ``G4R_PYPI_MODELS``          ``~/.cache/gpt4all-rag/pypi-models``
:func:`localdocs_directory`   ``GPT4ALL_RAG_LOCALDOCS_DIR`` ``~/.local/share/gpt4all-rag/localdocs``
:func:`bm25_cache_directory`  ``GPT4ALL_RAG_BM25_CACHE``   ``~/.cache/gpt4all-rag/bm25``
============================  ===========================  =====================================

The model folder keeps the seed SDK's name, ``gpt4all``: files GPT4All itself downloaded are
found. Where the platform's cache folder is not ``~/.cache`` (macOS, Windows) and the seed's
``~/.cache/gpt4all`` exists while the platform's does not, the seed's is used.

Nothing here creates a folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = [
    "expand",
    "BM25_CACHE_ENV", "CACHE_ENV", "FILES_ENV", "LOCALDOCS_ENV", "MODEL_PATH_ENV", "PYPI_MODELS_ENV",
    "cache_directory", "bm25_cache_directory", "files_directory", "localdocs_directory", "model_directory",
    "pypi_models_directory",
]

APP = "gpt4all-rag"
MODEL_PATH_ENV = "GPT4ALL_MODEL_PATH"
CACHE_ENV = "GPT4ALL_RAG_CACHE"
PYPI_MODELS_ENV = "G4R_PYPI_MODELS"
LOCALDOCS_ENV = "GPT4ALL_RAG_LOCALDOCS_DIR"
BM25_CACHE_ENV = "GPT4ALL_RAG_BM25_CACHE"
FILES_ENV = "GPT4ALL_RAG_FILES_DIR"


def expand(path: str | os.PathLike[str]) -> Path:
    """``path`` as a person means it: ``~`` and ``~user`` expanded, then ``$VAR`` and
    ``${VAR}`` (:func:`os.path.expanduser`, :func:`os.path.expandvars`; unknown variables are
    left as written, as a shell without ``set -u`` would not)."""
    return Path(os.path.expandvars(os.path.expanduser(os.fspath(path))))


def _env(name: str) -> Path | None:
    value = os.environ.get(name)
    return expand(value) if value else None


def model_directory() -> Path:
    """The folder of model files: ``$GPT4ALL_MODEL_PATH``, else the user cache folder's
    ``gpt4all`` (``$XDG_CACHE_HOME/gpt4all``, by default ``~/.cache/gpt4all``)."""
    env = _env(MODEL_PATH_ENV)
    if env is not None:
        return env
    platform = platformdirs.user_cache_path("gpt4all", appauthor=False)
    legacy = Path.home() / ".cache" / "gpt4all"
    if platform != legacy and not platform.exists() and legacy.is_dir():
        return legacy
    return platform


def cache_directory() -> Path:
    """gpt4all-rag's cache folder (the model catalogue lives in its ``catalog``):
    ``$GPT4ALL_RAG_CACHE``, else ``$XDG_CACHE_HOME/gpt4all-rag`` (``~/.cache/gpt4all-rag``)."""
    return _env(CACHE_ENV) or platformdirs.user_cache_path(APP, appauthor=False)


def pypi_models_directory() -> Path:
    """Where models fetched from PyPI packages live: ``$G4R_PYPI_MODELS``, else
    ``$XDG_CACHE_HOME/gpt4all-rag/pypi-models`` (``~/.cache/gpt4all-rag/pypi-models``)."""
    return _env(PYPI_MODELS_ENV) or platformdirs.user_cache_path(APP, appauthor=False) / "pypi-models"


def localdocs_directory() -> Path:
    """The embedded Chroma database of LocalDocs: ``$GPT4ALL_RAG_LOCALDOCS_DIR``, else
    ``$XDG_DATA_HOME/gpt4all-rag/localdocs`` (``~/.local/share/gpt4all-rag/localdocs``)."""
    return _env(LOCALDOCS_ENV) or platformdirs.user_data_path(APP, appauthor=False) / "localdocs"


def files_directory() -> Path:
    """Files uploaded to the server (``/v1/files``): ``$GPT4ALL_RAG_FILES_DIR``, else
    ``$XDG_DATA_HOME/gpt4all-rag/files`` (``~/.local/share/gpt4all-rag/files``)."""
    return _env(FILES_ENV) or platformdirs.user_data_path(APP, appauthor=False) / "files"


def bm25_cache_directory() -> Path:
    """LocalDocs' persisted keyword indexes (:mod:`gpt4all_rag.localdocs.keyword_cache`):
    ``$GPT4ALL_RAG_BM25_CACHE``, else :func:`cache_directory`'s ``bm25``
    (``~/.cache/gpt4all-rag/bm25``). Always on the local machine, also for collections on a
    Chroma server."""
    return _env(BM25_CACHE_ENV) or cache_directory() / "bm25"
