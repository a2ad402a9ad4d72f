"""Pytest hooks and fixtures of the LangChain integration tests (helpers: ``lc_helpers``)."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lc_helpers import models_dir

# The repository's tests/ (on sys.path when the suite runs from the repository root, its
# pyproject's pythonpath) holds the Chroma server helper that the server tier uses too.
_REPO_TESTS = Path(__file__).resolve().parents[3] / "tests"
if str(_REPO_TESTS) not in sys.path:
    sys.path.append(str(_REPO_TESTS))
from chroma_server import running_chroma_server  # noqa: E402


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    # langchain-tests writes its async tests as bare ``async def`` (its own packages run
    # pytest-asyncio in auto mode). Mark them before pytest-asyncio looks, so they also run
    # when this directory is collected under the repository's ini file (strict mode).
    if name.startswith("test") and inspect.iscoroutinefunction(obj):
        marks = getattr(obj, "pytestmark", [])
        if not any(m.name == "asyncio" for m in marks):
            pytest.mark.asyncio(obj)


_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Every test here uses real models. (This hook sees the whole session's items when the
    # repository's tests are collected together: mark only ours.)
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.models)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """Folder holding the real test models."""
    return models_dir()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Chroma server on 127.0.0.1 (``chroma run``), running for the session."""
    with running_chroma_server(tmp_path_factory.mktemp("lc-chroma-server")) as url:
        yield url
