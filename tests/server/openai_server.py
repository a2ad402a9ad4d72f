"""``gpt4all-rag serve`` as a real process on 127.0.0.1 and a free port, for the server tests."""

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


@contextlib.contextmanager
def running_openai_server(model_dir: Path, *args: str, env: dict[str, str] | None = None,
                          ) -> Iterator[str]:
    """Run ``gpt4all-rag serve`` until the block ends; yields ``http://127.0.0.1:<port>``.

    Raises:
        RuntimeError: the server did not answer ``/health`` in time (its output is included).
    """
    port = free_port()
    exe = Path(sys.executable).with_name("gpt4all-rag")
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"g4r-serve-{port}.log", "w+b")
    proc = subprocess.Popen([str(exe), "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--model-path", str(model_dir), "--threads", "2", *args],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
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
                raise RuntimeError(f"gpt4all-rag serve did not start: {log.read().decode()[-2000:]}")
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
