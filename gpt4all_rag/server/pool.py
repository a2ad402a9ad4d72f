"""Models and collections the server holds: found by name, loaded on first use, bounded.

Chat and embedding models are files in the model directory (or catalogue models when downloads
are allowed), loaded when a request first names them and kept in least-recently-used order up
to :attr:`ServerConfig.max_loaded_models`. The pool is the one owner of their lifetime and the
one admission layer: a request holds a *lease* on its model (:meth:`ModelPool.lease`) from
admission to its last byte, and only a model no request holds is ever evicted. A chat model
generates for :attr:`ServerConfig.parallel` requests at once (its parallel sequences, decoded
together); further requests for it wait in arrival order, at most
:attr:`ServerConfig.max_queue` of them and for at most :attr:`ServerConfig.queue_timeout_s`,
after which they get 503 (``queue_full``, ``queue_timeout``) instead of hanging. A request
for a model that is not loaded while every loaded model is held waits, within the same
timeout, for one of them to be released (then evicted), else gets 503 ``model_busy``: the
memory bound is never exceeded. Loads run in a worker thread outside any lock other requests
need; waiting happens on the event loop, so a waiting request holds no thread. A refused
request (an embedding model named for chat, or the reverse) changes nothing cached.
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

from .. import GPT4All, errors

from ..models import catalogue as models
from ..embed4all import DEFAULT_MODEL_NAME, Embed4All
from ..names import MODEL_NAME_MEANING, check_collection_name, is_model_name
from ..gpt4all import DEFAULT_N_CTX
from ..engine.sampling import SamplingParams

__all__ = ["ApiError", "DEFAULT_CODES", "ModelPool", "SEARCH", "ServerConfig"]

#: The admission key of LocalDocs searches (search endpoint and chat retrieval alike): they
#: share :attr:`ServerConfig.parallel` seats and the same queue bounds as a model's requests.
SEARCH = "LocalDocs search"



#: The ``code`` of an error that names none, by HTTP status: every error has a code.
DEFAULT_CODES = {400: "invalid_request", 401: "invalid_api_key", 404: "not_found",
                 405: "method_not_allowed", 408: "request_timeout", 413: "request_too_large",
                 415: "unsupported_media_type", 502: "upstream_error", 503: "server_busy"}


def _name_max(directory: Path) -> int:
    """The longest file name, in bytes, the file system of ``directory`` allows (POSIX
    ``NAME_MAX``; 255 where it cannot be asked)."""
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


#: Anthropic's error ``type`` by HTTP status (its Messages API reference, "Errors").
ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                         403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                         429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


class ApiError(errors.GPT4AllRagError):
    """An error answered in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

    ``code`` defaults to the status's row of :data:`DEFAULT_CODES`; ``type`` is
    ``invalid_request_error`` below 500 and ``server_error`` from 500.
    """

    def __init__(self, status: int, message: str, *, type: str | None = None,
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param
        self.type = type or ("server_error" if status >= 500 else "invalid_request_error")
        self.code = code or DEFAULT_CODES.get(status, "server_error" if status >= 500 else "invalid_request")

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}

    def anthropic_status(self) -> int:
        """The status in Anthropic's API: its 529 ``overloaded_error`` for a busy server."""
        return 529 if self.status == 503 else self.status

    def anthropic_body(self) -> dict[str, Any]:
        """Anthropic's error object: ``{"type": "error", "error": {"type", "message"}}``."""
        status = self.anthropic_status()
        kind = ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": self.message}}


@dataclass
class ServerConfig:
    """How ``gpt4all-rag serve`` runs (each field is a CLI option).

    Attributes:
        model_path: the model directory (None: GPT4All's default, ``~/.cache/gpt4all``).
        model: a chat model loaded at start and used when a request names none.
        embedding_model: the embedding model used when a request names none.
        allow_download: let a request download a catalogue model that is missing (off by
            default: clients cannot make the server fetch files).
        n_ctx, n_threads: for every chat model loaded (n_ctx per sequence).
        parallel: requests one chat model serves at once (its ``n_parallel``); each sequence
            holds a KV cache of n_ctx tokens.
        max_loaded_models: chat and embedding models loaded at most; the least recently used
            one that no request holds is evicted for a new one (see :meth:`ModelPool.lease`).
        max_queue: requests that may wait for a busy model; more get 503.
        queue_timeout_s: how long one waits before it gets 503.
        max_tokens_limit: the largest ``max_tokens`` a request may ask for.
        max_body_bytes: the largest request body (413 beyond).
        host: the address the server is bound to (a ``Host`` it serves).
        allowed_hosts: further host names it serves (``"*"``: every one); loopback names and
            IP literals are always served (:class:`~gpt4all_rag.server.guards.HostCheck`).
        read_timeout_s: seconds a request's head and body may take to arrive (408 beyond).
        max_connections: open connections and requests at most (uvicorn's
            ``limit_concurrency``: 503 beyond).
        mcp_allow_index: the MCP server at ``/mcp`` offers ``index_folder`` (it writes).
        files_path: where ``/v1/files`` keeps uploads (None: :func:`gpt4all_rag.paths.files_directory`).
        max_file_bytes: the largest upload (413 beyond).
        api_key: when set, every endpoint but ``/health`` needs ``Authorization: Bearer KEY``.
        cors_origins: origins allowed by CORS (none: CORS off).
        persist_directory, chroma_url: where LocalDocs collections live (embedded database
            folder, or a Chroma server shared by several servers).
    """

    model_path: Path | None = None
    model: str | None = None
    embedding_model: str = DEFAULT_MODEL_NAME
    allow_download: bool = False
    n_ctx: int = DEFAULT_N_CTX
    n_threads: int | None = None
    parallel: int = 4
    max_loaded_models: int = 2
    max_queue: int = 16
    queue_timeout_s: float = 60.0
    max_tokens_limit: int = 4096
    max_body_bytes: int = 4 * 1024 * 1024
    host: str = "127.0.0.1"
    allowed_hosts: list[str] = field(default_factory=list)
    read_timeout_s: float = 30.0
    max_connections: int = 256
    mcp_allow_index: bool = False
    files_path: Path | None = None
    max_file_bytes: int = 32 * 1024 * 1024
    api_key: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    persist_directory: Path | None = None
    chroma_url: str | None = None

    def max_tokens(self, requested: int | None) -> int:
        """The ``max_tokens`` a request gets: its own, or the default (200) within
        :attr:`max_tokens_limit`.

        Raises:
            ApiError: 400 when it asks for more than the limit (the message quotes its value).
        """
        if requested is None:
            return min(SamplingParams().max_tokens, self.max_tokens_limit)
        if requested > self.max_tokens_limit:
            raise ApiError(400, f"max_tokens is {requested}; this server allows at most "
                                f"{self.max_tokens_limit}", param="max_tokens")
        return requested

    @property
    def files_directory(self) -> Path:
        from .. import paths

        return Path(self.files_path) if self.files_path else paths.files_directory()

    @property
    def model_directory(self) -> Path:
        return Path(self.model_path) if self.model_path else models.default_model_directory()


class _Slot:
    """Admission to one model: ``n`` requests at a time, a bounded queue in arrival order."""

    def __init__(self, n: int) -> None:
        self.seats = asyncio.Semaphore(n)  # wakes waiters first come, first served
        self.waiting = 0
        self.running = 0  # requests holding a seat


class _Entry:
    """One model file of the pool: loading, or loaded and held by ``users`` requests."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "chat" or "embedding"
        self.model: GPT4All | Embed4All | None = None
        self.settled = asyncio.Event()  # set once the load ended (either way)
        self.error: BaseException | None = None  # why the load failed
        # The load, a task of its own; held here because the event loop keeps only a weak
        # reference to a running task.
        self.task: asyncio.Future[None] | None = None
        self.users = 0


class ModelPool:
    """The loaded models and LocalDocs collections of one server process.

    Thread safety: the model table is changed on the event loop only (:meth:`lease`); loads and
    closes run in worker threads. :meth:`preload` and :meth:`close` are for before and after
    the loop runs.
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()
        self._n_closing = 0  # evicted models whose close() still runs: they hold memory
        self._changed = asyncio.Event()  # replaced and set whenever a model is released
        self._slots: dict[str, _Slot] = {}
        self._localdocs: dict[str, Any] = {}
        self._localdocs_lock = threading.Lock()

    # -- names -------------------------------------------------------------------------------
    def resolve(self, name: str | None, *, embedding: bool = False) -> str:
        """The model file name a request means (its own, else the server's default).

        Raises:
            ApiError: 400 for a malformed name (path separators, ``..``), 404 for a model that
                is not in the model directory (and not downloadable).
        """
        if name is None:
            name = self.config.embedding_model if embedding else self.config.model
            if name is None:
                raise ApiError(400, "no model given and the server has no default chat model "
                                    "(start it with --model)", param="model")
        if not is_model_name(name):
            raise ApiError(400, f"invalid model name {str(name)[:60]!r}: {MODEL_NAME_MEANING}",
                           param="model", code="invalid_model")
        filename = name if name.endswith((".gguf", ".bin")) else name + ".gguf"
        if len(filename.encode()) > _name_max(self.config.model_directory):
            raise ApiError(400, f"invalid model name: {filename[:40]}... is longer than a file "
                                f"name may be here ({_name_max(self.config.model_directory)} bytes)",
                           param="model", code="invalid_model")
        if not (self.config.model_directory / filename).is_file() and not self.config.allow_download:
            raise ApiError(404, f"the model {name!r} does not exist", param="model",
                           code="model_not_found")
        return filename

    def list_models(self) -> list[str]:
        """Model files in the model directory, the loaded ones and, when requests may download
        (:attr:`ServerConfig.allow_download`), the catalogue's (its cached copy when the
        network fails; none when there is neither)."""
        d = self.config.model_directory
        names = {p.name for p in d.glob("*.gguf")} if d.is_dir() else set()
        if self.config.allow_download:
            try:
                names |= {e["filename"] for e in models.list_models() if e.get("filename")}
            except errors.DownloadError:
                pass  # logged by the catalogue code; the local files still answer
        return sorted(names | {n for n, e in list(self._entries.items()) if e.model is not None})

    # -- admission and leases ----------------------------------------------------------------
    @asynccontextmanager
    async def admit(self, key: str) -> AsyncIterator[None]:
        """Hold one of the :attr:`ServerConfig.parallel` seats of ``key`` (a model file, or
        :data:`SEARCH` for LocalDocs searches) until the block ends; requests beyond them wait
        in arrival order.

        Raises:
            ApiError: 503 ``queue_full`` when :attr:`ServerConfig.max_queue` requests already
                wait, ``queue_timeout`` after :attr:`ServerConfig.queue_timeout_s`.
        """
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(self.config.parallel)
        if slot.seats.locked() and slot.waiting >= self.config.max_queue:
            raise ApiError(503, f"{key} is busy and {slot.waiting} requests already wait; "
                                "retry later", type="server_error", code="queue_full")
        slot.waiting += 1
        seated = False

        async def take_seat() -> None:
            # A request moves from waiting to running in the step that seats it: counted as
            # waiting until wait_for returned (a later step of the loop), it made a request
            # arriving in between see one waiter too many and get a spurious queue_full.
            nonlocal seated
            await slot.seats.acquire()
            seated = True
            slot.waiting -= 1
            slot.running += 1

        try:
            await asyncio.wait_for(take_seat(), self.config.queue_timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(503, f"waited {self.config.queue_timeout_s:g} s for {key}; retry "
                                "later", type="server_error", code="queue_timeout") from None
        finally:
            if not seated:
                slot.waiting -= 1
        try:
            yield
        finally:
            slot.running -= 1
            slot.seats.release()

    def snapshot(self) -> dict[str, Any]:
        """What the pool holds now, for metrics: ``loaded`` (model file -> kind),
        ``running`` and ``waiting`` (admission key -> requests). Read on the event loop."""
        return {"loaded": {name: e.kind for name, e in list(self._entries.items()) if e.model is not None},
                "running": {key: slot.running for key, slot in list(self._slots.items())},
                "waiting": {key: slot.waiting for key, slot in list(self._slots.items())}}

    @asynccontextmanager
    async def lease(self, filename: str, kind: str = "chat") -> AsyncIterator[Any]:
        """Admit one request for ``filename`` (:meth:`admit`) and hold its model (loaded on
        first use) until the block ends; the model is never evicted meanwhile.

        Args:
            filename: a name from :meth:`resolve`.
            kind: ``"chat"`` (yields a :class:`GPT4All`) or ``"embedding"`` (an
                :class:`Embed4All`).

        Raises:
            ApiError: 503 as for :meth:`admit`, or ``model_busy`` when the model is not
                loaded and every loaded model stays held for the rest of the queue timeout;
                400 when the file is an embedding model asked for chat or the reverse.
            ModelLoadError, ModelNotFoundError, DownloadError: the load failed.
        """
        deadline = asyncio.get_running_loop().time() + self.config.queue_timeout_s
        async with self.admit(filename):
            entry = await self._acquire(filename, kind, deadline)
            try:
                yield entry.model
            finally:
                entry.users -= 1
                self._notify()

    def _notify(self) -> None:
        """Wake the requests waiting for a model to be released or loaded."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _acquire(self, filename: str, kind: str, deadline: float) -> _Entry:
        """The entry of ``filename`` with one more user: loaded already, or loaded now after
        the least recently used model that no request holds was evicted. Loads and closes run
        as tasks of their own, so a request that goes away meanwhile leaks nothing."""
        while True:
            entry = self._entries.get(filename)
            if entry is None:
                if len(self._entries) + self._n_closing >= self.config.max_loaded_models:
                    idle = next((n for n, e in self._entries.items()
                                 if e.users == 0 and e.model is not None), None)
                    if idle is None:  # every loaded model is held: wait for a release
                        await self._wait(self._changed.wait(), deadline, filename)
                    else:
                        old = self._entries.pop(idle)
                        self._n_closing += 1  # until closed, it still holds its memory
                        await asyncio.shield(asyncio.ensure_future(self._close_evicted(old)))
                    continue
                entry = self._entries[filename] = _Entry(kind)
                entry.task = asyncio.ensure_future(self._load_into(filename, entry))
            if not entry.settled.is_set():
                await self._wait(entry.settled.wait(), deadline, filename)
            if entry.error is not None:
                if entry.kind != kind:
                    continue  # it failed as the other kind; this request loads its own
                raise entry.error
            if entry.kind != kind:
                raise _wrong_kind(filename, entry.kind)
            if self._entries.get(filename) is not entry:
                continue  # evicted while this request waited
            entry.users += 1
            self._entries.move_to_end(filename)
            return entry

    async def _load_into(self, filename: str, entry: _Entry) -> None:
        try:
            entry.model = await asyncio.to_thread(self._load, filename, entry.kind)
        except Exception as exc:  # noqa: BLE001 - handed to every request waiting for it
            entry.error = exc
            if self._entries.get(filename) is entry:
                del self._entries[filename]
        finally:
            entry.settled.set()
            self._notify()

    async def _close_evicted(self, old: _Entry) -> None:
        try:
            await asyncio.to_thread(old.model.close)  # no request holds it: returns at once
        finally:
            self._n_closing -= 1
            self._notify()

    async def _wait(self, awaitable: Any, deadline: float, filename: str) -> None:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            await asyncio.wait_for(awaitable, max(remaining, 0))
        except asyncio.TimeoutError:
            raise ApiError(503, f"{filename} could not be made ready within "
                                f"{self.config.queue_timeout_s:g} s (the {self.config.max_loaded_models} "
                                "loaded models stayed in use, or its load still runs); retry later "
                                "(or raise --max-loaded-models)", type="server_error",
                           code="model_busy") from None

    def _load(self, filename: str, kind: str) -> GPT4All | Embed4All:
        """Load ``filename`` as ``kind`` (blocking); a file of the other kind is closed again
        and refused with 400, so nothing is cached for it."""
        if kind == "embedding":
            try:
                return Embed4All(filename, model_path=self.config.model_directory,
                                 allow_download=self.config.allow_download,
                                 n_threads=self.config.n_threads)
            except errors.UnsupportedOperationError as exc:
                raise ApiError(400, str(exc), param="model", code="not_an_embedding_model") from exc
        model = GPT4All(filename, model_path=self.config.model_directory,
                        allow_download=self.config.allow_download, n_threads=self.config.n_threads,
                        n_ctx=self.config.n_ctx, n_parallel=self.config.parallel,
                        max_waiting=self.config.max_queue, wait_timeout=self.config.queue_timeout_s)
        if model.engine.is_embedding:
            model.close()
            raise _wrong_kind(filename, "embedding")
        return model

    def preload(self, filename: str) -> GPT4All:
        """Load a chat model before the server starts (``serve --model``); blocking, and only
        before the event loop runs.

        Raises:
            as :meth:`lease`.
        """
        model = self._load(filename, "chat")
        entry = self._entries[filename] = _Entry("chat")
        entry.model = model
        entry.settled.set()
        assert isinstance(model, GPT4All)
        return model

    def localdocs(self, collection: str) -> Any:
        """The open LocalDocs collection (opened on first use).

        Raises:
            ApiError: 400 for an invalid name, 404 for a collection that does not exist.
        """
        from ..localdocs import LocalDocs

        try:
            check_collection_name(collection)
        except errors.InvalidParameterError as exc:
            raise ApiError(400, str(exc), param="collection", code="invalid_collection") from exc
        with self._localdocs_lock:
            ld = self._localdocs.get(collection)
            if ld is None:
                names = {row["name"] for row in self.collections()}
                if collection not in names:
                    raise ApiError(404, f"no LocalDocs collection {collection!r}", param="collection",
                                   code="collection_not_found")
                ld = LocalDocs(collection, persist_directory=self.config.persist_directory,
                               chroma_url=self.config.chroma_url, model_path=self.config.model_directory,
                               n_threads=self.config.n_threads,
                               allow_download=self.config.allow_download)
                self._localdocs[collection] = ld
            return ld

    def forget_localdocs(self, collection: str) -> None:
        """Close and drop the cached LocalDocs of a collection that was removed."""
        with self._localdocs_lock:
            ld = self._localdocs.pop(collection, None)
        if ld is not None:
            ld.close()

    def collections(self) -> list[dict[str, Any]]:
        """The LocalDocs collections of the database or Chroma server."""
        from ..localdocs import LocalDocs

        return list(LocalDocs.list_collections(self.config.persist_directory, self.config.chroma_url))

    def close(self) -> None:
        """Free every model and collection (after the event loop stopped serving)."""
        while self._entries:
            model = self._entries.popitem()[1].model
            if model is not None:
                model.close()
        with self._localdocs_lock:
            for ld in self._localdocs.values():
                close = getattr(ld, "close", None)
                if close is not None:
                    close()
            self._localdocs.clear()


def _wrong_kind(filename: str, kind: str) -> ApiError:
    """400 for a request that names a model of the other kind (``kind``: what the file is)."""
    if kind == "embedding":
        return ApiError(400, f"{filename} is an embedding model; use /v1/embeddings",
                        param="model", code="not_a_chat_model")
    return ApiError(400, f"{filename} is not an embedding model", param="model",
                    code="not_an_embedding_model")


def env_api_key() -> str | None:
    """The API key from ``$GPT4ALL_RAG_API_KEY`` (None when unset or empty)."""
    return os.environ.get("GPT4ALL_RAG_API_KEY") or None
