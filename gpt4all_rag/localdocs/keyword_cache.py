"""The BM25 keyword index of a collection, persisted per revision in a local cache folder.

Building BM25 (:class:`~gpt4all_rag.localdocs.retrieval.KeywordIndex`) reads every chunk text
from Chroma and tokenizes it; a fresh process would do that on its first keyword or hybrid
query. This cache keeps the built index (``bm25s``' own ``save``/``load`` format, Lù 2024,
arXiv:2407.03618) on the local disk so that the next process loads it instead.

The cache is keyed by the collection's identity (:attr:`Store.cache_identity
<gpt4all_rag.localdocs.store.Store.cache_identity>`: the embedded folder or the server's
address, tenant, database, name and Chroma's collection id) and its revision counter, so it
also serves collections on a Chroma server shared by several machines: each machine keeps its
own copy, and any write on any machine bumps the revision, which makes every copy stale.

Layout, under :func:`gpt4all_rag.paths.bm25_cache_directory`::

    <sha256(identity), 32 hex digits>/
        identity.txt          the identity in clear, for people
        lock                  a filelock held while an index is built and written
        rev-<revision>/       bm25s' files, ids.json (chunk ids in index order), manifest.json
                              (format, identity, revision, document count, SHA-256 per file)

An entry is written into a temporary folder beside it and renamed into place (``os.replace``,
atomic on one file system), under the lock, so readers never see half an entry and concurrent
writers do not corrupt each other; entries of other revisions are removed then. Readers do not
take the lock. An entry that is missing, unreadable, corrupt or inconsistent is ignored (the
index is rebuilt), never an error: the cache only saves time. Every file's SHA-256 is
checked on load, so a damaged file is noticed even where bm25s would read it without error. Cache folders that cannot be
written are logged and skipped the same way.

Thread safety: the functions may be called from several threads and processes at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

__all__ = ["FORMAT", "KeywordCache", "LoadedIndex"]

logger = logging.getLogger("gpt4all_rag.localdocs")

#: Version of the entry layout; an entry of another version is ignored.
FORMAT = 1
_IDS = "ids.json"
_MANIFEST = "manifest.json"
_REV_PREFIX = "rev-"
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class LoadedIndex:
    """A persisted index read back: ``ids[i]`` is the chunk id of BM25 document ``i``."""

    ids: list[str]
    bm25: Any


class KeywordCache:
    """The cache entries of one collection (see the module docstring).

    Args:
        directory: the cache root (usually :func:`gpt4all_rag.paths.bm25_cache_directory`).
        identity: the collection's :attr:`~gpt4all_rag.localdocs.store.Store.cache_identity`.
        lock_timeout_s: how long :meth:`lock` waits for another process building the same
            index before giving up (the caller then builds without persisting).
    """

    def __init__(self, directory: str | os.PathLike[str], identity: str, *,
                 lock_timeout_s: float = 120.0) -> None:
        self.identity = identity
        self.folder = Path(directory) / hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]
        self.lock_timeout_s = lock_timeout_s

    def entry(self, revision: int) -> Path:
        """The folder of the entry for ``revision``."""
        return self.folder / f"{_REV_PREFIX}{int(revision)}"

    def lock(self) -> Any:
        """A :class:`filelock.FileLock` on this collection's entries (not yet acquired);
        creates the cache folder.

        Raises:
            OSError: the cache folder cannot be created.
        """
        from filelock import FileLock

        self.folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.folder / "lock"), timeout=self.lock_timeout_s)

    def load(self, revision: int) -> LoadedIndex | None:
        """The entry for ``revision``, or None when there is none or it cannot be used
        (unreadable, corrupt, written for another identity, revision or format: logged)."""
        entry = self.entry(revision)
        if not (entry / _MANIFEST).is_file():
            return None
        try:
            import bm25s

            manifest = json.loads((entry / _MANIFEST).read_text(encoding="utf-8"))
            ids = json.loads((entry / _IDS).read_text(encoding="utf-8"))
            if not (isinstance(manifest, dict) and manifest.get("format") == FORMAT
                    and manifest.get("identity") == self.identity
                    and manifest.get("revision") == int(revision)
                    and isinstance(ids, list) and all(isinstance(i, str) for i in ids)
                    and manifest.get("n_docs") == len(ids)):
                raise ValueError("manifest does not describe this entry")
            files = manifest.get("files")
            if not isinstance(files, dict) or _IDS not in files:
                raise ValueError("manifest lists no files")
            for name, digest in files.items():
                if _sha256(entry / name) != digest:
                    raise ValueError(f"{name} does not match its checksum")
            bm25 = bm25s.BM25.load(str(entry), mmap=False, show_progress=False)
            if int(bm25.scores["num_docs"]) != len(ids):
                raise ValueError(f"index has {bm25.scores['num_docs']} documents, ids.json {len(ids)}")
            return LoadedIndex(ids, bm25)
        except Exception as exc:  # noqa: BLE001 - json, numpy and bm25s raise many types
            logger.warning("ignoring the cached keyword index %s (%s: %s); rebuilding it",
                           entry, type(exc).__name__, exc)
            return None

    def save(self, revision: int, ids: Sequence[str], bm25: Any) -> bool:
        """Write the entry for ``revision`` atomically and remove other revisions' entries.

        Call with :meth:`lock` held, after :meth:`load` (under the lock) found no usable
        entry: an existing entry for ``revision`` is replaced (it was damaged).

        Returns:
            True when the entry was written; False when it could not be (logged).
        """
        entry = self.entry(revision)
        tmp = self.folder / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            identity_file = self.folder / "identity.txt"
            if not identity_file.is_file():
                identity_file.write_text(self.identity + "\n", encoding="utf-8")
            tmp.mkdir()
            bm25.save(str(tmp), show_progress=False)
            (tmp / _IDS).write_text(json.dumps(list(ids)), encoding="utf-8")
            files = {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            (tmp / _MANIFEST).write_text(json.dumps(
                {"format": FORMAT, "identity": self.identity, "revision": int(revision),
                 "n_docs": len(ids), "files": files}), encoding="utf-8")
            if entry.exists():  # damaged (load() refused it): move it aside, pruned below
                os.replace(entry, self.folder / f"{_TMP_PREFIX}{uuid.uuid4().hex}")
            os.replace(tmp, entry)
            self._prune(keep=entry.name)
            return True
        except (OSError, ValueError) as exc:
            logger.warning("cannot write the keyword index cache %s (%s); continuing without it",
                           entry, exc)
            shutil.rmtree(tmp, ignore_errors=True)
            return False

    def discard(self) -> None:
        """Remove every entry of this collection (it was deleted); missing is fine."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _prune(self, keep: str) -> None:
        """Remove every entry but ``keep`` and leftover temporary folders (writers hold the
        lock, so none is in progress)."""
        for child in self.folder.iterdir():
            if child.is_dir() and child.name != keep and \
                    child.name.startswith((_REV_PREFIX, _TMP_PREFIX)):
                shutil.rmtree(child, ignore_errors=True)


def _sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
