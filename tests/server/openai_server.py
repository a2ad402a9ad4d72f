"""Real server processes on 127.0.0.1 for the server tests (and bench/bench_server.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from chroma_server import free_port

START_TIMEOUT_S = 120.0


class ServerUrl(str):
    """``http://127.0.0.1:<port>`` of a running server, with its ``process``."""

    process: subprocess.Popen


@contextlib.contextmanager
def running_http_server(cmd: list[str], port: int, *, env: dict[str, str] | None = None,
                        ) -> Iterator[ServerUrl]:
    """Run ``cmd`` (a server on 127.0.0.1:``port``) until the block ends, once it answers
    ``GET /health``; yields ``http://127.0.0.1:<port>`` (a :class:`ServerUrl`). Stopped by SIGINT (Ctrl-C), killed
    after 20 s. Also used by bench/bench_server.py for both servers.

    Raises:
        RuntimeError: the server did not answer in time (its output is included).
    """
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"g4r-server-{port}.log", "w+b")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = ServerUrl(f"http://127.0.0.1:{port}")
    url.process = proc
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"{Path(cmd[0]).name} did not start: {log.read().decode()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C: uvicorn stops cleanly
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()


def running_openai_server(model_dir: Path, *args: str, env: dict[str, str] | None = None,
                          ) -> contextlib.AbstractContextManager[ServerUrl]:
    """``gpt4all-rag serve`` on 127.0.0.1 and a free port (see :func:`running_http_server`)."""
    port = free_port()
    exe = Path(sys.executable).with_name("gpt4all-rag")
    return running_http_server([str(exe), "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--model-path", str(model_dir), "--threads", "2", *args],
                               port, env=env)
