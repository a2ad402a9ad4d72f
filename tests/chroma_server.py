"""A real Chroma server for tests: ``chroma run`` on 127.0.0.1 and a free port.

Shared by the server tier (``tests/server/conftest.py``) and the LangChain integration tests,
so both run the same body against the embedded store and a server. The executable is the
``chroma`` next to ``sys.executable`` (the chromadb package installs it). A server that does
not answer fails the test session: nothing is skipped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER_START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def heartbeat(port: int) -> str | None:
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


@contextlib.contextmanager
def running_chroma_server(data: Path) -> Iterator[str]:
    """Run ``chroma run --path data`` until the block ends; yields ``http://127.0.0.1:<port>``.

    The log goes to ``<data>.log``; it is shown when the server fails to start.
    """
    chroma = Path(sys.executable).with_name("chroma")
    if not chroma.is_file():
        pytest.fail(f"the chroma executable is missing: {chroma} (pip install chromadb)")
    log_path = data.with_name(data.name + ".log")
    port = free_port()
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(chroma), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while (why := heartbeat(port)) is not None:
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
