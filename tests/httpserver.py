"""A real HTTP server on 127.0.0.1 for tests that download things, with misbehaviour on demand.

It serves byte strings registered under URL paths, honours ``Range: bytes=N-`` requests with
``206 Partial Content``, records every request, and can misbehave the way real networks and
servers do (see :class:`Behaviour`). Use it through the ``http_server`` fixture of
``tests/unit/conftest.py``, or on its own::

    with FileServer() as server:
        server.add("/model.gguf", b"...", Behaviour(drop_after=100))
        url = server.url("/model.gguf")
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Behaviour", "FileServer", "RequestRecord"]

_RANGE_RE = re.compile(r"bytes=(\d+)-(\d*)")


@dataclasses.dataclass
class Behaviour:
    """How one served path misbehaves. Defaults: a well-behaved static file server.

    Attributes:
        status: answer every request with this HTTP status (e.g. 404, 500) and no body.
        status_times: how many requests get ``status`` before the path behaves (``None``:
            all of them).
        drop_after: send the full headers but only this many body bytes, then close the
            connection (a dropped connection).
        drop_times: how many responses are dropped before the path behaves (``None``: all).
        stall_after: send this many body bytes, then sleep ``stall_s`` seconds before the rest.
        stall_s: seconds to sleep (make it longer than the client's timeout).
        stall_times: how many responses stall (``None``: all).
        ignore_range: answer Range requests with ``200`` and the whole body.
        wrong_range_start: answer Range requests with a 206 whose range starts this many bytes
            later than asked (and whose body matches that wrong range).
        body: send these bytes instead of the registered ones (e.g. a corrupted copy).
        declared_length: send this ``Content-Length`` instead of the true one.
        send_length: if False, send no ``Content-Length``: the body ends when the connection
            closes.
        headers: extra response headers (e.g. ``{"Content-Encoding": "gzip"}``).
    """

    status: int | None = None
    status_times: int | None = None
    drop_after: int | None = None
    drop_times: int | None = 1
    stall_after: int | None = None
    stall_s: float = 0.0
    stall_times: int | None = 1
    ignore_range: bool = False
    wrong_range_start: int = 0
    body: bytes | None = None
    declared_length: int | None = None
    send_length: bool = True
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One request the server received."""

    method: str
    path: str
    range: str | None


@dataclasses.dataclass
class _Resource:
    data: bytes
    content_type: str
    behaviour: Behaviour
    served: dict[str, int] = dataclasses.field(default_factory=dict)  # misbehaviour -> count

    def take(self, what: str, times: int | None) -> bool:
        """Whether misbehaviour ``what`` applies to this response (counts it if so)."""
        done = self.served.get(what, 0)
        if times is not None and done >= times:
            return False
        self.served[what] = done + 1
        return True


class FileServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 and a free port. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resources: dict[str, _Resource] = {}
        self._requests: list[RequestRecord] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True  # a stalled handler must not block shutdown
        self._thread: threading.Thread | None = None

    # -- life cycle --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self._httpd.server_address[1])

    def start(self) -> FileServer:
        """Start serving in a background thread; returns ``self``."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- content -----------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` (which starts with ``/``)."""
        return f"http://127.0.0.1:{self.port}{path}"

    def add(
        self,
        path: str,
        data: bytes,
        behaviour: Behaviour | None = None,
        content_type: str = "application/octet-stream",
    ) -> str:
        """Serve ``data`` at ``path``, misbehaving as ``behaviour`` says; returns the URL."""
        with self._lock:
            self._resources[path] = _Resource(data, content_type, behaviour or Behaviour())
        return self.url(path)

    def add_catalog(
        self,
        entries: Iterable[object],
        path: str = "/models3.json",
        behaviour: Behaviour | None = None,
    ) -> str:
        """Serve ``entries`` (JSON values, bad ones too) as models3.json; returns the URL."""
        body = json.dumps(list(entries)).encode()
        return self.add(path, body, behaviour, content_type="application/json")

    def add_model(
        self,
        filename: str,
        data: bytes,
        behaviour: Behaviour | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Serve ``data`` at ``/gguf/<filename>``; return its catalogue entry.

        The entry has ``filename``, ``name``, ``filesize`` (a string, as in models3.json),
        ``md5sum`` and ``url``; ``fields`` add to or override them.
        """
        url = self.add(f"/gguf/{filename}", data, behaviour)
        entry: dict[str, Any] = {
            "name": filename.rsplit(".", 1)[0],
            "filename": filename,
            "filesize": str(len(data)),
            "md5sum": hashlib.md5(data).hexdigest(),
            "url": url,
        }
        entry.update(fields)
        return entry

    def set_behaviour(self, path: str, behaviour: Behaviour) -> None:
        """Replace the behaviour of ``path`` and forget how often it misbehaved."""
        with self._lock:
            resource = self._resources[path]
            resource.behaviour = behaviour
            resource.served.clear()

    def reset(self) -> None:
        """Forget all content and recorded requests."""
        with self._lock:
            self._resources.clear()
            self._requests.clear()

    # -- inspection --------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of all requests received, oldest first."""
        with self._lock:
            return list(self._requests)

    def request_count(self, path: str | None = None) -> int:
        """How many requests were received (for ``path`` only, if given)."""
        return sum(1 for r in self.requests if path is None or r.path == path)

    # -- used by the handler -----------------------------------------------------------------

    def _lookup(self, method: str, path: str, range_header: str | None) -> _Resource | None:
        with self._lock:
            self._requests.append(RequestRecord(method, path, range_header))
            return self._resources.get(path)

    def _take(self, resource: _Resource, what: str, times: int | None) -> bool:
        with self._lock:
            return resource.take(what, times)


def _make_handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
            """Keep test output quiet."""

        def do_GET(self) -> None:
            # The client may go away (it timed out, or we dropped it on purpose).
            with contextlib.suppress(ConnectionError, TimeoutError):
                self._serve()
            self.close_connection = True

        def _serve(self) -> None:
            range_header = self.headers.get("Range")
            resource = server._lookup("GET", self.path, range_header)
            if resource is None:
                self._reply_status(404)
                return
            behaviour = resource.behaviour
            if behaviour.status is not None and server._take(
                resource, "status", behaviour.status_times
            ):
                self._reply_status(behaviour.status)
                return
            data = behaviour.body if behaviour.body is not None else resource.data
            start = 0
            match = _RANGE_RE.fullmatch(range_header or "")
            if match is not None and not behaviour.ignore_range:
                start = int(match.group(1)) + behaviour.wrong_range_start
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            length = behaviour.declared_length if behaviour.declared_length is not None else None
            if length is not None and start:
                length -= start
            self.send_header("Content-Type", resource.content_type)
            if behaviour.send_length:
                self.send_header("Content-Length", str(len(body) if length is None else length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Connection", "close")
            for name, value in behaviour.headers.items():
                self.send_header(name, value)
            self.end_headers()

            if behaviour.drop_after is not None and server._take(
                resource, "drop", behaviour.drop_times
            ):
                self.wfile.write(body[: behaviour.drop_after])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if behaviour.stall_after is not None and server._take(
                resource, "stall", behaviour.stall_times
            ):
                self.wfile.write(body[: behaviour.stall_after])
                self.wfile.flush()
                time.sleep(behaviour.stall_s)
                body = body[behaviour.stall_after :]
            self.wfile.write(body)
            self.wfile.flush()

        def _reply_status(self, status: int) -> None:
            payload = f"status {status}\n".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)

    return Handler
