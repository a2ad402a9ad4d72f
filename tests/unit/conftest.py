"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from httpserver import FileServer  # tests/ is on sys.path (pyproject: pythonpath)


@pytest.fixture(scope="session")
def _file_server() -> Iterator[FileServer]:
    with FileServer() as server:
        yield server


@pytest.fixture
def http_server(_file_server: FileServer) -> FileServer:
    """A real HTTP server on 127.0.0.1 (see ``tests/httpserver.py``), emptied for each test."""
    _file_server.reset()
    return _file_server
