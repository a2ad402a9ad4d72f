"""How the server runs a request's work, whatever API it came through: in a worker thread,
stopped when its client leaves, streamed as Server-Sent Events while it holds its model, with
its errors in the API's shape and LocalDocs context retrieved for it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sse_starlette.sse import EventSourceResponse
from starlette.background import BackgroundTask

from .. import errors
from ..aio import iterate_in_thread
from ..engine.sampling import SamplingParams
from ..engine.types import ChatCompletion, ChatCompletionChunk, ToolCall
from .metrics import Metrics
from .pool import SEARCH, ApiError, ModelPool
from .schemas import LocalDocsOptions

__all__ = ["ANTHROPIC", "ANTHROPIC_PATH", "Dialect", "ERROR_STATUS", "OPENAI", "RESPONSES", "api_error",
           "chat_stream", "complete", "dialect_of", "error_response", "event_stream", "going_on",
           "in_thread", "retrieve", "retrieve_localdocs", "tool_calls", "unless_client_leaves"]

T = TypeVar("T")


@dataclass(frozen=True)
class Dialect:
    """How one API frames its stream events and errors.

    Attributes:
        name: ``openai`` or ``anthropic``.
        done: the ``data`` of the stream's last frame, or None.
        named_events: each frame carries ``event: <its type>`` (Anthropic's streams).
    """

    name: str
    done: str | None
    named_events: bool

    def event(self, data: dict[str, Any]) -> dict[str, str]:
        """The Server-Sent Events frame of one JSON object."""
        frame = {"data": json.dumps(data)}
        if self.named_events:
            frame["event"] = str(data.get("type", "message"))
        return frame

    def body(self, error: ApiError) -> dict[str, Any]:
        """The error object of this API."""
        return error.anthropic_body() if self.name == "anthropic" else error.body()

    def status(self, error: ApiError) -> int:
        """The HTTP status of ``error`` in this API."""
        return error.anthropic_status() if self.name == "anthropic" else error.status


OPENAI = Dialect("openai", done="[DONE]", named_events=False)
ANTHROPIC = Dialect("anthropic", done=None, named_events=True)
#: OpenAI's Responses API streams: named events, no ``[DONE]``, OpenAI's errors.
RESPONSES = Dialect("openai-responses", done=None, named_events=True)
#: Where Anthropic's Messages API is served: errors there are in its shape.
ANTHROPIC_PATH = "/v1/messages"


def dialect_of(path: str) -> Dialect:
    """The API a request path belongs to."""
    return ANTHROPIC if path == ANTHROPIC_PATH or path.startswith(ANTHROPIC_PATH + "/") else OPENAI


def error_response(path: str, error: ApiError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """``error`` answered in the shape and status of the API ``path`` belongs to."""
    dialect = dialect_of(path)
    return JSONResponse(dialect.body(error), status_code=dialect.status(error), headers=headers)


#: Status of each error class a request can cause (first match in order wins). Every class
#: of :mod:`gpt4all_rag.errors` has a row: none of them is a 500.
ERROR_STATUS: tuple[tuple[type[BaseException], int, str], ...] = (
    (errors.ModelNotFoundError, 404, "model_not_found"),
    (errors.CollectionNotFoundError, 404, "collection_not_found"),
    (errors.ContextOverflowError, 400, "context_length_exceeded"),
    (errors.GrammarError, 400, "invalid_grammar"),
    (errors.ChatTemplateError, 400, "chat_template_error"),
    (errors.ModelLoadError, 400, "invalid_model_file"),
    (errors.CollectionMismatchError, 400, "collection_mismatch"),
    (errors.UnsupportedOperationError, 400, "unsupported"),
    (errors.InvalidParameterError, 400, "invalid_parameter"),
    (errors.DocumentLoadError, 400, "invalid_document"),
    (errors.DatasetError, 400, "invalid_dataset"),
    (errors.DownloadError, 502, "download_failed"),
    (errors.ModelBusyError, 503, "model_busy"),
    (errors.ConcurrentUseError, 503, "model_busy"),
    (errors.ModelClosedError, 503, "model_unavailable"),  # evicted or shut down: retry
    (errors.CancellationError, 503, "cancelled"),
    (errors.GenerationError, 503, "generation_failed"),
    (errors.StoreError, 503, "store_unavailable"),
    (errors.NativeLibraryError, 503, "backend_unavailable"),
    (errors.GPT4AllRagError, 503, "server_error"),
)


def api_error(exc: BaseException) -> ApiError:
    """The HTTP error of an exception a request raised (:data:`ERROR_STATUS`; anything else is
    a bug and a 500)."""
    if isinstance(exc, ApiError):
        return exc
    for cls, status, code in ERROR_STATUS:
        if isinstance(exc, cls):
            return ApiError(status, str(exc), code=code,
                            type="server_error" if status >= 500 else "invalid_request_error")
    return ApiError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error")


async def _client_gone(request: Request) -> None:
    """Return once the client has disconnected. Called after the body was read, when the
    server's next ``receive()`` message can only be ``http.disconnect``."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_client_leaves(request: Request,
                               work: Callable[[threading.Event], Awaitable[T]]) -> T | Response:
    """Run ``work(stop)`` for a request, and stop it if its client disconnects first.

    Waiting stages (admission, a model's load) are cancelled, so a queued request whose client
    left never runs; running work is asked to stop through ``stop`` (see :func:`in_thread`),
    within one decode step or one embedding batch. Returns the work's result, or an empty
    response nobody reads once the client is gone.
    """
    stop = threading.Event()
    task = asyncio.ensure_future(work(stop))
    gone = asyncio.ensure_future(_client_gone(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the server itself shuts down
        stop.set()
        task.cancel()
        raise
    finally:
        gone.cancel()
    if task.done():
        return task.result()
    stop.set()
    task.cancel()
    try:
        await task
    except BaseException:  # noqa: BLE001 - nobody is left to answer
        pass
    return Response(status_code=499)  # nginx's "client closed request"; never sent


async def in_thread(stop: threading.Event, fn: Callable[[], T]) -> T:
    """``fn()`` in a worker thread. Cancelled, it sets ``stop`` (``fn`` checks it between
    steps) and still waits for ``fn`` to return, so the lease the caller holds on the model
    outlives every native call made for it."""
    future = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        stop.set()
        await asyncio.wait({future})
        raise


def going_on(stop: threading.Event, on_piece: Callable[..., Any] | None = None) -> Callable[..., bool]:
    """A generation callback (``callback(token_id, text)``) that stops once ``stop`` is set,
    and first passes each piece to ``on_piece`` (metrics)."""
    def callback(*piece: Any) -> bool:
        if on_piece is not None:
            on_piece(*piece)
        return not stop.is_set()

    return callback


class _Held:
    """A model lease held by a streaming response. Released once: when the stream ends, or by
    the response's background task when the client left before the stream started (an async
    generator that never started never runs its ``finally``)."""

    def __init__(self, lease: Any) -> None:
        self.lease, self.released = lease, False

    async def release(self) -> None:
        if not self.released:
            self.released = True
            await self.lease.__aexit__(None, None, None)


async def event_stream(pool: ModelPool, filename: str, stop: threading.Event,
                       start: Callable[[Any], Any],
                       render: Callable[[AsyncIterator[Any]], AsyncIterator[dict[str, Any]]],
                       dialect: Dialect | None = None) -> EventSourceResponse:
    """A Server-Sent Events response holding a lease on ``filename``'s model for its whole life.

    ``start(model)`` runs in a worker thread before the response begins, so its errors (bad
    parameters) are the HTTP error; it returns the blocking iterator of the generation.
    ``render`` turns that iterator's items (pumped from a worker thread) into JSON objects,
    each sent as the API's ``dialect`` frames it (default OpenAI's: ``data: {...}`` lines
    ended by ``data: [DONE]``; Anthropic's: named events); an error after the start is sent as
    the dialect's error object. A client that leaves stops the stream at its next item
    (sse-starlette cancels it).
    """
    dialect = dialect or OPENAI
    lease = pool.lease(filename)
    model = await lease.__aenter__()
    held = _Held(lease)
    try:
        items = await in_thread(stop, lambda: start(model))
    except BaseException:
        await held.release()
        raise

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            async for data in render(iterate_in_thread(lambda: iter(items))):
                yield dialect.event(data)
            if dialect.done is not None:
                yield {"data": dialect.done}
        except Exception as exc:  # after the response started: report it in the stream
            yield dialect.event(dialect.body(api_error(exc)))
        finally:
            await held.release()

    return EventSourceResponse(events(), ping=15, background=BackgroundTask(held.release))




def _last_user_text(messages: list[dict[str, Any]]) -> tuple[int, str] | None:
    """The index and text of the last user message with text, or None."""
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content)
            if isinstance(content, str) and content.strip():
                return i, content
    return None


async def complete(pool: ModelPool, filename: str, messages: list[dict[str, Any]], params: SamplingParams,
                   options: Mapping[str, Any], stop: threading.Event, metrics: Metrics) -> ChatCompletion:
    """A chat completion of ``messages`` on ``filename``'s model with the sampling parameters
    ``params`` (``options``: the engine's other keyword arguments), held by a lease, in a worker
    thread, stopped by the event ``stop``; its tokens and time to first token counted in
    ``metrics``."""
    async with pool.lease(filename) as model:
        def run() -> ChatCompletion:
            out = model.engine.create_chat_completion(
                messages, params, callback=going_on(stop, metrics.first_token(filename)), **options)
            assert isinstance(out, ChatCompletion)
            return out

        out = await in_thread(stop, run)
    metrics.tokens(filename, out.usage)
    return out


async def chat_stream(pool: ModelPool, filename: str, messages: list[dict[str, Any]], params: SamplingParams,
                      options: Mapping[str, Any], stop: threading.Event, metrics: Metrics,
                      render: Callable[[AsyncIterator[ChatCompletionChunk]], AsyncIterator[dict[str, Any]]],
                      dialect: Dialect | None = None,
                      before: Callable[[Any], None] | None = None) -> EventSourceResponse:
    """The streamed chat completion of :func:`complete` as :func:`event_stream` sends it:
    ``render`` turns its chunks into the API's events; the last chunk's usage is counted.
    ``before(model)`` runs first in the worker thread (what the API's first event needs)."""
    def start(model: Any) -> Any:
        if before is not None:
            before(model)
        return model.engine.create_chat_completion(
            messages, params, stream=True, callback=going_on(stop, metrics.first_token(filename)),
            **options)

    async def counted(chunks: AsyncIterator[ChatCompletionChunk]) -> AsyncIterator[ChatCompletionChunk]:
        last = None
        async for chunk in chunks:
            last = chunk
            yield chunk
        if last is not None:
            metrics.tokens(filename, last.usage)

    return await event_stream(pool, filename, stop, start, lambda chunks: render(counted(chunks)), dialect)


def tool_calls(chunk: ChatCompletionChunk | None) -> list[ToolCall]:
    """The tool calls of a stream's last chunk (the chat core sends them whole there)."""
    if chunk is None:
        return []
    return [ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"])
            for c in chunk.delta.get("tool_calls") or []]


async def retrieve(pool: ModelPool, options: LocalDocsOptions | None, messages: list[dict[str, Any]],
                   stop: threading.Event, timer: Callable[[], Any],
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """:func:`retrieve_localdocs` for a request (admitted as a LocalDocs search, timed by
    ``timer()``, a context manager), or the messages unchanged and no references when it asks
    for no LocalDocs (``options`` None)."""
    if options is None:
        return messages, None
    async with pool.admit(SEARCH):
        with timer():
            return await in_thread(stop, lambda: retrieve_localdocs(pool, options, messages))


def retrieve_localdocs(pool: ModelPool, options: LocalDocsOptions, messages: list[dict[str, Any]],
                       ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The chat-core messages with excerpts retrieved for the last user message put into it
    (the prompt code of ``chat_session(localdocs=...)``), and the references (``index``, then
    a search result's fields but its metadata). A conversation without user text has nothing
    to search for: it goes to the model as it is, with no references.

    Raises:
        ApiError, CollectionNotFoundError, InvalidParameterError: a collection that is not
            there or not valid.
    """
    from ..localdocs import build_prompt, search_collections

    collections = [pool.localdocs(name) for name in dict.fromkeys(options.collections)]
    last = _last_user_text(messages)
    if last is None:
        return messages, []
    index, question = last
    results = search_collections(collections, question, options.k, mode=options.mode)
    messages = list(messages)
    messages[index] = {**messages[index], "content": build_prompt(question, results)}
    references = [{"index": i, **{k: v for k, v in r.as_dict().items() if k != "metadata"}}
                  for i, r in enumerate(results, start=1)]
    return messages, references
