"""Pytest hooks and fixtures of the LangChain integration tests (helpers: ``lc_helpers``)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from lc_helpers import models_dir


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
