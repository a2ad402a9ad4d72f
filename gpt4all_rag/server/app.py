"""The OpenAI-compatible HTTP API: FastAPI routes mapped onto the chat core.

Endpoints: ``GET /health``, ``GET /v1/models``, ``GET /v1/models/{model}``, ``POST /v1/chat/completions``,
``POST /v1/completions``, ``POST /v1/embeddings``, ``GET /v1/collections``,
``POST /v1/collections/{name}/search``; Anthropic's ``POST /v1/messages`` (:mod:`.anthropic`),
``POST /tokenize``, ``POST /detokenize``, ``GET /metrics`` (:mod:`.metrics`) and LocalDocs for
agents over MCP at ``/mcp`` (:mod:`.mcp`). Request fields are :mod:`.schemas`; responses are the
chat core's objects as OpenAI's JSON. Streaming is Server-Sent Events (``data: {...}`` chunks,
then ``data: [DONE]``) by sse-starlette. A client that disconnects stops its request's work,
streamed or not (:func:`.serving.unless_client_leaves`): waiting requests never run, a generation
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
import re
import threading
import time
import uuid
from contextlib import asynccontextmanager
from typing import Annotated, Any, AsyncIterator

import numpy as np
from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Match

from .. import errors
from ..engine.types import ChatCompletionChunk
from ..names import COLLECTION_NAME_MEANING, COLLECTION_NAME_PATTERN, MODEL_NAME_MEANING, MODEL_NAME_PATTERN
from .anthropic import AnthropicErrorResponse, messages_router
from .guards import PUBLIC_PATHS, ApiKeyCheck, BodyLimit, HostCheck, TextRoute
from .mcp import localdocs_mcp
from .responses import responses_router
from .vector_stores import vector_stores_router
from .metrics import CONTENT_TYPE, CountRequests, Metrics
from .pool import SEARCH, ApiError, ModelPool, ServerConfig
from .schemas import (ChatCompletionRequest, CollectionName, CompletionRequest, DetokenizeRequest,
                      EmbeddingRequest, ErrorResponse, ModelName, SearchRequest, TokenizeMessages, TokenizeText)
from .serving import (api_error, chat_stream, complete, error_response, event_stream, going_on, in_thread,
                      retrieve, unless_client_leaves)

__all__ = ["create_app"]


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
        async with mcp_server.session_manager.run():
            yield
        await asyncio.to_thread(pool.close)

    app = FastAPI(title="gpt4all-rag", description="OpenAI-compatible API with LocalDocs",
                  version="1", lifespan=lifespan)
    app.router.route_class = TextRoute  # every string of every body: scalar values
    app.state.pool = pool
    app.state.metrics = metrics = Metrics(pool)
    # Middleware, innermost first (each add_middleware wraps the app so far): the body limit,
    # the API key (before any body is read), CORS (answers preflights without a key), Host.
    app.add_middleware(BodyLimit, limit=config.max_body_bytes,
                       uploads={"/v1/files": config.max_file_bytes + 64 * 1024})  # + multipart framing
    if config.api_key is not None:
        app.add_middleware(ApiKeyCheck, api_key=config.api_key)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=config.cors_origins,
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(HostCheck, allowed_hosts=[config.host, *config.allowed_hosts],
                       open_to_all=config.api_key is not None)
    app.add_middleware(CountRequests, metrics=metrics, routes=app.router.routes)

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request.url.path, exc)

    @app.exception_handler(errors.GPT4AllRagError)
    async def _ours(request: Request, exc: errors.GPT4AllRagError) -> JSONResponse:
        return error_response(request.url.path, api_error(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        found = exc.errors()
        # Of a union's failed branches, the one that got past the type check says most.
        first = next((e for e in found if not str(e.get("type", "")).endswith("_type")),
                     found[0] if found else {})
        if first.get("type") == "json_invalid":
            e = ApiError(400, f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'decode error')} "
                              f"at character {first.get('loc', ('', '?'))[-1]})")
            return error_response(request.url.path, e)
        loc = _field_path(first.get("loc", ()), exc.body)
        msg = _PATTERN_MEANING.get(first.get("ctx", {}).get("pattern"),
                                   str(first.get("msg", "invalid request")).removeprefix("Value error, "))
        e = ApiError(400, f"{'.'.join(loc) or 'body'}: {msg}", param=".".join(loc) or None)
        return error_response(request.url.path, e)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = exc.headers
        if exc.status_code == 405:  # Starlette names the first matching route's methods only
            allowed = {m for r in app.router.routes if isinstance(r, BaseRoute)
                       and r.matches(request.scope)[0] == Match.PARTIAL for m in getattr(r, "methods", ()) or ()}
            headers = {**(headers or {}), "Allow": ", ".join(sorted(allowed))}
        return error_response(request.url.path, ApiError(exc.status_code, str(exc.detail)), headers)

    @app.api_route("/health", methods=["GET", "HEAD"], responses=_errors(400))
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    def model_object(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 0, "owned_by": "gpt4all-rag"}

    @app.get("/v1/models", responses=_errors(400, 401))
    async def list_models() -> dict[str, Any]:
        names = await asyncio.to_thread(pool.list_models)
        return {"object": "list", "data": [model_object(n) for n in names]}

    @app.get("/v1/models/{model}", responses=_errors(400, 401, 404))
    async def retrieve_model(model: Annotated[ModelName, Path()]) -> dict[str, Any]:
        def known() -> bool:
            names = pool.list_models()
            return model in names or pool.resolve(model) in names  # resolve: 400 malformed, 404 absent

        if not await asyncio.to_thread(known):
            raise ApiError(404, f"the model {model!r} does not exist", param="model", code="model_not_found")
        return model_object(model)

    @app.post("/v1/chat/completions", responses={**_STREAMED, **_errors(400, 401, 404, 413, 503)})
    async def chat_completions(req: ChatCompletionRequest, request: Request) -> Any:
        filename = pool.resolve(req.model)
        params = req.sampling_params(config)
        chat = req.chat_arguments()
        kwargs = dict(tools=chat["tools"], tool_choice=chat["tool_choice"],
                      response_format=chat["response_format"], logprobs=req.logprobs,
                      top_logprobs=req.top_logprobs, enable_thinking=req.enable_thinking)
        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        async def answer(stop: threading.Event) -> JSONResponse:
            messages, references = await retrieve(pool, req.localdocs, chat["messages"], stop, metrics.search)
            body = (await complete(pool, filename, messages, params, kwargs, stop, metrics)).to_dict()
            if references is not None:
                body["references"] = references
            return JSONResponse(body)

        async def stream(stop: threading.Event) -> EventSourceResponse:
            messages, references = await retrieve(pool, req.localdocs, chat["messages"], stop, metrics.search)

            async def render(chunks: AsyncIterator[ChatCompletionChunk]) -> AsyncIterator[dict[str, Any]]:
                last: ChatCompletionChunk | None = None
                async for chunk in chunks:
                    last = chunk
                    yield {**chunk.to_dict(), "usage": None}  # OpenAI: usage only in its own chunk
                if last is not None and include_usage and last.usage is not None:
                    yield {**last.to_dict(), "choices": []}
                if references is not None and last is not None:
                    yield {"id": last.id, "object": "chat.completion.chunk", "created": last.created,
                           "model": last.model, "choices": [], "references": references}

            return await chat_stream(pool, filename, messages, params, kwargs, stop, metrics, render)

        return await unless_client_leaves(request, stream if req.stream else answer)

    @app.post("/v1/completions", responses={**_STREAMED, **_errors(400, 401, 404, 413, 503)})
    async def completions(req: CompletionRequest, request: Request) -> Any:
        filename = pool.resolve(req.model)
        params = req.sampling_params(config)
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

        def usage(s: Any) -> dict[str, Any]:
            counted = s.usage()
            metrics.tokens(filename, counted)
            return counted.to_dict()

        def finish_reason(s: Any) -> str:
            return "length" if s.finish_reason == "length" else "stop"

        async def answer(stop: threading.Event) -> JSONResponse:
            async with pool.lease(filename) as model:
                def run() -> dict[str, Any]:
                    engine = model.engine
                    text = engine.create_completion(
                        req.text, params, logprobs=req.logprobs,
                        callback=going_on(stop, metrics.first_token(filename)))
                    out = body(text, model, finish_reason(engine.stats), legacy_logprobs(engine.last_logprobs))
                    out["usage"] = usage(engine.stats)
                    return out

                return JSONResponse(await in_thread(stop, run))

        if not req.stream:
            return await unless_client_leaves(request, answer)

        # The model start() generates with, and the stats and logprobs its stream fills (they
        # belong to the worker thread that started it).
        loaded: list[Any] = []

        async def render(pieces: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
            model, stats, lps = loaded
            async for piece in pieces:
                yield body(piece, model, None, None)
            last = body("", model, finish_reason(stats), legacy_logprobs(lps))
            counted = usage(stats)
            if req.stream_options and req.stream_options.include_usage:
                last["usage"] = counted
            yield last

        async def stream(stop: threading.Event) -> EventSourceResponse:
            def start(model: Any) -> Any:
                engine = model.engine
                pieces = engine.create_completion(
                    req.text, params, stream=True, logprobs=req.logprobs,
                    callback=going_on(stop, metrics.first_token(filename)))
                loaded.extend([model, engine.stats, engine.last_logprobs])
                return pieces

            return await event_stream(pool, filename, stop, start, render)

        return await unless_client_leaves(request, stream)

    @app.post("/v1/embeddings", responses=_errors(400, 401, 404, 413, 503))
    async def embeddings(req: EmbeddingRequest, request: Request) -> Any:
        filename = pool.resolve(req.model, embedding=True)

        async def answer(stop: threading.Event) -> JSONResponse:
            async with pool.lease(filename, "embedding") as embedder:
                return JSONResponse(await in_thread(stop, lambda: _embed(embedder, filename, req, stop)))

        return await unless_client_leaves(request, answer)

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
                with metrics.search():
                    return JSONResponse({"object": "list", "data": await in_thread(stop, run)})

        return await unless_client_leaves(request, answer)

    @app.post("/tokenize", responses=_errors(400, 401, 404, 413, 503))
    async def tokenize(req: TokenizeText | TokenizeMessages) -> dict[str, Any]:
        filename = pool.resolve(req.model)
        async with pool.lease(filename) as model:
            def run() -> list[int]:
                if isinstance(req, TokenizeText):
                    return model.engine.tokenize(req.content, add_special=req.add_special, parse_special=False)
                chat = req.chat_arguments()
                return model.engine.chat_prompt_tokens(chat["messages"], tools=chat["tools"],
                                                tool_choice=chat["tool_choice"],
                                                enable_thinking=req.enable_thinking)

            tokens = await in_thread(threading.Event(), run)
            if not req.with_pieces:
                return {"tokens": tokens}
            return {"tokens": [{"id": t, "piece": _piece(model.engine.token_to_piece(t, special=True))}
                               for t in tokens]}

    @app.post("/detokenize", responses=_errors(400, 401, 404, 413, 503))
    async def detokenize(req: DetokenizeRequest) -> dict[str, str]:
        filename = pool.resolve(req.model)
        async with pool.lease(filename) as model:
            text = await in_thread(threading.Event(), lambda: model.engine.detokenize(req.tokens))
        return {"content": text}

    @app.get("/metrics", responses={200: {"description": "Prometheus text format",
                                          "content": {CONTENT_TYPE: {}}}, **_errors(400, 401)})
    async def prometheus_metrics() -> Response:
        return Response(await asyncio.to_thread(metrics.exposition), media_type=CONTENT_TYPE)

    # LocalDocs for agents: the MCP server's streamable HTTP endpoint, behind the same checks.
    mcp_server = localdocs_mcp(pool, allow_index=config.mcp_allow_index)
    app.router.routes.extend(mcp_server.streamable_http_app().routes)  # the route /mcp
    app.include_router(vector_stores_router(pool, config, metrics, _errors(400, 401, 404, 413, 503)))
    app.include_router(responses_router(pool, config, metrics, {
        **_STREAMED, **_errors(400, 401, 404, 413, 503)}))
    app.include_router(messages_router(pool, config, metrics, {
        **_STREAMED, **_errors(400, 401, 404, 413, 529, model=AnthropicErrorResponse)}))
    app.openapi = lambda: _openapi(app, config)  # type: ignore[method-assign]
    return app


def _piece(raw: bytes) -> str | list[int]:
    """A token's text, or its bytes where it is not whole UTF-8 (llama.cpp's server's rule)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return list(raw)


#: What a name that fails its pattern should have been (pydantic would quote the regex).
_PATTERN_MEANING = {MODEL_NAME_PATTERN: f"invalid model name: {MODEL_NAME_MEANING}",
                    COLLECTION_NAME_PATTERN: f"invalid collection name: {COLLECTION_NAME_MEANING}"}


def _field_path(loc: Any, body: Any) -> list[str]:
    """The fields and indexes of a pydantic error location as the client wrote them: the
    location walked through the request's body, leaving out what names a union branch
    (:func:`_is_branch`) or a discriminated union's tag (``messages.0.user.content`` is
    ``messages.0.content``); a last field the body lacks (a missing one) is kept."""
    parts = [p for p in loc if p not in ("body", "path", "query") and not _is_branch(p)]
    out: list[str] = []
    node = body
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif i < len(parts) - 1 and isinstance(node, dict):
            continue  # a tag: the value of a field of this object, not a field
        else:
            node = None
        out.append(str(part))
    return out


def _is_branch(part: Any) -> bool:
    """Whether a pydantic error location part names a union branch (``str``, ``list[int]``,
    ``function-after[...]``, ``constrained-str``, a model class such as ``TokenizeText``)
    rather than a field or an index (the API's fields are snake_case)."""
    return isinstance(part, str) and (part in {"str", "int", "float", "bool", "dict", "list", "none"}
                                      or "[" in part or part.startswith("constrained-")
                                      or re.fullmatch(r"[A-Z][A-Za-z0-9]*", part) is not None)


#: What each error status of the API means (its OpenAPI description).
_ERROR_MEANING = {
    400: "Bad request: a parameter, the body, or a Host this server does not serve",
    401: "Missing or wrong API key (servers started with one)",
    404: "Unknown model or collection",
    413: "Request body over the server's limit",
    503: "Busy (queue full or timed out), or a model or store unavailable: retry",
    529: "Anthropic's status for 503: overloaded (queue full or timed out), or a model or store "
         "unavailable: retry",
}


#: The 200 of an endpoint that streams with ``"stream": true``.
_STREAMED: dict[int | str, dict[str, Any]] = {200: {
    "description": "The result, or with \"stream\": true its chunks as Server-Sent Events "
                   "(\"data: {...}\" lines, then \"data: [DONE]\")",
    "content": {"application/json": {}, "text/event-stream": {}}}}


def _errors(*statuses: int, model: type[Any] = ErrorResponse) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route that can answer these error statuses (``model``:
    the API's error object)."""
    return {status: {"model": model, "description": _ERROR_MEANING[status]} for status in statuses}


def _openapi(app: FastAPI, config: ServerConfig) -> dict[str, Any]:
    """The API description as the server behaves: FastAPI's, less the 422 it adds to every
    route with parameters (this server answers 400 in OpenAI's shape instead), with this
    server's ``max_tokens`` limit and, when it has an API key, the bearer scheme."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        for model in schema.get("components", {}).get("schemas", {}).values():
            for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
                field = model.get("properties", {}).get(name)
                if field is not None:
                    for branch in field.get("anyOf", [field]):
                        if branch.get("type") == "integer":
                            branch.pop("exclusiveMaximum", None)  # the server's limit is lower
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


def _embed(embedder: Any, filename: str, req: EmbeddingRequest, stop: threading.Event) -> dict[str, Any]:
    items = req.input if isinstance(req.input, list) else [req.input]
    if items and isinstance(items[0], int):
        items = [items]  # one token array
    texts = [i if isinstance(i, str) else embedder.engine.detokenize(list(i)) for i in items]
    if any(not t for t in texts):
        raise ApiError(400, "an input is empty", param="input")
    full = embedder.dimensionality
    if req.dimensions is not None and req.dimensions != full and not (
            req.dimensions < full and embedder.rule is not None and embedder.rule.matryoshka):
        raise ApiError(400, f"dimensions must be omitted or {full} for {filename}"
                            f"{'' if req.dimensions > full else ' (not a Matryoshka model)'}",
                       param="dimensions")
    try:
        prefix = embedder.resolve_prefix(None, req.input_type)
    except errors.InvalidParameterError as exc:  # the model's prefixes are unknown
        raise ApiError(400, f"{filename} has no known {req.input_type} prefix (its task prefixes "
                            "are unknown)", param="input_type") from exc
    vectors = embedder.embed(texts, prefix=prefix, dimensionality=req.dimensions,
                             cancel_cb=lambda *_: stop.is_set())
    n_tokens = sum(len(embedder.engine.tokenize(t, add_special=True, parse_special=False)) for t in texts)
    data = []
    for i, v in enumerate(vectors):
        value: Any = v
        if req.encoding_format == "base64":
            value = base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {"object": "list", "data": data, "model": filename,
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}}

