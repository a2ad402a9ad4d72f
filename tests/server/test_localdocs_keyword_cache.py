"""The BM25 keyword index is persisted per collection revision in a local cache folder, on the
embedded store and on the real Chroma server.

A new :class:`KeywordIndex` over a new :class:`Store` holds nothing in memory, exactly like a
fresh process: these tests check that it loads the persisted index of the current revision
(same rankings), rebuilds after any change, never serves the index of a collection deleted
and created again under the same name, ignores a damaged or unwritable cache, never caches
while a write is unfinished (a writer killed mid-run), and that separate processes (another
"machine" with a cache of its own included) get the same keyword results.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpt4all_rag.localdocs import LocalDocs
from gpt4all_rag.localdocs.retrieval import KeywordIndex
from gpt4all_rag.localdocs.store import Store, make_client

from . import corpus
from .support import WORKER, Backend, jsonable, open_localdocs, run_worker

TEXTS = [
    "The lighthouse keeper logs the fog signal every evening at Gull Point.",
    "Feed the sourdough starter equal weights of flour and water each morning.",
    "Renew a passport at the consulate with form VR-12 and two photographs.",
    "Error E-4471 means the irrigation pump lost its prime; bleed the valve.",
    "Honey bees swarm in late spring when the hive runs out of room.",
]
QUERIES = ["fog signal lighthouse", "form VR-12 passport", "E-4471 pump", "swarm hive"]


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "bm25-cache"
    monkeypatch.setenv("GPT4ALL_RAG_BM25_CACHE", str(folder))
    return folder


@pytest.fixture
def ld(backend: Backend, embed_model_dir: Path, cache_dir: Path) -> Iterator[LocalDocs]:
    with open_localdocs(backend, embed_model_dir) as docs:
        docs.add_texts(TEXTS, ids=[f"note-{i}" for i in range(len(TEXTS))])
        yield docs


def fresh_index(backend: Backend, cache_directory: Path | None = None) -> KeywordIndex:
    """A keyword index with nothing in memory, as a new process has."""
    client = make_client(backend.get("persist_directory"), backend.get("chroma_url"))
    store = Store(client, backend["collection"], create=False)
    return KeywordIndex(store, cache_directory=cache_directory)


def rankings(index: KeywordIndex, queries: list[str] = QUERIES) -> dict[str, list[tuple[str, float]]]:
    return {q: [(cid, round(score, 5)) for cid, score in index.search(q, 5)] for q in queries}


def entries(cache_dir: Path) -> list[str]:
    """The cache's entry folders (``<identity hash>/rev-N``) and anything left beside them."""
    return sorted(f"{p.parent.name[:6]}/{p.name}" for p in cache_dir.glob("*/*") if p.is_dir())


def test_a_fresh_index_loads_the_persisted_revision_with_the_same_rankings(
        ld: LocalDocs, backend: Backend, cache_dir: Path) -> None:
    first = fresh_index(backend)
    want = rankings(first)
    assert first.source == "built"
    assert want["form VR-12 passport"][0][0] == "note-2"
    assert want["E-4471 pump"][0][0] == "note-3"
    revision = first.store.revision
    assert [e.split("/")[1] for e in entries(cache_dir)] == [f"rev-{revision}"]
    where = backend.get("chroma_url") or "file:" + os.path.abspath(backend["persist_directory"])
    identity = first.store.cache_identity.split("\n")
    assert identity[0] == where and identity[3] == backend["collection"]
    [named] = list(cache_dir.glob("*/identity.txt"))
    assert named.read_text(encoding="utf-8") == first.store.cache_identity + "\n"

    second = fresh_index(backend)
    assert rankings(second) == want
    assert second.source == "cache"
    # LocalDocs' own searches agree with the cached index
    assert [r.chunk_id for r in ld.search("E-4471 pump", k=3, mode="keyword")] == \
        [cid for cid, _ in want["E-4471 pump"][:3]]


def test_a_change_makes_the_next_index_rebuild_and_replaces_the_entry(
        ld: LocalDocs, backend: Backend, cache_dir: Path) -> None:
    assert fresh_index(backend).search("lighthouse", 1)  # persists the current revision
    before = fresh_index(backend).store.revision
    ld.add_texts(["The lighthouse lens was ground in Paris in 1871."], ids=["lens"])
    after = fresh_index(backend)
    found = dict(after.search("lens Paris 1871", 3))
    assert after.source == "built" and "lens" in found
    assert after.store.revision > before
    assert [e.split("/")[1] for e in entries(cache_dir)] == [f"rev-{after.store.revision}"]
    again = fresh_index(backend)
    assert "lens" in dict(again.search("lens Paris 1871", 3)) and again.source == "cache"

    ld.delete(["lens"])
    gone = fresh_index(backend)
    assert "lens" not in dict(gone.search("lens Paris 1871", 3)) and gone.source == "built"


def test_a_collection_created_again_under_its_name_is_not_served_the_old_index(
        ld: LocalDocs, backend: Backend, embed_model_dir: Path, cache_dir: Path) -> None:
    old = fresh_index(backend)
    assert old.search("lighthouse keeper", 1)[0][0] == "note-0"
    revision = old.store.revision
    assert len(list(cache_dir.iterdir())) == 1
    ld.remove()
    assert list(cache_dir.iterdir()) == []  # this machine's copy went with the collection
    with open_localdocs(backend, embed_model_dir) as again:
        again.add_texts(["Glaciers carve U-shaped valleys over thousands of years."], ids=["ice"])
        new = fresh_index(backend)
        assert new.store.revision == revision  # the same counter value, other content
        assert new.search("lighthouse keeper", 3) == []
        assert [cid for cid, _ in new.search("glaciers valleys", 3)] == ["ice"]
        assert new.source == "built"


def test_a_damaged_entry_is_rebuilt_not_raised(ld: LocalDocs, backend: Backend, cache_dir: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    want = rankings(fresh_index(backend))
    [entry] = [p for p in cache_dir.glob("*/rev-*")]
    for f in entry.iterdir():
        f.write_bytes(b"\x00garbage" * 3)
    caplog.set_level(logging.WARNING, logger="gpt4all_rag.localdocs")
    rebuilt = fresh_index(backend)
    assert rankings(rebuilt) == want and rebuilt.source == "built"
    assert "ignoring the cached keyword index" in caplog.text
    loaded = fresh_index(backend)
    assert rankings(loaded) == want and loaded.source == "cache"


def test_an_unusable_cache_folder_only_costs_a_rebuild(ld: LocalDocs, backend: Backend,
                                                       tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be", encoding="utf-8")
    want = rankings(fresh_index(backend))
    caplog.set_level(logging.WARNING, logger="gpt4all_rag.localdocs")
    for _ in range(2):
        index = fresh_index(backend, cache_directory=blocker)
        assert rankings(index) == want and index.source == "built"
    assert "building without it" in caplog.text


def test_indexes_built_at_once_agree_and_leave_one_entry(ld: LocalDocs, backend: Backend,
                                                         cache_dir: Path) -> None:
    indexes = [fresh_index(backend) for _ in range(4)]
    results: list[object] = [None] * len(indexes)

    def run(i: int) -> None:
        try:
            results[i] = rankings(indexes[i])
        except BaseException as exc:  # noqa: BLE001 - compared below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(indexes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == results[0] for r in results) and isinstance(results[0], dict), results
    assert len(entries(cache_dir)) == 1
    assert {i.source for i in indexes} <= {"built", "cache"}


def test_a_writer_killed_mid_run_leaves_nothing_cached_until_a_run_completes(
        backend: Backend, embed_model_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    corpus.write_notes(folder, 6)
    marker = tmp_path / "marker"
    job = {"action": "index", "folder": str(folder), "marker": str(marker),
           "localdocs": jsonable(backend, embed_model_dir),
           "pause": {"op": "add", "n": 1, "when": "after"}}
    with open(tmp_path / "worker.stderr", "wb") as err:
        proc = subprocess.Popen([sys.executable, str(WORKER), json.dumps(job)],
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 600
        while not marker.exists():
            assert proc.poll() is None, (tmp_path / "worker.stderr").read_text(errors="replace")
            assert time.monotonic() < deadline, "the worker never reached its kill point"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)

    killed = fresh_index(backend)
    assert killed.store.content_state()[1] is True  # the writer never finished
    assert killed.search("transect sightings", 3)  # what the killed run had written
    assert killed.source == "built" and entries(cache_dir) == []

    with open_localdocs(backend, embed_model_dir) as ld:
        report = ld.index(folder, progress=False)
        assert len(report.indexed) == 6
    done = fresh_index(backend)
    assert done.store.content_state()[1] is False
    want = rankings(done, ["transect sightings", "barn owl"])
    assert done.source == "built" and len(entries(cache_dir)) == 1
    again = fresh_index(backend)
    assert rankings(again, ["transect sightings", "barn owl"]) == want and again.source == "cache"


def test_other_processes_get_the_same_keyword_results(ld: LocalDocs, backend: Backend,
                                                      embed_model_dir: Path, cache_dir: Path,
                                                      tmp_path: Path) -> None:
    want = {q: [r.chunk_id for r in ld.search(q, k=3, mode="keyword")] for q in QUERIES}
    [entry] = list(cache_dir.glob("*/rev-*"))
    stamp = entry.stat().st_ino, (entry / "manifest.json").stat().st_mtime_ns
    job = {"action": "search", "queries": QUERIES, "localdocs": jsonable(backend, embed_model_dir)}
    same_machine = run_worker(job)
    # the entry was loaded, not written again
    assert (entry.stat().st_ino, (entry / "manifest.json").stat().st_mtime_ns) == stamp
    other_cache = tmp_path / "other-machine-cache"
    other_machine = run_worker(job, env={**os.environ, "GPT4ALL_RAG_BM25_CACHE": str(other_cache)})
    for out in (same_machine, other_machine):
        got = {q: [cid for cid, _path, _cite in out["results"][q]["keyword"]] for q in QUERIES}
        assert got == want
    assert len(list(other_cache.glob("*/rev-*"))) == 1  # that machine's own copy
