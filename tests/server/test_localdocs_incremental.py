"""Incremental indexing: unchanged files cost nothing, changed files are replaced as a unit,
deleted and broken files are removed, and other folders' documents are left alone.

Every test runs against the embedded store and the real Chroma server. Writes are counted
at the chromadb level (every ``add``/``upsert``/``update``/``delete``/``modify`` of a
collection), and content hashing through ``loaders.hash_file``.
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gpt4all_rag.errors import DocumentLoadError
from gpt4all_rag.localdocs import LocalDocs, loaders
from gpt4all_rag.localdocs.retrieval import Mode

from . import corpus
from .support import Backend, open_localdocs, snapshot

MODES: tuple[Mode, ...] = ("hybrid", "dense", "keyword")
#: Small chunks, so that the short test documents span several chunks each.
CHUNKING = {"chunk_tokens": 64, "overlap_tokens": 8}

NEW_LIGHTHOUSE = """\
The Gull Point Museum

The old keeper's cottage at Gull Point is now a small museum run by volunteers. It shows the
logbooks of the Marsh family, a model of the schooner Alma and a collection of ship's bells
recovered from the reef.
"""


class Writes:
    """Counts Chroma writes and content hashes while installed."""

    def __init__(self) -> None:
        self.ops: Counter[str] = Counter()
        self.hashed: list[str] = []

    def reset(self) -> None:
        self.ops.clear()
        self.hashed.clear()

    @property
    def total(self) -> int:
        return sum(self.ops.values())


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Writes]:
    from chromadb.api.models.Collection import Collection

    spy = Writes()

    def wrap(op: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            spy.ops[op] += 1
            return original(self, *args, **kwargs)
        return wrapper

    for op in ("add", "upsert", "update", "delete", "modify"):
        monkeypatch.setattr(Collection, op, wrap(op, getattr(Collection, op)))
    original_hash = loaders.hash_file

    def hash_file(path: Any) -> str:
        spy.hashed.append(os.fspath(path))
        return original_hash(path)

    monkeypatch.setattr(loaders, "hash_file", hash_file)
    yield spy


#: An mtime (ns) whose float, 1795307564.6310275, Chroma gives back as 1795307564.6310277 when
#: stored as a float metadata value (both clients): LocalDocs must still see it as unchanged.
AWKWARD_MTIME_NS = 1_795_307_564_631_027_500


@pytest.fixture
def docs(tmp_path: Path) -> dict[str, Path]:
    paths = corpus.write_texts(tmp_path / "docs")
    for path in paths.values():
        os.utime(path, ns=(AWKWARD_MTIME_NS, AWKWARD_MTIME_NS))
    return paths


@pytest.fixture
def ld(backend: Backend, embed_model_dir: Path) -> Iterator[LocalDocs]:
    with open_localdocs(backend, embed_model_dir, **CHUNKING) as opened:
        yield opened


def chunk_ids_by_path(snap: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for cid, (_text, meta) in sorted(snap["chunks"].items()):
        out.setdefault(meta["path"], []).append(cid)
    return out


def assert_consistent(ld: LocalDocs, backend: Backend) -> dict[str, Any]:
    """Every file record is done, its n_chunks matches its chunks, ids are 0..n-1."""
    snap = snapshot(backend)
    by_path = chunk_ids_by_path(snap)
    assert sorted(by_path) == sorted(m["path"] for m in snap["files"].values())
    for doc_id, meta in snap["files"].items():
        assert meta["state"] == "done", meta
        assert by_path[meta["path"]] == [f"{doc_id}:{i:05d}" for i in range(meta["n_chunks"])]
    assert sum(m["n_chunks"] for m in snap["files"].values()) == len(snap["chunks"])
    stats = ld.stats()
    assert (stats["chunks"], stats["documents"]) == (len(snap["chunks"]), len(snap["files"]))
    return snap


def test_second_run_is_unchanged_and_writes_nothing(ld: LocalDocs, backend: Backend,
                                                    docs: dict[str, Path], writes: Writes) -> None:
    first = ld.index(docs["beekeeping.md"].parent)
    assert sorted(first.indexed) == sorted(map(str, docs.values()))
    assert first.n_chunks > len(docs)  # several chunks per document
    before = assert_consistent(ld, backend)
    writes.reset()
    second = ld.index(docs["beekeeping.md"].parent)
    assert sorted(second.unchanged) == sorted(map(str, docs.values()))
    assert (second.indexed, second.removed, second.skipped, second.n_chunks) == ([], [], [], 0)
    assert writes.total == 0, writes.ops  # not even a file record or a revision bump
    assert writes.hashed == []  # size and mtime are enough: no file was read
    assert snapshot(backend) == before


def test_touched_file_is_confirmed_unchanged_by_its_hash(ld: LocalDocs, backend: Backend,
                                                         docs: dict[str, Path],
                                                         writes: Writes) -> None:
    folder = docs["beekeeping.md"].parent
    ld.index(folder)
    before = snapshot(backend)
    path = docs["volcanoes.rst"]
    st = path.stat()
    os.utime(path, (st.st_atime + 1000, st.st_mtime + 1000))
    writes.reset()
    report = ld.index(folder)
    assert report.indexed == [] and report.n_chunks == 0
    assert sorted(report.unchanged) == sorted(map(str, docs.values()))
    assert writes.hashed == [str(path)]
    assert writes.ops == Counter({"upsert": 1}), writes.ops  # its file record's new mtime, only
    after = snapshot(backend)
    assert after["chunks"] == before["chunks"]
    record = next(m for m in after["files"].values() if m["path"] == str(path))
    assert float(record["mtime"]) == path.stat().st_mtime
    writes.reset()
    again = ld.index(folder)  # the new mtime is recorded: no hashing the next time
    assert len(again.unchanged) == len(docs) and writes.hashed == [] and writes.total == 0


def test_edited_file_alone_is_reindexed_and_its_old_chunks_are_gone(
        ld: LocalDocs, backend: Backend, docs: dict[str, Path], embed_model_dir: Path) -> None:
    folder = docs["beekeeping.md"].parent
    ld.index(folder)
    before = chunk_ids_by_path(snapshot(backend))
    lighthouse = str(docs["lighthouse.txt"])
    assert len(before[lighthouse]) >= 3
    # Build the keyword index in this object and in another one before the edit.
    assert any("Fresnel" in r.text for r in ld.search("Fresnel lens prisms", mode="keyword"))
    with open_localdocs(backend, embed_model_dir) as reader:
        assert any("Fresnel" in r.text for r in reader.search("Fresnel lens", mode="keyword"))
        docs["lighthouse.txt"].write_text(NEW_LIGHTHOUSE, encoding="utf-8")
        report = ld.index(folder)
        assert report.indexed == [lighthouse]
        assert sorted(report.unchanged) == sorted(str(p) for p in docs.values()
                                                  if str(p) != lighthouse)
        snap = assert_consistent(ld, backend)
        after = chunk_ids_by_path(snap)
        assert len(after[lighthouse]) < len(before[lighthouse])
        for path, ids in before.items():
            if path != lighthouse:
                assert after[path] == ids
        # No stale text anywhere: not in the store, not in any ranking, not in another
        # object whose keyword index was built before the edit.
        assert not any("Fresnel" in text for text, _ in snap["chunks"].values())
        for searcher in (ld, reader):
            for mode in MODES:
                results = searcher.search("Fresnel lens prisms of glass", k=10, mode=mode)
                assert not any("Fresnel" in r.text for r in results), mode
                assert all(r.chunk_id in snap["chunks"] for r in results)
            best = searcher.search("museum with ship's bells from the reef", k=1)[0]
            assert best.path == lighthouse and "ship's bells" in best.text


def test_deleted_file_is_removed(ld: LocalDocs, backend: Backend, docs: dict[str, Path]) -> None:
    folder = docs["beekeeping.md"].parent
    ld.index(folder)
    gone = str(docs["sourdough.py"])
    docs["sourdough.py"].unlink()
    report = ld.index(folder)
    assert report.removed == [gone] and report.indexed == []
    assert len(report.unchanged) == len(docs) - 1
    snap = assert_consistent(ld, backend)
    assert gone not in chunk_ids_by_path(snap)
    for mode in MODES:
        results = ld.search("sourdough starter hydration", k=20, mode=mode)
        assert all(r.path != gone for r in results)


def test_a_run_for_some_extensions_keeps_the_others(ld: LocalDocs, backend: Backend,
                                                     docs: dict[str, Path]) -> None:
    # files of other types are left out of the run, not gone (was: removed as if deleted)
    folder = docs["beekeeping.md"].parent
    ld.index(folder)
    report = ld.index(folder, extensions=["md"])
    assert report.removed == [] and report.indexed == []
    assert "not among the extensions" in dict(report.skipped)[str(docs["lighthouse.txt"])]
    assert ld.stats()["documents"] == len(docs)
    assert_consistent(ld, backend)


def test_a_file_gone_between_the_scan_and_its_reading_is_skipped(
        ld: LocalDocs, backend: Backend, docs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    # was: its hash raised DocumentLoadError and ended the run, the files after it not indexed
    folder = docs["beekeeping.md"].parent
    ld.index(folder)
    edited, gone = docs["lighthouse.txt"], str(docs["lighthouse.txt"])
    edited.write_text(NEW_LIGHTHOUSE, encoding="utf-8")  # changed: its hash will be read
    real = loaders.hash_file

    def deleted_meanwhile(path: Any) -> str:
        if str(path) == gone:
            edited.unlink()
        return real(path)

    monkeypatch.setattr(loaders, "hash_file", deleted_meanwhile)
    report = ld.index(folder)
    assert "no such file" in dict(report.skipped)[gone] and report.removed == [gone]
    assert sorted(report.unchanged) == sorted(str(p) for p in docs.values() if str(p) != gone)
    snap = assert_consistent(ld, backend)
    assert gone not in chunk_ids_by_path(snap)


def test_indexing_folder_b_keeps_folder_a(ld: LocalDocs, backend: Backend, tmp_path: Path) -> None:
    a = corpus.write_texts(tmp_path / "a", ("beekeeping.md", "volcanoes.rst"))
    b = corpus.write_texts(tmp_path / "a-b", ("lighthouse.txt",))  # a prefix of a's name
    ld.index(tmp_path / "a")
    report = ld.index(tmp_path / "a-b")
    assert report.indexed == [str(b["lighthouse.txt"])] and report.removed == []
    assert ld.stats()["documents"] == 3
    assert ld.search(corpus.PROBES[0].query, k=1)[0].path == str(a["beekeeping.md"])
    a["volcanoes.rst"].unlink()  # gone from a, but only a run over a may notice
    assert ld.index(tmp_path / "a-b").removed == []
    assert ld.stats()["documents"] == 3
    assert ld.index(tmp_path / "a").removed == [str(a["volcanoes.rst"])]
    assert sorted(ld.index([tmp_path / "a", tmp_path / "a-b"]).unchanged) == sorted(
        [str(a["beekeeping.md"]), str(b["lighthouse.txt"])])
    assert_consistent(ld, backend)


def test_files_that_turn_bad_are_reported_and_removed(ld: LocalDocs, backend: Backend,
                                                      docs: dict[str, Path]) -> None:
    folder = docs["beekeeping.md"].parent
    ld.index(folder)
    binary, link = docs["beekeeping.md"], docs["volcanoes.rst"]
    binary.write_bytes(b"\x00\x01\x02 not text any more " * 64)
    link.unlink()
    os.symlink("nowhere.rst", link)
    report = ld.index(folder)
    skipped = dict(report.skipped)
    assert "binary file" in skipped[str(binary)]
    assert skipped[str(link)] == "broken symbolic link"
    assert sorted(report.removed) == sorted([str(binary), str(link)])
    snap = assert_consistent(ld, backend)
    assert sorted(chunk_ids_by_path(snap)) == sorted([str(docs["lighthouse.txt"]),
                                                      str(docs["sourdough.py"])])
    # the files come back: indexed again
    binary.write_text(corpus.BEEKEEPING_MD, encoding="utf-8")
    link.unlink()
    link.write_text(corpus.VOLCANOES_RST, encoding="utf-8")
    report = ld.index(folder)
    assert sorted(report.indexed) == sorted([str(binary), str(link)])
    assert_consistent(ld, backend)


def test_unreadable_files_and_folders_are_reported(ld: LocalDocs, backend: Backend,
                                                   docs: dict[str, Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run as root, which ignores permission bits: ``os.open`` and ``os.scandir``
    refuse chosen paths instead, as they would for another user."""
    folder = docs["beekeeping.md"].parent
    ld.index(folder)
    changed = docs["sourdough.py"]
    changed.write_text(corpus.SOURDOUGH_PY.replace("seventy-five", "eighty"), encoding="utf-8")
    secret = folder / "secret.md"
    secret.write_text("# Secret\n\nThe combination is written on the back of the map.\n",
                      encoding="utf-8")
    locked = folder / "locked"
    locked.mkdir()
    (locked / "inside.txt").write_text("Nobody can list this folder.\n", encoding="utf-8")
    real_open, real_scandir = os.open, os.scandir

    def refusing_open(path: Any, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path) in (str(changed), str(secret)):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, *args, **kwargs)

    def refusing_scandir(path: Any) -> Any:
        if os.fspath(path) == str(locked):
            raise PermissionError(errno.EACCES, "Permission denied", str(locked))
        return real_scandir(path)

    monkeypatch.setattr(os, "open", refusing_open)
    monkeypatch.setattr(os, "scandir", refusing_scandir)
    report = ld.index(folder)
    assert dict(report.skipped) == {str(changed): "permission denied",
                                    str(secret): "permission denied",
                                    str(locked): "permission denied"}
    assert report.removed == [str(changed)]  # indexed before, no longer readable
    assert report.indexed == []
    snap = assert_consistent(ld, backend)
    assert str(changed) not in chunk_ids_by_path(snap)
    monkeypatch.undo()
    report = ld.index(folder)
    assert sorted(report.indexed) == sorted([str(changed), str(secret), str(locked / "inside.txt")])
    assert_consistent(ld, backend)


def test_only_bad_files_never_crash(ld: LocalDocs, backend: Backend, tmp_path: Path) -> None:
    corpus.write_bad_files(tmp_path / "bad")
    (tmp_path / "bad" / "nested" / "inside.md").unlink()
    report = ld.index(tmp_path / "bad", max_file_bytes=corpus.MAX_FILE_BYTES)
    assert report.indexed == [] and report.n_chunks == 0
    assert len(report.skipped) == len(corpus.BAD_FILES)
    assert ld.stats()["chunks"] == 0
    for mode in MODES:
        assert ld.search("anything", mode=mode) == []
    # a bad file named directly is reported too; a missing path is an error
    report = ld.index([tmp_path / "bad" / "blob.txt"])
    assert dict(report.skipped) == {str(tmp_path / "bad" / "blob.txt"): "binary file (contains NUL bytes)"}
    with pytest.raises(DocumentLoadError, match="no such file or folder"):
        ld.index([tmp_path / "bad" / "blob.txt", tmp_path / "missing-folder"])


def _readers() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name == "localdocs-reader"]


@pytest.fixture(params=[False, True], ids=["in-line", "read-ahead"])
def read_ahead(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Index with and without the reader thread, whatever CPUs this machine has."""
    from gpt4all_rag.localdocs import indexing

    monkeypatch.setattr(indexing, "_spare_cpus", lambda embedder: 1 if request.param else 0)
    return request.param


def test_reading_runs_ahead_of_embedding_in_groups(ld: LocalDocs, backend: Backend, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   read_ahead: bool) -> None:
    """Many files make several groups: each group is embedded in one call, all of them land,
    and the report times every stage."""
    from gpt4all_rag.localdocs import indexing

    monkeypatch.setattr(indexing, "EMBED_GROUP_CHUNKS", 8)
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(40):
        (folder / f"note{i:02d}.md").write_text(f"# Note {i}\n\n" + NEW_LIGHTHOUSE.replace("Alma", f"Alma {i}"))
    calls: list[int] = []
    embed = ld.embedder.embed

    readers: list[list[str]] = []

    def counting(texts: Any, **kwargs: Any) -> Any:
        calls.append(len(texts))
        readers.append(_readers())
        return embed(texts, **kwargs)

    monkeypatch.setattr(ld.embedder, "embed", counting)
    report = ld.index(str(folder))
    assert len(report.indexed) == 40 and report.n_chunks == sum(calls)
    assert len(calls) >= 5 and all(n >= 8 for n in calls[:-1])
    assert (readers[0] == ["localdocs-reader"]) is read_ahead  # the reader works meanwhile
    assert set(report.timings) == {"scan", "read", "chunk", "embed", "store", "total"}
    assert report.timings["embed"] > 0 and report.timings["read"] > 0 and report.timings["chunk"] > 0
    assert_consistent(ld, backend)
    assert _readers() == []


def test_a_reader_error_reaches_the_caller_and_the_object_stays_usable(
        ld: LocalDocs, backend: Backend, docs: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
        read_ahead: bool) -> None:
    from gpt4all_rag.localdocs import chunking

    original = chunking.chunk_document
    seen: list[str] = []

    def failing(doc: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(doc.path)
        if len(seen) == 2:
            raise RuntimeError("chunker broke")
        return original(doc, *args, **kwargs)

    monkeypatch.setattr(chunking, "chunk_document", failing)
    with pytest.raises(RuntimeError, match="chunker broke"):
        ld.index(str(next(iter(docs.values())).parent))
    assert _readers() == []
    monkeypatch.setattr(chunking, "chunk_document", original)
    report = ld.index(str(next(iter(docs.values())).parent))
    assert sorted(report.indexed) == sorted(str(p) for p in docs.values())
    assert_consistent(ld, backend)


def test_an_embedding_error_stops_the_reader(ld: LocalDocs, backend: Backend, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, read_ahead: bool) -> None:
    from gpt4all_rag.localdocs import indexing

    monkeypatch.setattr(indexing, "EMBED_GROUP_CHUNKS", 2)
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(30):
        (folder / f"n{i}.txt").write_text(NEW_LIGHTHOUSE)

    def broken(texts: Any, **kwargs: Any) -> Any:
        raise RuntimeError("embedder broke")

    embed = ld.embedder.embed
    monkeypatch.setattr(ld.embedder, "embed", broken)
    with pytest.raises(RuntimeError, match="embedder broke"):
        ld.index(str(folder))
    assert _readers() == []
    monkeypatch.setattr(ld.embedder, "embed", embed)
    assert len(ld.index(str(folder)).indexed) == 30
    assert_consistent(ld, backend)
