"""The model catalogue, and retrieval and download of model files.

This module holds what the seed SDK's ``GPT4All.list_models()``, ``GPT4All.retrieve_model()`` and
``GPT4All.download_model()`` do; :mod:`gpt4all_rag.gpt4all` delegates to it.
:func:`download_model` and its machinery (``.part`` file and its lock, resumed requests,
retries, progress, verification) live in the private module :mod:`gpt4all_rag.models.download` and
are re-exported here.

Beyond the seed:

* The catalogue (GPT4All's ``models3.json`` format: a JSON list of objects with at least a
  ``filename``) is cached on disk. A fresh cache is used without network; when the network
  fails, a stale cache is used with a logged warning.
* A model file that is already on disk is used without any network access, so cached models
  work offline even with ``allow_download=True``.
* Downloads resume after a dropped connection (HTTP ``Range``), restart from zero when the server
  ignores ranges, retry a bounded number of times, time out on a stalled server, verify size and
  MD5, and only ever place a complete, verified file under the final name (``os.replace`` of a
  ``.part`` file after ``fsync``).
* Model names that would escape the model directory are refused.

Environment variables:

``GPT4ALL_MODEL_PATH``
    Directory of model files (default ``~/.cache/gpt4all/``, as in the seed; the platform's
    cache folder, ``$XDG_CACHE_HOME`` on Linux, see :mod:`gpt4all_rag.paths`).
``GPT4ALL_RAG_CATALOG_URL``
    URL of the catalogue (default :data:`DEFAULT_CATALOG_URL`).
``GPT4ALL_RAG_CACHE``
    Base directory of gpt4all-rag's caches (default ``~/.cache/gpt4all-rag``, likewise); the
    catalogue is cached in its ``catalog`` subdirectory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TypeAlias

import requests

from .. import paths
from .download import (
    _MD5_RE,
    BLOCK_SIZE,  # noqa: F401 - re-exported: download_model's documented block size
    DEFAULT_DOWNLOAD_URL,  # re-exported (public)
    _check_http_url,
    _check_positive,
    _remove_quietly,
    _safe_name,
    download_model,  # re-exported (public)
)
from .._progress import show_progress
from ..errors import DownloadError, ModelNotFoundError

__all__ = [
    "DEFAULT_CATALOG_URL",
    "DEFAULT_DOWNLOAD_URL",
    "ConfigType",
    "append_extension_if_missing",
    "catalog_cache_dir",
    "default_model_directory",
    "download_model",
    "find_model_config",
    "list_models",
    "locate",
    "resolve_catalog_url",
    "retrieve_model",
]

logger = logging.getLogger("gpt4all_rag.models.catalogue")

ConfigType: TypeAlias = dict[str, Any]
"""A catalogue entry (``models3.json`` fields such as ``name``, ``filename``, ``filesize``,
``md5sum``, ``url``, ``chatTemplate``, ``systemMessage``) plus ``"path"`` after retrieval."""

_PathLike: TypeAlias = "str | os.PathLike[str]"

DEFAULT_CATALOG_URL = "https://gpt4all.io/models/models3.json"
"""The seed's catalogue URL; ``GPT4ALL_RAG_CATALOG_URL`` overrides it."""

_CATALOG_MAX_BYTES = 16 * 2**20  # a catalogue is ~100 KB; refuse to buffer a model by mistake
_CACHE_FORMAT = 1


# --------------------------------------------------------------------------------------------
# Locations and names
# --------------------------------------------------------------------------------------------


def default_model_directory() -> Path:
    """Return the directory where model files live by default.

    Returns:
        ``$GPT4ALL_MODEL_PATH`` if set and not empty (``~`` expanded), else ``gpt4all`` in the
        platform's cache folder: ``$XDG_CACHE_HOME/gpt4all`` on Linux, by default
        ``~/.cache/gpt4all`` (the seed's ``DEFAULT_MODEL_DIRECTORY``); see
        :func:`gpt4all_rag.paths.model_directory`. The directory is not created here.
    """
    return paths.model_directory()


def resolve_catalog_url(url: str | None = None) -> str:
    """Return the catalogue URL to use.

    Args:
        url: an explicit URL, or ``None`` for ``$GPT4ALL_RAG_CATALOG_URL`` if set, else
            :data:`DEFAULT_CATALOG_URL`.

    Returns:
        The URL.
    """
    return url or os.environ.get("GPT4ALL_RAG_CATALOG_URL") or DEFAULT_CATALOG_URL


def catalog_cache_dir(cache_dir: _PathLike | None = None) -> Path:
    """Return the directory where downloaded catalogues are cached.

    Args:
        cache_dir: an explicit directory, or ``None`` for ``$GPT4ALL_RAG_CACHE/catalog`` if the
            variable is set, else ``catalog`` in gpt4all-rag's platform cache folder
            (``$XDG_CACHE_HOME/gpt4all-rag/catalog``, by default
            ``~/.cache/gpt4all-rag/catalog``).

    Returns:
        The directory (not created here).
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return paths.cache_directory() / "catalog"


def append_extension_if_missing(model_name: str) -> str:
    """Append ``.gguf`` to a model name unless it ends in ``.gguf`` or ``.bin`` (as the seed).

    Args:
        model_name: a model file name with or without extension.

    Returns:
        The file name.
    """
    if not model_name.endswith((".bin", ".gguf")):
        model_name += ".gguf"
    return model_name


def _model_filename(model_name: object) -> str:
    """Validate a model name and append ``.gguf`` if missing."""
    return append_extension_if_missing(_safe_name(model_name))


# --------------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------------


def _validated_catalog(data: object, source: str) -> list[ConfigType]:
    """Check the models3.json shape; entries without a string ``filename`` are dropped."""
    if not isinstance(data, list):
        raise DownloadError(
            f"model catalogue from {source} is not a JSON list (got {type(data).__name__})"
        )
    entries: list[ConfigType] = []
    for index, entry in enumerate(data):
        if isinstance(entry, dict) and isinstance(entry.get("filename"), str) and entry["filename"]:
            entries.append(entry)
        else:
            logger.warning("skipping catalogue entry %d from %s: no 'filename'", index, source)
    return entries


def _cache_file(cache_dir: Path, url: str) -> Path:
    return cache_dir / f"models-{hashlib.sha256(url.encode()).hexdigest()[:16]}.json"


def _read_cache(path: Path, url: str) -> tuple[list[ConfigType], float] | None:
    """Return ``(entries, fetched_at)`` from a cache file, or ``None`` if absent or unusable."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable catalogue cache %s: %s", path, exc)
        return None
    fetched_at = data.get("fetched_at") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("format") != _CACHE_FORMAT
        or data.get("url") != url
        or isinstance(fetched_at, bool)
        or not isinstance(fetched_at, (int, float))
    ):
        logger.warning("ignoring catalogue cache %s: unexpected content", path)
        return None
    try:
        return _validated_catalog(data.get("models"), str(path)), float(fetched_at)
    except DownloadError as exc:
        logger.warning("ignoring catalogue cache %s: %s", path, exc)
        return None


def _write_cache(path: Path, url: str, entries: list[ConfigType]) -> None:
    """Write the cache atomically (temporary file, fsync, ``os.replace``); warn on failure."""
    payload = {"format": _CACHE_FORMAT, "url": url, "fetched_at": time.time(), "models": entries}
    tmp_name: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=".catalog-", suffix=".tmp", delete=False
        ) as tmp:
            tmp_name = tmp.name
            json.dump(payload, tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        logger.warning("cannot write catalogue cache %s: %s", path, exc)
    finally:
        if tmp_name is not None:
            _remove_quietly(Path(tmp_name))


def _fetch_catalog(url: str, timeout_s: float) -> list[ConfigType]:
    """GET and validate a catalogue; every failure is a :class:`DownloadError`."""
    try:
        with requests.get(
            url, timeout=timeout_s, stream=True, headers={"Accept": "application/json"}
        ) as response:
            if response.status_code != 200:
                raise DownloadError(
                    f"HTTP {response.status_code} {response.reason} for model catalogue {url}"
                )
            body = bytearray()
            for block in response.iter_content(65536):
                body += block
                if len(body) > _CATALOG_MAX_BYTES:
                    raise DownloadError(
                        f"model catalogue {url} is larger than {_CATALOG_MAX_BYTES} bytes: "
                        "is the URL right?"
                    )
    except requests.RequestException as exc:
        raise DownloadError(f"cannot fetch model catalogue {url}: {exc}") from exc
    try:
        data = json.loads(bytes(body))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise DownloadError(f"model catalogue {url} is not valid JSON: {exc}") from exc
    return _validated_catalog(data, url)


def list_models(
    url: str | None = None,
    *,
    cache_dir: _PathLike | None = None,
    max_age_s: float = 86400,
    timeout_s: float = 30,
) -> list[ConfigType]:
    """Return the model catalogue (the seed's ``GPT4All.list_models()``).

    The catalogue is a JSON list of objects in GPT4All's ``models3.json`` format; entries
    without a string ``filename`` are dropped with a logged warning. A successful download is
    cached on disk (written atomically). A cache younger than ``max_age_s`` is returned without
    network access; when fetching fails, an older cache is returned and a warning is logged.

    Args:
        url: catalogue URL; ``None`` means :func:`resolve_catalog_url`
            (``$GPT4ALL_RAG_CATALOG_URL`` or :data:`DEFAULT_CATALOG_URL`).
        cache_dir: cache directory; ``None`` means :func:`catalog_cache_dir`.
        max_age_s: age in seconds up to which the cache is used without asking the network;
            ``0`` always asks (a stale cache is still the fallback).
        timeout_s: connect and read timeout of the request, in seconds.

    Returns:
        The catalogue entries, as fresh dicts the caller may modify.

    Raises:
        DownloadError: the catalogue cannot be fetched (connection error, timeout, HTTP status
            other than 200, not a JSON list) and no cached copy exists.
        InvalidParameterError: ``max_age_s`` is negative, ``timeout_s`` not positive, or ``url``
            not an http(s) URL.
    """
    max_age_s = _check_positive("max_age_s", max_age_s, allow_zero=True)
    timeout_s = _check_positive("timeout_s", timeout_s)
    url = _check_http_url(resolve_catalog_url(url))
    cache_path = _cache_file(catalog_cache_dir(cache_dir), url)
    cached = _read_cache(cache_path, url)
    if cached is not None:
        entries, fetched_at = cached
        age_s = time.time() - fetched_at
        if 0 <= age_s < max_age_s:
            logger.debug("using catalogue cache %s (%.0f s old)", cache_path, age_s)
            return entries
    try:
        entries = _fetch_catalog(url, timeout_s)
    except DownloadError as exc:
        if cached is None:
            raise DownloadError(
                f"{exc}; no cached copy of the catalogue in {cache_path.parent}. Check the "
                "network, or set GPT4ALL_RAG_CATALOG_URL to a reachable catalogue"
            ) from exc
        logger.warning(
            "%s; using the cached catalogue from %s (%.0f s old)",
            exc,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(cached[1])),
            time.time() - cached[1],
        )
        return cached[0]
    _write_cache(cache_path, url, entries)
    return entries


def find_model_config(
    model_filename: str,
    url: str | None = None,
    *,
    cache_dir: _PathLike | None = None,
    max_age_s: float = 86400,
    timeout_s: float = 30,
    offline: bool = False,
) -> ConfigType | None:
    """Return the catalogue entry of one model file.

    Args:
        model_filename: model file name; ``.gguf`` is appended if missing.
        url: catalogue URL, as in :func:`list_models`.
        cache_dir: cache directory, as in :func:`list_models`.
        max_age_s: cache age limit in seconds, as in :func:`list_models`.
        timeout_s: request timeout in seconds, as in :func:`list_models`.
        offline: if True, only a cached catalogue (fresh or stale) is consulted and the network
            is never used; without a cache the result is ``None``.

    Returns:
        A copy of the first entry whose ``filename`` matches, or ``None``.

    Raises:
        DownloadError: (not ``offline``) the catalogue cannot be fetched and no cache exists.
        InvalidParameterError: the name is not a plain file name, or a parameter is out of
            range as in :func:`list_models`.
    """
    filename = _model_filename(model_filename)
    if offline:
        url = _check_http_url(resolve_catalog_url(url))
        cached = _read_cache(_cache_file(catalog_cache_dir(cache_dir), url), url)
        entries = cached[0] if cached is not None else []
    else:
        entries = list_models(url, cache_dir=cache_dir, max_age_s=max_age_s, timeout_s=timeout_s)
    return next((dict(e) for e in entries if e["filename"] == filename), None)


# --------------------------------------------------------------------------------------------
# Retrieval
# --------------------------------------------------------------------------------------------


def _parse_size(value: object) -> int | None:
    """Catalogue ``filesize`` (bytes, usually a string) as an int, or ``None`` if unusable."""
    if value is None or isinstance(value, bool):
        return None
    try:
        size = int(str(value).strip())
    except ValueError:
        logger.warning("ignoring unusable catalogue filesize %r", value)
        return None
    return size if size >= 0 else None


def locate(model_name: str, model_path: _PathLike | None = None, allow_download: bool = True,
           verbose: bool = False, *, default_directory: _PathLike | None = None) -> ConfigType:
    """:func:`retrieve_model`, also for a path: a model given as the absolute path of an
    existing file (and no ``model_path``) is that file. What ``GPT4All`` and ``Embed4All`` do
    with their ``model_name``.

    Raises:
        As :func:`retrieve_model`.
    """
    model_file = Path(os.fspath(model_name)).expanduser()
    if model_path is None and model_file.is_absolute() and model_file.is_file():
        model_name, model_path = model_file.name, model_file.parent
    return retrieve_model(model_name, model_path, allow_download, verbose,
                          default_directory=default_directory)


def retrieve_model(
    model_name: str,
    model_path: _PathLike | None = None,
    allow_download: bool = True,
    verbose: bool = False,
    *,
    default_directory: _PathLike | None = None,
    catalog_url: str | None = None,
    cache_dir: _PathLike | None = None,
    download_url: str | None = None,
) -> ConfigType:
    """Find a model file, downloading it if it is missing (the seed's ``retrieve_model``).

    A model file that already exists is used without network access; with ``allow_download``
    its catalogue entry comes from the on-disk catalogue cache (fresh or stale) if there is
    one, so cached models work offline. A missing file is downloaded with
    :func:`download_model`, checked against the catalogue's ``filesize`` and ``md5sum``.

    Args:
        model_name: model file name; ``.gguf`` is appended unless it ends in ``.gguf`` or
            ``.bin``. Must be a plain file name (no directories).
        model_path: directory holding the model; ``None`` means ``default_directory``, created
            if missing.
        allow_download: download a missing model and use the catalogue. If False, the result
            holds only ``"path"`` (as in the seed).
        verbose: print what happens (found file, download) to stderr. The download's
            progress bars are shown when ``verbose``, and otherwise by the rule of every
            ``progress`` argument: in a Jupyter kernel and when stderr is a terminal.
        default_directory: directory used when ``model_path`` is ``None``; ``None`` means
            :func:`default_model_directory`. (``GPT4All`` passes its module's
            ``DEFAULT_MODEL_DIRECTORY`` here.)
        catalog_url: catalogue URL, as in :func:`list_models`.
        cache_dir: catalogue cache directory, as in :func:`list_models`.
        download_url: download a missing file from this URL without consulting the catalogue
            (so without size or MD5 check); ``None`` uses the catalogue's ``url``, else
            :data:`DEFAULT_DOWNLOAD_URL`.

    Returns:
        The catalogue entry of the model (empty if it has none) plus ``"path"``, the model
        file's path as a str.

    Raises:
        InvalidParameterError: ``model_name`` is not a plain file name (path separators,
            ``..``, absolute path, empty), or ``download_url`` is not an http(s) URL.
        ModelNotFoundError: ``model_path`` does not exist or is not a directory, the default
            directory cannot be created, or the file is missing and ``allow_download`` is
            False.
        DownloadError: the file is missing and cannot be downloaded or verified, its
            catalogue entry has an unusable ``url`` or ``md5sum``, or the catalogue is needed
            but unreachable and not cached.
    """
    model_filename = _model_filename(model_name)
    if model_path is None:
        directory = Path(
            default_model_directory() if default_directory is None else default_directory
        ).expanduser()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelNotFoundError(
                f"Failed to create model download directory {str(directory)!r}: {exc}"
            ) from exc
    else:
        directory = Path(model_path).expanduser()
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise ModelNotFoundError(f"Model directory {what}: {str(directory)!r}")

    model_dest = directory / model_filename
    config: ConfigType = {}
    if model_dest.is_file():
        if allow_download:
            entry = find_model_config(
                model_filename, catalog_url, cache_dir=cache_dir, offline=True
            )
            config.update(entry or {})
        config["path"] = str(model_dest)
        if verbose:
            print(f"Found model file at {str(model_dest)!r}", file=sys.stderr)
        return config
    if model_dest.exists():
        raise ModelNotFoundError(f"Model path exists but is not a file: {str(model_dest)!r}")
    if not allow_download:
        raise ModelNotFoundError(f"Model file does not exist: {str(model_dest)!r}")

    if download_url is None:
        entry = find_model_config(model_filename, catalog_url, cache_dir=cache_dir)
        if entry is None:
            logger.info("%s is not in the catalogue; trying the default URL", model_filename)
        config.update(entry or {})
    url = download_url or config.get("url") or None
    md5 = config.get("md5sum") or None
    if download_url is None and (
        (url is not None and not isinstance(url, str))
        or (md5 is not None and not (isinstance(md5, str) and _MD5_RE.fullmatch(md5)))
    ):
        raise DownloadError(
            f"the catalogue entry of {model_filename} is unusable: url={url!r}, md5sum={md5!r}"
        )
    config["path"] = str(
        download_model(
            model_filename,
            directory,
            verbose=verbose,
            url=url,
            expected_size=_parse_size(config.get("filesize")),
            expected_md5=md5,
            progress=True if verbose else show_progress(None),
        )
    )
    return config
