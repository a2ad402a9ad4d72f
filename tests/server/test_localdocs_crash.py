"""An indexing run killed with SIGKILL at any point is finished by the next run, and the result
equals a clean index of the same folder: same chunk ids, texts, metadata and vectors, no
duplicates, every file record "done".

The run to kill is a separate process (``worker.py``) indexing 40 documents. It stops itself
at an exact point (before or after the N-th chromadb ``add``/``delete``/``upsert``) and waits
there to be killed, or, in the ``anywhere`` case, keeps writing and is killed after a random
number of writes and a random short delay. The run that resumes is the test process.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from . import corpus
from .support import (
    WORKER,
    Backend,
    jsonable,
    open_localdocs,
    run_worker,
    snapshot,
    unique_name,
)

N_NOTES = 40
KILL_TIMEOUT_S = 600.0
#: Small chunks: most notes are one chunk, every fourth note several.
CHUNKING = {"chunk_tokens": 64, "overlap_tokens": 8}


@dataclass
class Clean:
    """A clean index of the notes folder on one backend, for comparison."""

    folder: Path
    paths: list[Path]
    snap: dict[str, Any]


@pytest.fixture(scope="module")
def notes_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("notes")
    return folder, corpus.write_notes(folder, N_NOTES)


@pytest.fixture(scope="module")
def clean(module_backend: Backend, notes_folder: tuple[Path, list[Path]],
          embed_model_dir: Path) -> Iterator[Clean]:
    folder, paths = notes_folder
    with open_localdocs(module_backend, embed_model_dir, **CHUNKING) as ld:
        report = ld.index(folder, progress=False)
        assert len(report.indexed) == N_NOTES
        assert report.n_chunks > N_NOTES
    yield Clean(folder, paths, snapshot(module_backend, embeddings=True))


def fresh_store(like: Backend, tmp_path: Path, name: str = "db") -> Backend:
    """A store of the same kind that no process has opened yet."""
    if "persist_directory" in like:
        return {"collection": unique_name("crash"), "persist_directory": str(tmp_path / name)}
    return {"collection": unique_name("crash"), "chroma_url": like["chroma_url"]}


def kill_when(job: dict[str, Any], ready: Callable[[str], bool], tmp_path: Path,
              delay_s: float = 0.0) -> None:
    """Start the worker, SIGKILL it once ``ready(marker text)`` (plus ``delay_s``)."""
    marker = Path(job["marker"])
    marker.unlink(missing_ok=True)
    with open(tmp_path / "worker.stderr", "wb") as err:
        proc = subprocess.Popen([sys.executable, str(WORKER), json.dumps(job)],
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + KILL_TIMEOUT_S
        while not (marker.exists() and ready(marker.read_text(encoding="utf-8"))):
            if proc.poll() is not None:
                pytest.fail(f"the worker ended ({proc.returncode}) before its kill point:\n"
                            + (tmp_path / "worker.stderr").read_text(errors="replace")[-4000:])
            if time.monotonic() > deadline:
                pytest.fail("the worker did not reach its kill point in time")
            time.sleep(0.02)
        time.sleep(delay_s)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.returncode


def states(snap: dict[str, Any]) -> dict[str, str]:
    return {m["path"]: m["state"] for m in snap["files"].values()}


def chunk_paths(snap: dict[str, Any]) -> set[str]:
    return {meta["path"] for _text, meta, *_ in snap["chunks"].values()}


def assert_equal_to_clean(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert sorted(got["chunks"]) == sorted(want["chunks"])
    for cid, (text, meta, vector) in want["chunks"].items():
        g_text, g_meta, g_vector = got["chunks"][cid]
        assert (g_text, g_meta) == (text, meta), cid
        np.testing.assert_allclose(g_vector, vector, atol=1e-4, err_msg=cid)
    assert got["files"] == want["files"]
    assert {m["state"] for m in got["files"].values()} == {"done"}
    keys = [(m["path"], m["chunk_index"]) for _t, m, _v in got["chunks"].values()]
    assert len(keys) == len(set(keys))  # no chunk stored twice under another id
    assert sum(m["n_chunks"] for m in got["files"].values()) == len(got["chunks"])


def resume_and_check(store: Backend, clean: Clean, model_dir: Path,
                     done_at_kill: set[str]) -> None:
    with open_localdocs(store, model_dir, **CHUNKING) as ld:
        report = ld.index(clean.folder, progress=False)
        all_paths = {str(p) for p in clean.paths}
        assert set(report.unchanged) == done_at_kill
        assert set(report.indexed) == all_paths - done_at_kill
        assert report.removed == [] and report.skipped == []
        assert_equal_to_clean(snapshot(store, embeddings=True), clean.snap)
        name, _ = corpus.note_text(7)
        best = ld.search("kingfisher sightings on the heather moor", k=1)[0]
        assert Path(best.path).name == name
        keyword = ld.search("kingfisher", k=3, mode="keyword")
        assert keyword and all("kingfisher" in r.text for r in keyword)
        again = ld.index(clean.folder, progress=False)
        assert again.indexed == [] and len(again.unchanged) == N_NOTES


#: name: (pause point, documents "done" at the kill, documents "indexing" at the kill).
#: Documents are written in groups (one embedding group of 16 chunks here, several notes):
#: each group makes four writes: upsert records "indexing", delete, add chunks, upsert "done".
#: 0 means exactly none; a positive number means at least that many.
PAUSES = {
    "record-marked-indexing-no-chunks-yet": ({"op": "upsert", "n": 1, "when": "after"}, 0, 1),
    "first-chunks-written-record-not-done": ({"op": "add", "n": 1, "when": "after"}, 0, 1),
    "before-adding-the-third-group": ({"op": "add", "n": 3, "when": "before"}, 2, 1),
}


def _count_ok(got: int, want: int) -> bool:
    return got == 0 if want == 0 else got >= want


@pytest.mark.parametrize("point", list(PAUSES))
def test_killed_at_a_known_point_then_resumed(point: str, clean: Clean, module_backend: Backend,
                                              tmp_path: Path, embed_model_dir: Path) -> None:
    pause, n_done, n_indexing = PAUSES[point]
    store = fresh_store(module_backend, tmp_path)
    job = {"action": "index", "folder": str(clean.folder), "pause": pause,
           "marker": str(tmp_path / "marker"), "embed_group_chunks": 16,
           "localdocs": jsonable(store, embed_model_dir, **CHUNKING)}
    kill_when(job, lambda text: text.endswith("\n"), tmp_path)
    at_kill = snapshot(store)
    st = states(at_kill)
    done = {p for p, s in st.items() if s == "done"}
    indexing = {p for p, s in st.items() if s == "indexing"}
    assert _count_ok(len(done), n_done) and _count_ok(len(indexing), n_indexing), st
    assert len(done) + len(indexing) < N_NOTES, "killed too late to test anything"
    if point == "first-chunks-written-record-not-done":
        assert at_kill["chunks"] and chunk_paths(at_kill) == indexing
    elif point == "record-marked-indexing-no-chunks-yet":
        assert not at_kill["chunks"]
    else:
        assert chunk_paths(at_kill) == done
    resume_and_check(store, clean, embed_model_dir, done)


@pytest.mark.parametrize("seed", [2])
def test_killed_anywhere_while_writing_then_resumed(seed: int, clean: Clean,
                                                    module_backend: Backend, tmp_path: Path,
                                                    embed_model_dir: Path) -> None:
    rng = random.Random(seed)
    after_writes = rng.randint(3, 12)  # each group of documents makes 4 writes
    store = fresh_store(module_backend, tmp_path)
    job = {"action": "index", "folder": str(clean.folder), "trace": True,
           "marker": str(tmp_path / "marker"), "embed_group_chunks": 16,
           "localdocs": jsonable(store, embed_model_dir, **CHUNKING)}
    kill_when(job, lambda text: text.count("\n") >= after_writes, tmp_path,
              delay_s=rng.uniform(0.0, 0.05))
    at_kill = snapshot(store)
    done = {p for p, s in states(at_kill).items() if s == "done"}
    assert len(done) < N_NOTES, "killed too late to test anything"
    resume_and_check(store, clean, embed_model_dir, done)


def test_killed_while_replacing_edited_documents_then_resumed(
        module_backend: Backend, tmp_path: Path, embed_model_dir: Path) -> None:
    folder = tmp_path / "notes"
    paths = corpus.write_notes(folder, N_NOTES)
    store = fresh_store(module_backend, tmp_path)
    job: dict[str, Any] = {"action": "index", "folder": str(folder),
                           "marker": str(tmp_path / "marker"),
                           "localdocs": jsonable(store, embed_model_dir, **CHUNKING)}
    first = run_worker(job)
    assert len(first["indexed"]) == N_NOTES
    edited = [paths[i] for i in (3, 10, 17, 24)]
    for i, path in zip((3, 10, 17, 24), edited):
        text = corpus.note_text(i + N_NOTES + 1)[1]  # another subject and length
        path.write_text(text if i != 10 else text.split("\n\n")[0] + "\n", encoding="utf-8")
    paths[30].unlink()
    added = folder / "note45.md"
    added.write_text(corpus.note_text(45)[1], encoding="utf-8")
    # Removal of note30 (2 deletes), then per document (an embedding group of one chunk makes
    # every document its own group): upsert, delete, add, upsert. Stop before the 3rd add:
    # note17's old chunks are deleted and its new ones not yet written.
    kill_when({**job, "embed_group_chunks": 1, "pause": {"op": "add", "n": 3, "when": "before"}},
              lambda text: text.endswith("\n"), tmp_path)
    at_kill = snapshot(store)
    st = states(at_kill)
    assert str(paths[30]) not in st
    assert st[str(edited[2])] == "indexing" and str(edited[2]) not in chunk_paths(at_kill)
    assert {st[str(p)] for p in edited[:2]} == {"done"}

    reference = fresh_store(module_backend, tmp_path, "clean-db")
    with open_localdocs(reference, embed_model_dir, **CHUNKING) as ld:
        ld.index(folder, progress=False)
    with open_localdocs(store, embed_model_dir, **CHUNKING) as ld:
        report = ld.index(folder, progress=False)
    assert sorted(report.indexed) == sorted([str(edited[2]), str(edited[3]), str(added)])
    assert report.removed == []
    want = snapshot(reference, embeddings=True)
    got = snapshot(store, embeddings=True)
    # The ids derive from paths, so the two stores hold the same ids; the file records too.
    assert_equal_to_clean(got, want)
