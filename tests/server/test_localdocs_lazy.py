"""LocalDocs loads its embedding model once, also when several threads search first, and with
``allow_download=False`` never runs pip or opens a socket."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import pytest

from gpt4all_rag import embed4all, errors
from gpt4all_rag.models import pypi as pypi_models

from .support import Backend, open_localdocs


def test_concurrent_first_uses_load_one_embedder(backend: Backend, embed_model_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ld = open_localdocs(backend, embed_model_dir)
    built: list[object] = []
    original = embed4all.Embed4All.__init__

    def counting_init(self: object, *args: object, **kwargs: object) -> None:
        built.append(self)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(embed4all.Embed4All, "__init__", counting_init)
    barrier, seen = threading.Barrier(6), []

    def first_use() -> None:
        barrier.wait()
        seen.append(ld.embedder)

    threads = [threading.Thread(target=first_use) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and all(e is built[0] for e in seen)
    ld.close()
    assert ld.embedder is not built[0] and len(built) == 2  # usable again after close()
    ld.close()


def test_allow_download_false_fetches_nothing(backend: Backend, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "no-models"
    empty.mkdir()
    ld = open_localdocs(backend, empty, allow_download=False)  # opens the store: allowed
    calls: list[str] = []

    def refuse(name: str):
        def fail(*args: object, **kwargs: object) -> None:
            calls.append(name)
            raise AssertionError(f"{name} called with allow_download=False")
        return fail

    monkeypatch.setattr(pypi_models, "fetch", refuse("pypi_models.fetch"))
    monkeypatch.setattr(pypi_models, "default_embedding_model", refuse("default_embedding_model"))
    monkeypatch.setattr(subprocess, "run", refuse("subprocess.run"))
    monkeypatch.setattr(subprocess, "Popen", refuse("subprocess.Popen"))
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    with pytest.raises(errors.ModelNotFoundError):
        ld.embedder
    assert calls == []
