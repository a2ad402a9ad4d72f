"""What a request passes before any route sees it: its connection's read deadline, its Host,
its API key, the size of its body, and the text it carries.

In the order a request meets them:

1. :func:`deadline_protocol`: uvicorn's HTTP protocol with a read deadline. A request's head
   and body must arrive within ``read_timeout_s`` of its first byte (or of the connection's
   opening, or of the previous response): a client that sends nothing, part of its headers or
   part of its body is answered 408 (when no request started) and disconnected. uvicorn has a
   keep-alive timeout and a connection limit but no such read timeout; without it, slow
   clients hold connections open forever (the "slowloris" attack).
2. :class:`HostCheck`: DNS rebinding protection. A web page a user visits can make its own
   host name resolve to 127.0.0.1 and then read a loopback server as if it were the page's
   own origin; its requests then carry the page's host name in ``Host``. Without an API key,
   only these ``Host`` values are served: loopback names (``localhost``), IP literals (a page
   whose origin is an IP address was served by that address), the address the server is bound
   to, and ``--allowed-host`` names. Others get 400 ``invalid_host``. With an API key every
   host is served (a page cannot know the key).
3. :class:`ApiKeyCheck`: with an API key, every path but the public ones (``/health`` and the
   API description) needs ``Authorization: Bearer KEY`` (or ``x-api-key: KEY``) and gets 401
   without it, before the body is read or parsed.
4. :class:`BodyLimit`: 413 for a body over the limit, by ``Content-Length`` or while a
   chunked body streams in.
5. :class:`TextRoute`: every string of a JSON body is a Unicode scalar value sequence.
   JavaScript strings may hold lone UTF-16 surrogates (an emoji cut in half), which JSON
   carries as ``\\ud83d`` escapes and no UTF-8 text can hold; each one becomes U+FFFD, the rule
   by which browsers turn a JavaScript string into a ``USVString`` (WHATWG Infra, "convert a
   string into a scalar value string"). The same rule applies to every endpoint, streamed or
   not. NUL and every other scalar value stay as sent (they are text).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .pool import ApiError
from .serving import error_response

__all__ = ["ApiKeyCheck", "BodyLimit", "HostCheck", "PUBLIC_PATHS", "TextRoute", "deadline_protocol",
           "scalar_values"]

#: Paths served without the API key: the health check and the API's own description.
PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


async def _refuse(error: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
    await error_response(scope["path"], error)(scope, receive, send)


def _host_name(header: str) -> str:
    """The host of a ``Host`` header value, without its port, lower case, without a final dot
    (``[::1]:8080`` -> ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    if header.count(":") == 1:
        header = header.partition(":")[0]
    return header.rstrip(".")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostCheck:
    """400 ``invalid_host`` for a ``Host`` header this server does not serve (see the module).

    Args:
        app: the application behind the check.
        allowed_hosts: host names served besides ``localhost`` and IP literals (the bound
            address, ``--allowed-host`` names); ``"*"`` serves every host.
        open_to_all: serve every host (an API key is set).
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str], open_to_all: bool = False) -> None:
        self.app = app
        self.allowed = {_host_name(h) for h in allowed_hosts} | {"localhost"}
        self.open_to_all = open_to_all or "*" in self.allowed

    def allows(self, header: str | None) -> bool:
        """Whether a request with this ``Host`` value (None: no header, HTTP/1.0) is served."""
        if self.open_to_all or header is None:
            return True
        host = _host_name(header)
        return host in self.allowed or _is_ip(host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = dict(scope.get("headers") or []).get(b"host")
            header = raw.decode("latin-1") if raw is not None else None
            if not self.allows(header):
                name = _host_name(header or "")
                await _refuse(ApiError(
                    400, f"this server does not serve the host {name!r} (DNS rebinding "
                         f"protection); start it with --allowed-host {name} or --api-key",
                    code="invalid_host"), scope, receive, send)
                return
        await self.app(scope, receive, send)


class ApiKeyCheck:
    """401 ``invalid_api_key`` unless the request carries ``Authorization: Bearer KEY`` or
    (Anthropic's header) ``x-api-key: KEY`` (paths in :data:`PUBLIC_PATHS` and CORS preflights
    excepted), checked before the body is read. The comparison takes the same time for every
    wrong key of the same length (``hmac.compare_digest``)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app, self.key = app, api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in PUBLIC_PATHS and scope["method"] != "OPTIONS":
            headers = dict(scope.get("headers") or [])
            scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
            if scheme.lower() != b"bearer":  # Anthropic's clients send x-api-key instead
                token = headers.get(b"x-api-key", b"")
            if not hmac.compare_digest(token.strip(), self.key):
                await _refuse(ApiError(401, "missing or wrong API key: send 'Authorization: Bearer KEY'",
                                       code="invalid_api_key"), scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """413 ``request_too_large`` for a request body over ``limit`` bytes (``uploads``: other
    limits by path): at once by ``Content-Length``, or as soon as a chunked body passes the
    limit while it streams in."""

    def __init__(self, app: ASGIApp, limit: int, uploads: dict[str, int] | None = None) -> None:
        self.app, self.limit, self.uploads = app, limit, uploads or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.uploads.get(scope["path"], self.limit)
        message = f"the request body is larger than {limit:,} bytes"
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _refuse(ApiError(413, message, code="request_too_large"), scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            received = await receive()
            if received["type"] == "http.request":
                seen += len(received.get("body", b""))
                if seen > limit:
                    # FastAPI passes an HTTPException raised while it reads the body on to the
                    # app's handler (any other exception becomes its own 400).
                    raise StarletteHTTPException(413, message)
            return received

        await self.app(scope, limited, send)


def scalar_values(value: Any) -> Any:
    """``value`` (parsed JSON) with every lone surrogate of every string, keys included,
    replaced by U+FFFD (WHATWG Infra's scalar value string conversion). Returns the same object
    when nothing needed it."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, list):
        return [scalar_values(v) for v in value]
    if isinstance(value, dict):
        return {scalar_values(k): scalar_values(v) for k, v in value.items()}
    return value


class _ScalarValueRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = scalar_values(json.loads(await self.body()))
        return self._json


class TextRoute(APIRoute):
    """A FastAPI route whose JSON body holds only Unicode scalar values (:func:`scalar_values`),
    whatever the client sent: set as the app's ``route_class``."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Any:
            return await handler(_ScalarValueRequest(request.scope, request.receive))

        return route


_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                     b"connection: close\r\ncontent-length: %d\r\n\r\n%s")


class _DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a read deadline per request (see the module)."""

    read_timeout_s = 30.0
    _deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.read_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # no request has started
            body = json.dumps(ApiError(408, f"the request did not arrive within "
                                            f"{self.read_timeout_s:g} s", code="request_timeout",
                                       ).body()).encode()
            self.transport.write(_TIMEOUT_RESPONSE % (len(body), body))
        # A request whose body stopped coming: its handler sees the disconnect.
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's deadline, unless a pipelined request has already started.
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def deadline_protocol(read_timeout_s: float) -> type[HttpToolsProtocol]:
    """uvicorn's ``http`` protocol class with a read deadline of ``read_timeout_s`` seconds per
    request (pass it as ``uvicorn.run(..., http=deadline_protocol(30))``)."""
    return type("DeadlineProtocol", (_DeadlineProtocol,), {"read_timeout_s": float(read_timeout_s)})
