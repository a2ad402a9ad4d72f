"""The persisted BM25 entries of :mod:`gpt4all_rag.localdocs.keyword_cache`: a round trip gives
the same rankings, an entry of another revision, identity or format is not used, a damaged
entry is ignored (never an error) and replaced, writes leave no temporary folders and remove
older revisions, and concurrent writers leave one whole entry.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import bm25s
import pytest

from gpt4all_rag.localdocs.keyword_cache import FORMAT, KeywordCache

TEXTS = [
    "The lighthouse keeper logs the fog signal every evening.",
    "Sourdough starter needs flour and water every day.",
    "Renew a passport at the consulate with form VR-12.",
    "Error E-4471 means the pump lost its prime.",
]
IDS = [f"doc{i}:00000" for i in range(len(TEXTS))]
IDENTITY = "file:/srv/chroma\ndefault_tenant\ndefault_database\nnotes\n0b7c0a51-uuid"


def build() -> bm25s.BM25:
    index = bm25s.BM25(k1=1.5, b=0.75)
    index.index(bm25s.tokenize(TEXTS, stopwords="en", show_progress=False), show_progress=False)
    return index


def ranking(index: bm25s.BM25, ids: list[str], query: str) -> list[tuple[str, float]]:
    docs, scores = index.retrieve(bm25s.tokenize([query], stopwords="en", show_progress=False),
                                  k=len(ids), show_progress=False, n_threads=1)
    return [(ids[int(d)], round(float(s), 6)) for d, s in zip(docs[0], scores[0]) if s > 0]


@pytest.fixture
def cache(tmp_path: Path) -> KeywordCache:
    return KeywordCache(tmp_path / "bm25", IDENTITY)


def save(cache: KeywordCache, revision: int) -> None:
    with cache.lock():
        assert cache.save(revision, IDS, build())


def test_a_saved_entry_loads_with_the_same_ids_and_rankings(cache: KeywordCache) -> None:
    assert cache.load(3) is None
    save(cache, 3)
    loaded = cache.load(3)
    assert loaded is not None and loaded.ids == IDS
    for query in ("fog signal lighthouse", "form VR-12 passport", "E-4471"):
        assert ranking(loaded.bm25, loaded.ids, query) == ranking(build(), IDS, query)
    assert (cache.folder / "identity.txt").read_text(encoding="utf-8") == IDENTITY + "\n"


def test_another_revision_or_identity_is_not_used(cache: KeywordCache, tmp_path: Path) -> None:
    save(cache, 3)
    assert cache.load(4) is None
    other = KeywordCache(tmp_path / "bm25", IDENTITY.replace("notes", "recipes"))
    assert other.folder != cache.folder and other.load(3) is None


def test_writing_a_revision_removes_the_older_ones_and_leaves_no_temporary_folder(
        cache: KeywordCache) -> None:
    save(cache, 1)
    save(cache, 2)
    assert sorted(p.name for p in cache.folder.iterdir() if p.is_dir()) == ["rev-2"]
    assert cache.load(1) is None and cache.load(2) is not None


def _damage_npy(entry: Path) -> None:
    (entry / "data.csc.index.npy").write_bytes(b"\x93NUMPY not really")


def _truncate_npy(entry: Path) -> None:
    path = entry / "indices.csc.index.npy"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _flip_a_score(entry: Path) -> None:
    # bm25s reads this file without complaint: only the checksum notices.
    path = entry / "data.csc.index.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x40
    path.write_bytes(bytes(raw))


def _garbage_manifest(entry: Path) -> None:
    (entry / "manifest.json").write_text("{not json", encoding="utf-8")


def _other_format(entry: Path) -> None:
    manifest = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))
    (entry / "manifest.json").write_text(json.dumps({**manifest, "format": FORMAT + 1}),
                                         encoding="utf-8")


def _ids_of_another_index(entry: Path) -> None:
    (entry / "ids.json").write_text(json.dumps(IDS[:2]), encoding="utf-8")


def _vocab_missing(entry: Path) -> None:
    (entry / "vocab.index.json").unlink()


def _binary_ids(entry: Path) -> None:
    (entry / "ids.json").write_bytes(b"\xff\xfe\x00garbage")


@pytest.mark.parametrize("damage", [_damage_npy, _truncate_npy, _flip_a_score, _garbage_manifest, _other_format,
                                    _ids_of_another_index, _vocab_missing, _binary_ids])
def test_a_damaged_entry_is_ignored_then_replaced(cache: KeywordCache, damage: object,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    save(cache, 5)
    damage(cache.entry(5))  # type: ignore[operator]
    assert cache.load(5) is None
    assert "ignoring the cached keyword index" in caplog.text
    save(cache, 5)
    loaded = cache.load(5)
    assert loaded is not None and loaded.ids == IDS
    assert [p.name for p in cache.folder.iterdir() if p.is_dir()] == ["rev-5"]


def test_an_unwritable_cache_folder_is_reported_not_raised(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    cache = KeywordCache(blocker, IDENTITY)
    assert cache.save(1, IDS, build()) is False
    assert "cannot write the keyword index cache" in caplog.text
    assert cache.load(1) is None


def test_concurrent_writers_leave_one_whole_entry(tmp_path: Path) -> None:
    # Separate objects, as separate processes would have; the file lock serialises them.
    caches = [KeywordCache(tmp_path / "bm25", IDENTITY) for _ in range(6)]
    errors: list[BaseException] = []

    def write(cache: KeywordCache, revision: int) -> None:
        try:
            with cache.lock():
                if cache.load(revision) is None:
                    cache.save(revision, IDS, build())
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(c, 7 + i % 2)) for i, c in enumerate(caches)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    entries = [p.name for p in caches[0].folder.iterdir() if p.is_dir()]
    assert len(entries) == 1 and entries[0] in ("rev-7", "rev-8")
    loaded = caches[0].load(int(entries[0][4:]))
    assert loaded is not None and loaded.ids == IDS
