"""Helpers of the server tier: backends, plain Chroma views of a collection, the worker."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from gpt4all_rag.localdocs import LocalDocs

#: Embedding threads for every LocalDocs in these tests. ggml's worker threads spin, so on a
#: busy 2-core machine one thread is much faster than two (see the project's FACTS).
N_THREADS = 1
WORKER = Path(__file__).with_name("worker.py")

Backend = dict[str, Any]
"""Keyword arguments for LocalDocs: ``collection`` and ``persist_directory`` or ``chroma_url``."""


def unique_name(prefix: str = "t") -> str:
    """A collection name no other test uses (the server is shared by the whole session)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def make_backend(kind: str, request: pytest.FixtureRequest, folder: Path,
                 prefix: str = "t") -> Backend:
    """LocalDocs keyword arguments for ``kind``: ``collection`` and where the store lives."""
    if kind == "embedded":
        return {"collection": unique_name(prefix), "persist_directory": str(folder / "db")}
    url = request.getfixturevalue("chroma_server")
    return {"collection": unique_name(prefix), "chroma_url": url}


def with_name(backend: Backend, prefix: str = "t") -> Backend:
    """The same store with a new, unique collection name."""
    return {**backend, "collection": unique_name(prefix)}


def plain_client(backend: Backend) -> Any:
    """A chromadb client on the backend's store, made without gpt4all_rag.

    Same settings as LocalDocs' own client: in one process, chromadb refuses a second
    embedded client on a path with different settings ("An instance of Chroma already
    exists for ... with different settings").
    """
    from urllib.parse import urlparse

    import chromadb

    settings = chromadb.config.Settings(anonymized_telemetry=False)
    if "chroma_url" in backend:
        u = urlparse(backend["chroma_url"])
        return chromadb.HttpClient(host=u.hostname or "127.0.0.1", port=u.port or 8000,
                                   settings=settings)
    return chromadb.PersistentClient(path=backend["persist_directory"], settings=settings)


def open_localdocs(backend: Backend, model_dir: Path, **kwargs: Any) -> LocalDocs:
    """A LocalDocs on ``backend`` with the test embedding model."""
    from gpt4all_rag.localdocs import LocalDocs

    return LocalDocs(**{"model_path": model_dir, "n_threads": N_THREADS, **backend, **kwargs})


def snapshot(backend: Backend, *, embeddings: bool = False) -> dict[str, Any]:
    """Everything stored for a collection, read with plain chromadb.

    Returns:
        ``{"chunks": {id: (text, metadata[, embedding])}, "files": {doc_id: metadata}}``.
    """
    client = plain_client(backend)
    include = ["documents", "metadatas"] + (["embeddings"] if embeddings else [])
    got = client.get_collection(backend["collection"]).get(include=include)
    chunks: dict[str, Any] = {}
    for i, cid in enumerate(got["ids"]):
        assert cid not in chunks, f"duplicate chunk id {cid}"
        value = (got["documents"][i], dict(got["metadatas"][i]))
        chunks[cid] = value + ((list(map(float, got["embeddings"][i])),) if embeddings else ())
    files = client.get_collection(backend["collection"] + "__files").get(include=["metadatas"])
    return {"chunks": chunks,
            "files": {fid: dict(m) for fid, m in zip(files["ids"], files["metadatas"])}}


def jsonable(backend: Backend, model_dir: Path, **extra: Any) -> dict[str, Any]:
    """LocalDocs keyword arguments for the worker process (JSON)."""
    return {**{k: str(v) for k, v in backend.items()}, "model_path": str(model_dir),
            "n_threads": N_THREADS, **extra}


def run_worker(job: dict[str, Any], timeout_s: float = 600,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``worker.py`` with ``job`` to completion (``env``: its whole environment, None:
    this process's); returns its JSON output."""
    proc = subprocess.run([sys.executable, str(WORKER), json.dumps(job)], capture_output=True,
                          check=False, text=True, timeout=timeout_s, env=env)
    assert proc.returncode == 0, f"worker failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])
