"""The indexing pass of LocalDocs: bring a collection up to date with files on disk.

:func:`index_files` is what :meth:`LocalDocs.index <gpt4all_rag.localdocs.LocalDocs.index>`
runs once it has opened the store and resolved the settings: walk the roots
(:func:`~gpt4all_rag.localdocs.loaders.iter_files`), skip files whose size and mtime (or, when
those changed, content hash) match their record, remove records of files that are gone, load
and chunk the rest (:mod:`~gpt4all_rag.localdocs.chunking`), embed the chunks of several files
together (:data:`EMBED_GROUP_CHUNKS`) and replace each file's chunks as a unit
(:meth:`Store.replace_documents <gpt4all_rag.localdocs.store.Store.replace_documents>`, which
keeps a killed run consistent). The result is an :class:`IndexReport`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from .._progress import progress_bar
from . import chunking, loaders
from .display import index_report_html
from .records import ChunkRecord, FileRecord, doc_id_for
from .store import Store

if TYPE_CHECKING:
    from ..embed4all import Embed4All

__all__ = ["EMBED_GROUP_CHUNKS", "IndexReport", "ModelTokenCounter", "index_files"]

#: Chunks embedded together (across files) before they are written to the store.
EMBED_GROUP_CHUNKS = 256


@dataclass
class IndexReport:
    """What an indexing run did.

    Attributes:
        indexed: paths whose chunks were (re)written.
        unchanged: paths skipped because size and mtime, or the content hash, were unchanged.
        removed: paths whose chunks were removed (deleted, or no longer readable).
        skipped: ``(path, reason)`` for files that were not indexed.
        n_chunks: chunks written in this run.
    """

    indexed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    n_chunks: int = 0

    def summary(self) -> str:
        """One line: ``"3 indexed (41 chunks), 1 unchanged, 0 removed, 2 skipped"``."""
        return (f"{len(self.indexed)} indexed ({self.n_chunks} chunks), {len(self.unchanged)} "
                f"unchanged, {len(self.removed)} removed, {len(self.skipped)} skipped")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data, the keys of ``gpt4all-rag index --json``: ``indexed``,
        ``unchanged``, ``removed`` (lists of paths), ``skipped`` (a list of ``{"path",
        "reason"}``) and ``n_chunks``."""
        return {"indexed": list(self.indexed), "unchanged": list(self.unchanged),
                "removed": list(self.removed),
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
                "n_chunks": self.n_chunks}

    def _repr_html_(self) -> str:
        return index_report_html(self)


class ModelTokenCounter:
    """Counts an embedding model's tokens (no special tokens): the chunker's
    :data:`~gpt4all_rag.localdocs.chunking.TokenCounter`.

    Args:
        embedder: an :class:`~gpt4all_rag.Embed4All` (its :meth:`~gpt4all_rag.Embed4All.tokenize`).
    """

    def __init__(self, embedder: Any) -> None:
        self._embedder = embedder
        self._prefix_cache: dict[str, list[int]] = {}

    def __call__(self, text: str) -> int:
        return len(self._embedder.tokenize(text)) if text else 0

    def prefix_tokens(self, prefix: str) -> list[int]:
        """The tokens of ``prefix + ": "`` as the embedder writes it (none for ``""``)."""
        if prefix not in self._prefix_cache:
            self._prefix_cache[prefix] = self._embedder.tokenize(prefix + ": ") if prefix else []
        return self._prefix_cache[prefix]


@dataclass
class _Pending:
    info: loaders.FileInfo
    document: loaders.Document
    chunks: list[chunking.Chunk]


def index_files(store: Store, embedder: Embed4All, roots: list[str], *, prefix: str,
                chunk_tokens: int, overlap_tokens: int, extensions: Iterable[str] | None,
                max_file_bytes: int, show_progress: bool) -> IndexReport:
    """Bring ``store`` up to date with the files under ``roots`` (one indexing run).

    Texts added with ``add_texts`` (records of origin ``"text"``) are left alone. The caller
    holds the collection's write lock and has checked the store's build settings.

    Args:
        store: the opened collection.
        embedder: the collection's embedding model.
        roots: absolute paths of existing files and folders.
        prefix: the document prefix, resolved (:meth:`Embed4All.resolve_prefix
            <gpt4all_rag.Embed4All.resolve_prefix>`).
        chunk_tokens, overlap_tokens: chunking, in the embedding model's tokens
            (:func:`~gpt4all_rag.localdocs.chunking.chunk_document`).
        extensions: file extensions to index (None: every supported type).
        max_file_bytes: larger files are skipped.
        show_progress: show bars over files and chunks.

    Returns:
        What the run did.

    Raises:
        StoreError: Chroma failed.
    """
    report = IndexReport()
    records = {path: rec for path, rec in store.file_records().items() if rec.origin == "file"}
    seen: set[str] = set()
    todo: list[tuple[loaders.FileInfo, FileRecord | None]] = []
    for item in loaders.iter_files(roots, extensions=extensions, max_file_bytes=max_file_bytes):
        if isinstance(item, loaders.Skipped):
            report.skipped.append((item.path, item.reason))
            continue
        seen.add(item.path)
        rec = records.get(item.path)
        if rec is not None and rec.state == "done" and rec.size_bytes == item.size_bytes \
                and rec.mtime == item.mtime:
            report.unchanged.append(item.path)
        else:
            todo.append((item, rec))
    for path, rec in records.items():
        if path not in seen and any(_is_under(path, r) for r in roots):
            store.remove_document(rec.doc_id)
            report.removed.append(path)

    counter = ModelTokenCounter(embedder)
    max_tokens = embedder.n_ctx - len(counter.prefix_tokens(prefix)) - 2
    pending: list[_Pending] = []
    n_pending = 0
    files_bar = progress_bar(enabled=show_progress, total=len(todo), desc="files", unit="file")
    chunks_bar = progress_bar(enabled=show_progress, desc="chunks", unit="chunk")
    try:
        for info, rec in todo:
            if rec is not None and rec.state == "done" and \
                    loaders.hash_file(info.path) == rec.content_hash:
                store.put_file(FileRecord(**{**rec.__dict__, "size_bytes": info.size_bytes,
                                             "mtime": info.mtime}))
                report.unchanged.append(info.path)
                files_bar.update(1)
                continue
            doc = loaders.try_load(info, max_file_bytes=max_file_bytes)
            if isinstance(doc, loaders.Skipped):
                report.skipped.append((doc.path, doc.reason))
                if rec is not None:
                    store.remove_document(rec.doc_id)
                    report.removed.append(info.path)
                files_bar.update(1)
                continue
            chunks = chunking.chunk_document(doc, counter, chunk_tokens=chunk_tokens,
                                             overlap_tokens=overlap_tokens,
                                             max_tokens=max(16, max_tokens))
            pending.append(_Pending(info, doc, chunks))
            n_pending += len(chunks)
            if n_pending >= EMBED_GROUP_CHUNKS:
                _flush(store, embedder, pending, prefix, report, chunks_bar, files_bar)
                pending, n_pending = [], 0
        _flush(store, embedder, pending, prefix, report, chunks_bar, files_bar)
    finally:
        files_bar.close()
        chunks_bar.close()
        if report.indexed or report.removed:
            store.bump_revision()
    return report


def _flush(store: Store, embedder: Embed4All, pending: list[_Pending], prefix: str,
           report: IndexReport, chunks_bar: Any, files_bar: Any) -> None:
    """Embed the pending files' chunks in one call and replace their chunks in the store."""
    texts = [c.text for p in pending for c in p.chunks]
    vectors = embedder.embed(texts, prefix=prefix) if texts else []
    at = 0
    batch: list[tuple[FileRecord, list[ChunkRecord]]] = []
    for p in pending:
        doc = p.document
        n = len(p.chunks)
        record = FileRecord(doc_id_for(doc.path), doc.path, doc.size_bytes, doc.mtime,
                            doc.content_hash, n, doc.title, "indexing")
        batch.append((record, [
            ChunkRecord(c.index, c.text, vectors[at + i], c.page, c.start_line, c.end_line, c.heading)
            for i, c in enumerate(p.chunks)]))
        at += n
    store.replace_documents(batch)
    for p in pending:
        report.indexed.append(p.document.path)
        report.n_chunks += len(p.chunks)
        chunks_bar.update(len(p.chunks))
        files_bar.update(1)


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
