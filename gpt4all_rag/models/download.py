"""Resumable HTTP download of one model file into a ``.part`` file (private).

:func:`download_model` (public as :func:`gpt4all_rag.models.catalogue.download_model`) validates its
arguments, chooses the file names and calls these helpers:

* :func:`_lock_partial` takes the lock ``<model>.part.lock`` (:mod:`filelock`: ``flock`` on
  POSIX, ``msvcrt`` locking on Windows) against a second download of the same model, and
  :func:`_unlock_partial` removes and releases it at the end; :func:`_open_partial` creates
  the ``.part`` file and truncates it.
* :func:`_fetch_into` streams the body into it with a progress bar, resuming after a dropped
  connection or timeout with an HTTP ``Range`` request, restarting from zero when the server
  ignores ranges, and giving up after a bounded number of attempts without progress. Bars
  are :mod:`tqdm.auto`'s (a widget in Jupyter), shown when ``progress`` says so.
* :func:`_verify` checks the size and MD5 of the result.
* :func:`_fsync_directory` makes the final rename durable; :func:`_remove_quietly` deletes a
  ``.part`` (or temporary catalogue cache) file, ignoring errors.

The argument checks at the end are shared with :mod:`gpt4all_rag.models.catalogue`. Log records use the
``gpt4all_rag.models.catalogue`` logger, as the public module does.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path, PureWindowsPath
from typing import Any, BinaryIO, TypeAlias
from urllib.parse import urlsplit

import filelock
import requests
import urllib3

from .._progress import progress_bar
from ..errors import DownloadError, InvalidParameterError, ModelNotFoundError

logger = logging.getLogger("gpt4all_rag.models.catalogue")

_PathLike: TypeAlias = "str | os.PathLike[str]"

BLOCK_SIZE = 2**20
"""Largest block read and written per step of a download or verification (1 MiB)."""

DEFAULT_DOWNLOAD_URL = "https://gpt4all.io/models/gguf/{model_filename}"
"""The seed's download URL of a model file that has no ``url`` in the catalogue."""

_RETRY_BACKOFF_S = 1.0  # first pause between attempts without progress; doubles each time
_MD5_RE = re.compile(r"[0-9a-fA-F]{32}")
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_BACKOFF_S = 30.0
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


class _TransientError(DownloadError):
    """A failed attempt that is worth retrying (dropped connection, timeout, HTTP 5xx)."""


class _RestartError(_TransientError):
    """A failed attempt after which the download must start again from byte 0."""


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable; a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _lock_partial(path: Path) -> filelock.BaseFileLock:
    """Take the lock ``<path>.lock`` that guards ``path`` against a second download.

    :func:`_unlock_partial` removes the lock file before it releases the lock. That is safe
    because filelock (4.2 and later) refuses a lock on a file that was unlinked before its
    ``flock`` succeeded, so a process that opened the old file cannot take it.

    Raises:
        DownloadError: another process holds the lock, or the lock file cannot be created.
    """
    lock = filelock.FileLock(f"{path}.lock", timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout as exc:
        raise DownloadError(
            f"{str(path)!r} is locked: another download of this model is in progress"
        ) from exc
    except OSError as exc:
        raise DownloadError(f"cannot create the lock file {str(lock.lock_file)!r}: {exc}") from exc
    return lock


def _unlock_partial(lock: filelock.BaseFileLock) -> None:
    """Remove the lock file, then release the lock (see :func:`_lock_partial`)."""
    if lock.is_locked:
        _remove_quietly(Path(lock.lock_file))  # Windows cannot: filelock removes it there
    lock.release()


def _open_partial(path: Path) -> BinaryIO:
    """Open ``path`` for writing and truncate it (the caller holds :func:`_lock_partial`)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
    except OSError as exc:
        raise DownloadError(f"cannot create {str(path)!r}: {exc}") from exc
    partf = os.fdopen(fd, "r+b")
    try:
        partf.truncate(0)
    except OSError as exc:
        partf.close()
        raise DownloadError(f"cannot prepare {str(path)!r}: {exc}") from exc
    return partf


def _request(session: requests.Session, url: str, offset: int, timeout_s: float) -> Any:
    """Send one GET (with ``Range`` when resuming); return a streaming 200/206 response."""
    # Content-Encoding would change the meaning of Content-Length, ranges and the MD5.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = session.get(url, stream=True, headers=headers, timeout=timeout_s)
    except requests.RequestException as exc:
        raise _TransientError(f"request to {url} failed: {exc}") from exc
    if response.status_code in (200, 206):
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            response.close()
            raise DownloadError(f"{url} was sent with Content-Encoding {encoding!r}, not identity")
        return response
    response.close()
    message = f"HTTP {response.status_code} {response.reason} for {url}"
    if offset and response.status_code == 416:  # Range Not Satisfiable
        raise _RestartError(message)
    if response.status_code in _RETRY_STATUSES:
        raise _TransientError(message)
    raise DownloadError(message)


def _restart(partf: BinaryIO) -> int:
    """Empty the partial file; return the new offset, 0."""
    partf.seek(0)
    partf.truncate()
    return 0


def _response_span(response: Any) -> tuple[int, int | None]:
    """Return (first byte position of the body, total size or None) of a 200/206 response."""
    if response.status_code == 200:
        length = response.headers.get("Content-Length", "")
        return 0, int(length) if length.isdigit() else None
    match = _CONTENT_RANGE_RE.fullmatch(response.headers.get("Content-Range", "").strip())
    if match is None:
        return -1, None  # unusable 206: treated like a wrong start
    total = match.group(3)
    return int(match.group(1)), None if total == "*" else int(total)


def _iter_body(response: Any) -> Iterator[bytes]:
    """Yield the body in blocks of at most :data:`BLOCK_SIZE` bytes as they arrive.

    ``iter_content`` would hold back a block until it is full, so a dropped connection would
    lose up to a block of received bytes, and a link that drops more often than once a block
    would never finish. ``read1`` (urllib3 2) hands over whatever has arrived.
    """
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:  # pragma: no cover - urllib3 1.x
        yield from response.iter_content(BLOCK_SIZE)
        return
    while block := read1(BLOCK_SIZE):
        yield block


def _fetch_into(
    partf: BinaryIO,
    url: str,
    *,
    expected_size: int | None,
    timeout_s: float,
    max_retries: int,
    backoff_s: float,
    verbose: bool,
    bars: bool,
) -> int:
    """Download ``url`` into ``partf`` from byte 0, resuming after failures; return the size.

    The progress bar appears with the first usable response, so an HTTP error shows none.
    ``backoff_s`` is the first pause after an attempt without progress; it doubles with each
    such attempt, up to :data:`_MAX_BACKOFF_S`.
    """
    offset = 0
    total: int | None = None
    reached = 0  # the furthest offset any attempt got to: progress means passing it
    failures = 0  # consecutive attempts that made no progress
    progress: Any = None
    with requests.Session() as session, contextlib.ExitStack() as stack:
        while True:
            try:
                with _request(session, url, offset, timeout_s) as response:
                    start, remote_total = _response_span(response)
                    if start != offset:
                        if start != 0:  # a 206 for another range than asked
                            raise _RestartError(
                                f"{url} answered a range request for byte {offset} with "
                                f"Content-Range {response.headers.get('Content-Range')!r}"
                            )
                        logger.warning("%s ignored the range request; restarting from 0", url)
                        offset = _restart(partf)
                    if remote_total is not None:
                        if expected_size is not None and remote_total != expected_size:
                            raise DownloadError(
                                f"{url} has {remote_total} bytes, expected {expected_size}"
                            )
                        if total is not None and remote_total != total:
                            raise _RestartError(f"{url} changed size during the download")
                        total = remote_total
                    if progress is None:
                        progress = stack.enter_context(
                            progress_bar(
                                enabled=bars,
                                desc="Downloading",
                                total=total,
                                initial=offset,
                                unit="iB",
                                unit_scale=True,
                            )
                        )
                    elif (progress.n, progress.total) != (offset, total):
                        progress.n, progress.total = offset, total
                        progress.refresh()
                    for block in _iter_body(response):
                        # Written through, not held in the file object's buffer: what has
                        # arrived is in the .part file while the link stalls, and a process
                        # that is killed keeps it for the next run's resume.
                        partf.write(block)
                        partf.flush()
                        offset += len(block)
                        progress.update(len(block))
                if total is None or offset >= total:
                    return offset
                error = f"connection closed after {offset} of {total} bytes"
            except _RestartError as exc:
                error = f"{exc}; restarting from byte 0"
                offset = _restart(partf)
            except _TransientError as exc:
                error = str(exc)
            except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                error = f"{type(exc).__name__}: {exc}"  # dropped connection, read timeout
            if offset > reached:
                reached = offset
                failures = 0
            else:
                failures += 1
                if failures > max_retries:
                    raise DownloadError(
                        f"download of {url} failed after {failures} attempt(s) without "
                        f"progress: {error}"
                    )
                time.sleep(min(backoff_s * 2 ** (failures - 1), _MAX_BACKOFF_S))
            logger.warning("%s; resuming %s from byte %d", error, url, offset)
            if verbose:
                print(
                    f"\nDownload interrupted, resuming from byte position {offset}",
                    file=sys.stderr,
                )


def _verify(
    partf: BinaryIO,
    size: int,
    *,
    expected_size: int | None,
    expected_md5: str | None,
    url: str,
    bars: bool,
) -> None:
    if expected_size is not None and size != expected_size:
        raise DownloadError(f"Expected file size of {expected_size} bytes, got {size} from {url}")
    if expected_md5 is None:
        return
    partf.seek(0)
    digest = hashlib.md5()
    with progress_bar(
        enabled=bars, desc="Verifying", total=size, unit="iB", unit_scale=True
    ) as bar:
        while block := partf.read(BLOCK_SIZE):
            digest.update(block)
            bar.update(len(block))
    if digest.hexdigest() != expected_md5.lower():
        raise DownloadError(
            f"Expected MD5 hash of {expected_md5!r}, got {digest.hexdigest()!r} from {url}"
        )


# Argument checks shared with gpt4all_rag.models.catalogue


def _safe_name(model_name: object) -> str:
    """Return ``model_name`` if it is one plain file name that stays inside its directory."""
    if not isinstance(model_name, str):
        raise InvalidParameterError(
            f"model name must be a str, got {type(model_name).__name__}: {model_name!r}"
        )
    if (
        model_name in ("", ".", "..")
        or any(c in model_name for c in ("/", "\\", "\0"))
        or PureWindowsPath(model_name).drive
        or os.path.isabs(model_name)
    ):
        raise InvalidParameterError(
            f"invalid model name {model_name!r}: give a plain file name such as "
            "'orca-mini-3b-gguf2-q4_0.gguf' (no path separators, '..' or absolute paths); "
            "use model_path for the directory"
        )
    return model_name


def _check_positive(name: str, value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}")
    if math.isnan(value) or value < 0 or (value == 0 and not allow_zero):
        raise InvalidParameterError(
            f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}"
        )
    return float(value)


def _check_http_url(url: object) -> str:
    if not isinstance(url, str):
        raise InvalidParameterError(f"URL must be a str, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidParameterError(f"URL must be an http(s) URL, got {url!r}")
    return url


def download_model(
    model_filename: str,
    model_path: _PathLike,
    verbose: bool = True,
    url: str | None = None,
    expected_size: int | None = None,
    expected_md5: str | None = None,
    *,
    timeout_s: float = 60,
    max_retries: int = 5,
    progress: bool | None = None,
) -> Path:
    """Download a model file (the seed's ``GPT4All.download_model``).

    The body is streamed in :data:`BLOCK_SIZE` blocks into ``<model_filename>.part`` with a
    progress bar. A dropped connection or timeout is resumed with an HTTP ``Range`` request
    (the ``206`` answer's ``Content-Range`` start is checked; a server that ignores ranges makes
    the download restart from zero). The file is then checked against ``expected_size`` and
    ``expected_md5``, fsynced and renamed atomically to ``model_filename``. On any failure the
    ``.part`` file is deleted: nothing partial is ever left under the final name. A lock file
    ``<model_filename>.part.lock`` (:mod:`filelock`, POSIX and Windows; removed when the
    download ends) makes a concurrent download of the same file fail instead of corrupting it.
    An existing file of the final name is replaced.

    Args:
        model_filename: file name of the model (with extension); a plain name, no directories.
        model_path: existing directory to download into.
        verbose: show messages on stderr, and progress bars unless ``progress`` says otherwise.
        url: URL of the file; ``None`` means ``https://gpt4all.io/models/gguf/<model_filename>``.
        expected_size: expected size in bytes, or ``None`` to skip the check.
        expected_md5: expected MD5 as 32 hex digits, or ``None`` to skip the check.
        timeout_s: connect and read timeout in seconds: a server that sends nothing for this
            long counts as a failed attempt.
        max_retries: how many failed attempts in a row (connection errors, timeouts, HTTP
            408/425/429/5xx, unusable range answers) are retried before giving up. An attempt
            that got further into the file than any before resets the count, so a long
            download survives many drops. Pauses after attempts without progress start at
            1 s and double (at most 30 s).
        progress: download and verification bars (:mod:`tqdm.auto`: a widget in Jupyter).
            None: when ``verbose`` (the seed's behaviour); True: always; False: never.

    Returns:
        Path of the downloaded file.

    Raises:
        InvalidParameterError: ``model_filename`` is not a plain file name, ``url`` is not an
            http(s) URL, or ``expected_size``, ``expected_md5``, ``timeout_s`` or
            ``max_retries`` or ``progress`` is invalid.
        ModelNotFoundError: ``model_path`` is not an existing directory.
        DownloadError: HTTP error (the message names status and URL), retries exhausted,
            stalled server, size or MD5 mismatch, unexpected Content-Encoding, the ``.part``
            file is locked by another download, or it cannot be written.
    """
    model_filename = _safe_name(model_filename)
    url = _check_http_url(
        DEFAULT_DOWNLOAD_URL.format(model_filename=model_filename) if url is None else url
    )
    if expected_size is not None and (
        isinstance(expected_size, bool) or not isinstance(expected_size, int) or expected_size < 0
    ):
        raise InvalidParameterError(f"expected_size must be an int >= 0, got {expected_size!r}")
    if expected_md5 is not None and (
        not isinstance(expected_md5, str) or not _MD5_RE.fullmatch(expected_md5)
    ):
        raise InvalidParameterError(f"expected_md5 must be 32 hex digits, got {expected_md5!r}")
    timeout_s = _check_positive("timeout_s", timeout_s)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidParameterError(f"max_retries must be an int >= 0, got {max_retries!r}")
    if progress is not None and not isinstance(progress, bool):
        raise InvalidParameterError(f"progress must be None, True or False, got {progress!r}")
    bars = verbose if progress is None else progress
    directory = Path(model_path).expanduser()
    if not directory.is_dir():
        raise ModelNotFoundError(f"Model directory does not exist: {str(directory)!r}")

    partial_path = directory / f"{model_filename}.part"
    download_path = directory / model_filename
    logger.info("downloading %s to %s", url, download_path)
    lock = _lock_partial(partial_path)
    try:
        partf = _open_partial(partial_path)
    except BaseException:
        _unlock_partial(lock)
        raise
    try:
        try:
            size = _fetch_into(
                partf,
                url,
                expected_size=expected_size,
                timeout_s=timeout_s,
                max_retries=max_retries,
                backoff_s=_RETRY_BACKOFF_S,
                verbose=verbose,
                bars=bars,
            )
            _verify(
                partf,
                size,
                expected_size=expected_size,
                expected_md5=expected_md5,
                url=url,
                bars=bars,
            )
            partf.flush()
            os.fsync(partf.fileno())
            if os.name == "nt":  # pragma: no cover - Windows cannot rename an open file
                partf.close()
            os.replace(partial_path, download_path)
        except BaseException as exc:
            if verbose and not partf.closed and partf.tell():
                print("Cleaning up the interrupted download...", file=sys.stderr)
            _remove_quietly(partial_path)
            if isinstance(exc, OSError) and not isinstance(exc, DownloadError):
                raise DownloadError(
                    f"cannot store the download in {str(directory)!r}: {exc}"
                ) from exc
            raise
    finally:
        partf.close()
        _unlock_partial(lock)
    _fsync_directory(directory)
    if verbose:
        print(f"Model downloaded to {str(download_path)!r}", file=sys.stderr)
    return download_path
