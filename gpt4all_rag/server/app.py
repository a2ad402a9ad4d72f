"""The OpenAI-compatible HTTP API: FastAPI routes mapped onto the chat core.

Endpoints: ``GET /health``, ``GET /v1/models``, ``POST /v1/chat/completions``,
``POST /v1/completions``, ``POST /v1/embeddings``, ``GET /v1/collections``,
``POST /v1/collections/{name}/search``. Request fields are :mod:`.schemas`; responses are the
chat core's objects as OpenAI's JSON. Streaming is Server-Sent Events (``data: {...}`` chunks,
then ``data: [DONE]``) by sse-starlette. A client that disconnects stops its request's work,
streamed or not (:func:`_unless_client_leaves`): waiting requests never run, a generation
stops at its next token, an embeddings request at its next batch.

LocalDocs: a chat request with ``"localdocs": {"collections": [...], "k": 3}`` retrieves
excerpts for its last user message from those collections, and the model sees them through
the same prompt code as ``chat_session(localdocs=...)``; the response carries them as
``references`` (path, heading, page or lines, excerpt, score), in a stream as a last chunk
with no choices.

Errors are OpenAI's error object with the right status: 400 bad parameters (also an
over-long prompt: code ``context_length_exceeded``), 401 a missing or wrong API key, 404 an
unknown model, collection or route, 413 a body over the limit, 503 a full queue or a wait past
the timeout. Nothing a client sends produces a 500.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import threading
import time
import uuid
from contextlib import asynccontextmanager
from typing import Annotated, Any, AsyncIterator, Awaitable, Callable, TypeVar

import numpy as np
from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from sse_starlette.sse import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from .. import errors
from ..aio import iterate_in_thread
from ..completion_types import ChatCompletion, ChatCompletionChunk
from ..names import COLLECTION_NAME_MEANING, COLLECTION_NAME_PATTERN, MODEL_NAME_MEANING, MODEL_NAME_PATTERN
from ..sampling import SamplingParams
from .guards import PUBLIC_PATHS, ApiKeyCheck, BodyLimit, HostCheck, TextRoute
from .pool import SEARCH, ApiError, ModelPool, ServerConfig
from .schemas import (ChatCompletionRequest, CollectionName, CompletionRequest, EmbeddingRequest,
                      ErrorResponse, SearchRequest)

__all__ = ["create_app"]

T = TypeVar("T")

#: Status of each error class a request can cause (first match in order wins). Every class
#: of :mod:`gpt4all_rag.errors` has a row: none of them is a 500.
_STATUS: tuple[tuple[type[BaseException], int, str], ...] = (
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


def _api_error(exc: BaseException) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return ApiError(status, str(exc), code=code,
                            type="server_error" if status >= 500 else "invalid_request_error")
    return ApiError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error")


async def _client_gone(request: Request) -> None:
    """Return once the client has disconnected. Called after the body was read, when the
    server's next ``receive()`` message can only be ``http.disconnect``."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_client_leaves(request: Request,
                                work: Callable[[threading.Event], Awaitable[T]]) -> T | Response:
    """Run ``work(stop)`` for a request, and stop it if its client disconnects first.

    Waiting stages (admission, a model's load) are cancelled, so a queued request whose client
    left never runs; running work is asked to stop through ``stop`` (see :func:`_in_thread`),
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


async def _in_thread(stop: threading.Event, fn: Callable[[], T]) -> T:
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


def _going_on(stop: threading.Event) -> Callable[..., bool]:
    """A generation callback (``callback(token_id, text)``) that stops once ``stop`` is set."""
    return lambda *_: not stop.is_set()


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


async def _event_stream(pool: ModelPool, filename: str, stop: threading.Event,
                        start: Callable[[Any], Any],
                        render: Callable[[AsyncIterator[Any]], AsyncIterator[dict[str, Any]]],
                        ) -> EventSourceResponse:
    """A Server-Sent Events response holding a lease on ``filename``'s model for its whole life.

    ``start(model)`` runs in a worker thread before the response begins, so its errors (bad
    parameters) are the HTTP error; it returns the blocking iterator of the generation.
    ``render`` turns that iterator's items (pumped from a worker thread) into JSON objects;
    ``data: [DONE]`` ends the stream, and an error after the start is sent as an error object.
    A client that leaves stops the stream at its next item (sse-starlette cancels it).
    """
    lease = pool.lease(filename)
    model = await lease.__aenter__()
    held = _Held(lease)
    try:
        items = await _in_thread(stop, lambda: start(model))
    except BaseException:
        await held.release()
        raise

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            async for data in render(iterate_in_thread(lambda: iter(items))):
                yield {"data": json.dumps(data)}
            yield {"data": "[DONE]"}
        except Exception as exc:  # after the response started: report it in the stream
            yield {"data": json.dumps(_api_error(exc).body())}
        finally:
            await held.release()

    return EventSourceResponse(events(), ping=15, background=BackgroundTask(held.release))


def create_app(config: ServerConfig, pool: ModelPool | None = None) -> FastAPI:
    """The ASGI application (run it with uvicorn, as ``gpt4all-rag serve`` does).

    Args:
        config: the server's settings.
        pool: the models and collections (default: a new :class:`ModelPool`); the app closes
            it on shutdown.
    """
    pool = pool or ModelPool(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Every admitted request may hold a worker thread (a non-streaming generation holds
        # one to its end): enough of them that admission, not the default executor's
        # cpu_count + 4 threads, is what makes requests wait.
        workers = (config.max_loaded_models + 1) * config.parallel + config.max_loaded_models + 8
        executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="g4r-server")
        asyncio.get_running_loop().set_default_executor(executor)
        yield
        await asyncio.to_thread(pool.close)

    app = FastAPI(title="gpt4all-rag", description="OpenAI-compatible API with LocalDocs",
                  version="1", lifespan=lifespan)
    app.router.route_class = TextRoute  # every string of every body: scalar values
    app.state.pool = pool
    # Middleware, innermost first (each add_middleware wraps the app so far): the body limit,
    # the API key (before any body is read), CORS (answers preflights without a key), Host.
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    if config.api_key is not None:
        app.add_middleware(ApiKeyCheck, api_key=config.api_key)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=config.cors_origins,
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(HostCheck, allowed_hosts=[config.host, *config.allowed_hosts],
                       open_to_all=config.api_key is not None)

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(errors.GPT4AllRagError)
    async def _ours(_: Request, exc: errors.GPT4AllRagError) -> JSONResponse:
        e = _api_error(exc)
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        found = exc.errors()
        # Of a union's failed branches, the one that got past the type check says most.
        first = next((e for e in found if not str(e.get("type", "")).endswith("_type")),
                     found[0] if found else {})
        if first.get("type") == "json_invalid":
            e = ApiError(400, f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'decode error')} "
                              f"at character {first.get('loc', ('', '?'))[-1]})")
            return JSONResponse(e.body(), status_code=400)
        loc = [str(p) for p in first.get("loc", ()) if p != "body" and not _is_branch(p)]
        msg = _PATTERN_MEANING.get(first.get("ctx", {}).get("pattern"),
                                   str(first.get("msg", "invalid request")).removeprefix("Value error, "))
        e = ApiError(400, f"{'.'.join(loc) or 'body'}: {msg}", param=".".join(loc) or None)
        return JSONResponse(e.body(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        e = ApiError(exc.status_code, str(exc.detail))
        return JSONResponse(e.body(), status_code=exc.status_code, headers=exc.headers)

    @app.get("/health", responses=_errors(400))
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models", responses=_errors(400, 401))
    async def list_models() -> dict[str, Any]:
        names = await asyncio.to_thread(pool.list_models)
        return {"object": "list", "data": [{"id": n, "object": "model", "created": 0,
                                            "owned_by": "gpt4all-rag"} for n in names]}

    default_max_tokens = min(SamplingParams().max_tokens, config.max_tokens_limit)

    def max_tokens(value: int | None) -> int:
        """The request's max_tokens (its default, within the limit, when it sent none)."""
        if value is None:
            return default_max_tokens
        if value > config.max_tokens_limit:
            raise ApiError(400, f"max_tokens is {value}; this server allows at most "
                                f"{config.max_tokens_limit}", param="max_tokens")
        return value

    async def retrieve(req: ChatCompletionRequest, stop: threading.Event,
                       ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The request's messages with LocalDocs context, and its references (admitted as a
        search)."""
        messages = req.chat_arguments()["messages"]
        if req.localdocs is None:
            return messages, []
        async with pool.admit(SEARCH):
            return await _in_thread(stop, lambda: _with_localdocs(pool, req, messages))

    @app.post("/v1/chat/completions", responses={**_STREAMED, **_errors(400, 401, 404, 413, 503)})
    async def chat_completions(req: ChatCompletionRequest, request: Request) -> Any:
        filename = pool.resolve(req.model)
        options = {k: v for k, v in req.sampling().items() if v is not None}
        options["max_tokens"] = max_tokens(options.get("max_tokens"))
        chat = req.chat_arguments()
        kwargs = dict(tools=chat["tools"], tool_choice=chat["tool_choice"],
                      response_format=chat["response_format"], logprobs=req.logprobs,
                      top_logprobs=req.top_logprobs, enable_thinking=req.enable_thinking, **options)
        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        async def answer(stop: threading.Event) -> JSONResponse:
            messages, references = await retrieve(req, stop)
            async with pool.lease(filename) as model:
                def run() -> ChatCompletion:
                    out = model.create_chat_completion(messages, callback=_going_on(stop), **kwargs)
                    assert isinstance(out, ChatCompletion)
                    return out

                body = (await _in_thread(stop, run)).to_dict()
            if req.localdocs is not None:
                body["references"] = references
            return JSONResponse(body)

        async def stream(stop: threading.Event) -> EventSourceResponse:
            messages, references = await retrieve(req, stop)

            async def render(chunks: AsyncIterator[ChatCompletionChunk]) -> AsyncIterator[dict[str, Any]]:
                last: ChatCompletionChunk | None = None
                async for chunk in chunks:
                    last = chunk
                    yield {**chunk.to_dict(), "usage": None}  # OpenAI: usage only in its own chunk
                if last is not None and include_usage and last.usage is not None:
                    yield {**last.to_dict(), "choices": []}
                if req.localdocs is not None and last is not None:
                    yield {"id": last.id, "object": "chat.completion.chunk", "created": last.created,
                           "model": last.model, "choices": [], "references": references}

            return await _event_stream(pool, filename, stop, lambda model: model.create_chat_completion(
                messages, stream=True, **kwargs), render)

        return await _unless_client_leaves(request, stream if req.stream else answer)

    @app.post("/v1/completions", responses={**_STREAMED, **_errors(400, 401, 404, 413, 503)})
    async def completions(req: CompletionRequest, request: Request) -> Any:
        filename = pool.resolve(req.model)
        options = {k: v for k, v in req.sampling().items() if v is not None}
        params = SamplingParams.from_options(**{**options, "max_tokens": max_tokens(req.max_tokens)})
        ident, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())

        def body(text: str, model: Any, finish: str | None, lps: Any) -> dict[str, Any]:
            return {"id": ident, "object": "text_completion", "created": created, "model": filename,
                    "choices": [{"text": text, "index": 0, "finish_reason": finish,
                                 "logprobs": lps}], "usage": None}

        def legacy_logprobs(lps: list[Any]) -> dict[str, Any] | None:
            if req.logprobs is None:
                return None
            offsets, pos = [], 0
            for t in lps:
                offsets.append(pos)
                pos += len(t.token)
            return {"tokens": [t.token for t in lps], "token_logprobs": [t.logprob for t in lps],
                    "top_logprobs": [{a.token: a.logprob for a in t.top_logprobs} for t in lps],
                    "text_offset": offsets}

        def usage(s: Any) -> dict[str, int]:
            return {"prompt_tokens": s.prompt_tokens, "completion_tokens": s.completion_tokens,
                    "total_tokens": s.prompt_tokens + s.completion_tokens}

        def finish_reason(s: Any) -> str:
            return "length" if s.finish_reason == "length" else "stop"

        async def answer(stop: threading.Event) -> JSONResponse:
            async with pool.lease(filename) as model:
                def run() -> dict[str, Any]:
                    text = model.generate(req.text, logprobs=req.logprobs, callback=_going_on(stop),
                                          **params.generate_kwargs())
                    out = body(text, model, finish_reason(model.stats), legacy_logprobs(model.last_logprobs))
                    out["usage"] = usage(model.stats)
                    return out

                return JSONResponse(await _in_thread(stop, run))

        if not req.stream:
            return await _unless_client_leaves(request, answer)

        # The model start() generates with, and the stats and logprobs its stream fills (they
        # belong to the worker thread that started it).
        loaded: list[Any] = []

        def start(model: Any) -> Any:
            stream = model.generate(req.text, streaming=True, logprobs=req.logprobs,
                                    **params.generate_kwargs())
            loaded.extend([model, model.stats, model.last_logprobs])
            return stream

        async def render(pieces: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
            model, stats, lps = loaded
            async for piece in pieces:
                yield body(piece, model, None, None)
            last = body("", model, finish_reason(stats), legacy_logprobs(lps))
            if req.stream_options and req.stream_options.include_usage:
                last["usage"] = usage(stats)
            yield last

        return await _unless_client_leaves(
            request, lambda stop: _event_stream(pool, filename, stop, start, render))

    @app.post("/v1/embeddings", responses=_errors(400, 401, 404, 413, 503))
    async def embeddings(req: EmbeddingRequest, request: Request) -> Any:
        filename = pool.resolve(req.model, embedding=True)

        async def answer(stop: threading.Event) -> JSONResponse:
            async with pool.lease(filename, "embedding") as embedder:
                return JSONResponse(await _in_thread(stop, lambda: _embed(embedder, filename, req, stop)))

        return await _unless_client_leaves(request, answer)

    @app.get("/v1/collections", responses=_errors(400, 401, 503))
    async def collections() -> dict[str, Any]:
        rows = await asyncio.to_thread(pool.collections)
        return {"object": "list", "data": [{"id": r["name"], "object": "collection", **r} for r in rows]}

    @app.post("/v1/collections/{name}/search", responses=_errors(400, 401, 404, 413, 503))
    async def search(name: Annotated[CollectionName, Path(description="a LocalDocs collection")],
                     req: SearchRequest, request: Request) -> Any:
        def run() -> list[dict[str, Any]]:
            return [r.as_dict() for r in pool.localdocs(name).search(req.query, req.k, mode=req.mode)]

        async def answer(stop: threading.Event) -> JSONResponse:
            async with pool.admit(SEARCH):
                return JSONResponse({"object": "list", "data": await _in_thread(stop, run)})

        return await _unless_client_leaves(request, answer)

    app.openapi = lambda: _openapi(app, config)  # type: ignore[method-assign]
    return app


#: What a name that fails its pattern should have been (pydantic would quote the regex).
_PATTERN_MEANING = {MODEL_NAME_PATTERN: f"invalid model name: {MODEL_NAME_MEANING}",
                    COLLECTION_NAME_PATTERN: f"invalid collection name: {COLLECTION_NAME_MEANING}"}


def _is_branch(part: Any) -> bool:
    """Whether a pydantic error location part names a union branch (``str``, ``list[int]``,
    ``function-after[...]``) rather than a field or an index."""
    return isinstance(part, str) and (part in {"str", "int", "float", "bool", "dict", "list", "none"}
                                      or "[" in part)


#: What each error status of the API means (its OpenAPI description).
_ERROR_MEANING = {
    400: "Bad request: a parameter, the body, or a Host this server does not serve",
    401: "Missing or wrong API key (servers started with one)",
    404: "Unknown model or collection",
    413: "Request body over the server's limit",
    503: "Busy (queue full or timed out), or a model or store unavailable: retry",
}


#: The 200 of an endpoint that streams with ``"stream": true``.
_STREAMED: dict[int | str, dict[str, Any]] = {200: {
    "description": "The result, or with \"stream\": true its chunks as Server-Sent Events "
                   "(\"data: {...}\" lines, then \"data: [DONE]\")",
    "content": {"application/json": {}, "text/event-stream": {}}}}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route that can answer these error statuses."""
    return {status: {"model": ErrorResponse, "description": _ERROR_MEANING[status]}
            for status in statuses}


def _openapi(app: FastAPI, config: ServerConfig) -> dict[str, Any]:
    """The API description as the server behaves: FastAPI's, less the 422 it adds to every
    route with parameters (this server answers 400 in OpenAI's shape instead), with this
    server's ``max_tokens`` limit and, when it has an API key, the bearer scheme."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        for model in schema.get("components", {}).get("schemas", {}).values():
            for name in ("max_tokens", "max_completion_tokens"):
                field = model.get("properties", {}).get(name)
                if field is not None:
                    for branch in field.get("anyOf", [field]):
                        if branch.get("type") == "integer":
                            branch["maximum"] = config.max_tokens_limit
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        if config.api_key is not None:  # the key every route but the public ones needs
            schema.setdefault("components", {})["securitySchemes"] = {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "--api-key"}}
            for path, operations in schema.get("paths", {}).items():
                if path not in PUBLIC_PATHS:
                    for operation in operations.values():
                        operation["security"] = [{"apiKey": []}]
        app.openapi_schema = schema
    return app.openapi_schema


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


def _with_localdocs(pool: ModelPool, req: ChatCompletionRequest, messages: list[dict[str, Any]],
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The messages with retrieved context in the last user message (the prompt code of
    ``chat_session(localdocs=...)``), and the references. A conversation without user text
    has nothing to search for: it goes to the model as it is, with no references."""
    from ..localdocs import build_prompt, search_collections

    assert req.localdocs is not None
    collections = [pool.localdocs(name) for name in dict.fromkeys(req.localdocs.collections)]
    last = _last_user_text(messages)
    if last is None:
        return messages, []
    index, question = last
    results = search_collections(collections, question, req.localdocs.k, mode=req.localdocs.mode)
    messages = list(messages)
    messages[index] = {**messages[index], "content": build_prompt(question, results)}
    references = [{"index": i, **{k: v for k, v in r.as_dict().items() if k != "metadata"}}
                  for i, r in enumerate(results, start=1)]
    return messages, references


def _embed(embedder: Any, filename: str, req: EmbeddingRequest, stop: threading.Event) -> dict[str, Any]:
    model = embedder.gpt4all.model
    items = req.input if isinstance(req.input, list) else [req.input]
    if items and isinstance(items[0], int):
        items = [items]  # one token array
    texts = [i if isinstance(i, str) else model.detokenize(list(i)) for i in items]
    if any(not t for t in texts):
        raise ApiError(400, "an input is empty", param="input")
    prefix = None
    full = embedder.dimensionality
    if req.dimensions is not None and req.dimensions != full and not (
            req.dimensions < full and embedder.rule is not None and embedder.rule.matryoshka):
        raise ApiError(400, f"dimensions must be omitted or {full} for {filename}"
                            f"{'' if req.dimensions > full else ' (not a Matryoshka model)'}",
                       param="dimensions")
    if req.input_type == "query":
        if embedder.rule is None:
            raise ApiError(400, f"{filename} has no known query prefix", param="input_type")
        prefix = embedder.rule.query_prefix
    vectors = embedder.embed(texts, prefix=prefix, dimensionality=req.dimensions,
                             cancel_cb=lambda *_: stop.is_set())
    n_tokens = sum(len(model.tokenize(t, add_special=True)) for t in texts)
    data = []
    for i, v in enumerate(vectors):
        value: Any = v
        if req.encoding_format == "base64":
            value = base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {"object": "list", "data": data, "model": filename,
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}}

