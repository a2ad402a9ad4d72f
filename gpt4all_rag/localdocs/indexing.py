"""The indexing pass of LocalDocs: bring a collection up to date with files on disk.

:func:`index_files` is what :meth:`LocalDocs.index <gpt4all_rag.localdocs.LocalDocs.index>`
runs once it has opened the store and resolved the settings: walk the roots
(:func:`~gpt4all_rag.localdocs.loaders.iter_files`), skip files whose size and mtime (or, when
those changed, content hash) match their record, remove records of files that are gone, load
and chunk the rest (:mod:`~gpt4all_rag.localdocs.chunking`), embed the chunks of several files
together (:data:`EMBED_GROUP_CHUNKS`) and replace each file's chunks as a unit
(:meth:`Store.replace_documents <gpt4all_rag.localdocs.store.Store.replace_documents>`, which
keeps a killed run consistent). The result is an :class:`IndexReport`.

Where the process may use more CPUs than the embedder's threads, reading and chunking run in a
thread of their own, at most :data:`READ_AHEAD_GROUPS` groups ahead of the embedding, which
runs in the caller's thread with the store's writes: while ggml's threads embed one group (the
GIL released, in C), the next files are read and chunked on the spare CPU. Without a spare CPU
the reader would take turns with ggml's spinning threads: indexing 15 HTML pages of Python's
library reference (4.7 MB, 3,122 chunks) on 2 CPUs with 2 embedding threads took 73.0 and
72.9 s with the reader thread, 71.4 and 70.6 s without, so there everything runs in the
caller's thread, one group after the other (:func:`_groups` either way).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generator, Iterable, Iterator, Union

from .._progress import progress_bar
from ..errors import DocumentLoadError
from . import chunking, loaders
from .display import index_report_html
from .records import ChunkRecord, FileRecord, doc_id_for
from .store import Store

if TYPE_CHECKING:
    from ..embed4all import Embed4All

__all__ = ["EMBED_GROUP_CHUNKS", "READ_AHEAD_GROUPS", "STAGES", "IndexReport",
           "ModelTokenCounter", "index_files"]

#: Chunks embedded together (across files) before they are written to the store.
EMBED_GROUP_CHUNKS = 256
#: Groups of files read and chunked ahead of the one being embedded (the queue's bound).
READ_AHEAD_GROUPS = 2
#: The stages :attr:`IndexReport.timings` times, in the order they are printed.
STAGES = ("scan", "read", "chunk", "embed", "store")


@dataclass
class IndexReport:
    """What an indexing run did.

    Attributes:
        indexed: paths whose chunks were (re)written.
        unchanged: paths skipped because size and mtime, or the content hash, were unchanged.
        removed: paths whose chunks were removed (deleted, or no longer readable).
        skipped: ``(path, reason)`` for files that were not indexed.
        n_chunks: chunks written in this run.
        timings: seconds per stage (:data:`STAGES`): ``scan`` (walking the roots and comparing
            file records), ``read`` (hashing files whose time stamps changed, loading and
            parsing), ``chunk``, ``embed``, ``store`` (Chroma writes and removals), and
            ``total`` (the run's wall clock). With ``read_ahead`` the stages add up to more
            than ``total`` where they overlapped.
        read_ahead: reading and chunking ran in a thread of their own, beside the embedding
            (a CPU was spare beyond the embedding model's threads); else in line with it.
        n_threads: the embedding model's CPU threads.
        encoder: the graph that embedded (``Embed4All.engine.model.encoder``): ``"g4r"``, the
            library's own BERT encoder, or ``"llama.cpp"``.
    """

    indexed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    n_chunks: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    read_ahead: bool = False
    n_threads: int = 0
    encoder: str = ""

    def summary(self) -> str:
        """One line: ``"3 indexed (41 chunks), 1 unchanged, 0 removed, 2 skipped"``."""
        return (f"{len(self.indexed)} indexed ({self.n_chunks} chunks), {len(self.unchanged)} "
                f"unchanged, {len(self.removed)} removed, {len(self.skipped)} skipped")

    def timing_summary(self) -> str:
        """One line: ``"84.6 s: scan 0.1 s, read 3.2 s, chunk 5.0 s, embed 70.3 s, store 6.1 s"``."""
        t = self.timings
        return f"{t.get('total', 0.0):.1f} s: " + ", ".join(
            f"{k} {t.get(k, 0.0):.1f} s" for k in STAGES)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data, the keys of ``gpt4all-rag index --json``: ``indexed``,
        ``unchanged``, ``removed`` (lists of paths), ``skipped`` (a list of ``{"path",
        "reason"}``), ``n_chunks`` and ``timings`` (seconds per stage)."""
        return {"indexed": list(self.indexed), "unchanged": list(self.unchanged),
                "removed": list(self.removed),
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
                "n_chunks": self.n_chunks, "timings": dict(self.timings)}

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
    started = time.perf_counter()
    report = IndexReport(timings=dict.fromkeys(STAGES, 0.0))
    times = report.timings
    records = {path: rec for path, rec in store.file_records().items() if rec.origin == "file"}
    seen: set[str] = set()
    todo: list[tuple[loaders.FileInfo, FileRecord | None]] = []
    for item in loaders.iter_files(roots, extensions=extensions, max_file_bytes=max_file_bytes):
        if isinstance(item, loaders.Skipped):
            report.skipped.append((item.path, item.reason))
            if item.filtered:
                seen.add(item.path)  # not asked for this time: what was indexed of it stays
            continue
        seen.add(item.path)
        rec = records.get(item.path)
        if rec is not None and rec.state == "done" and rec.size_bytes == item.size_bytes \
                and rec.mtime == item.mtime:
            report.unchanged.append(item.path)
        else:
            todo.append((item, rec))
    times["scan"] = time.perf_counter() - started
    with _timed(times, "store"):
        for path, rec in records.items():
            if path not in seen and any(_is_under(path, r) for r in roots):
                store.remove_document(rec.doc_id)
                report.removed.append(path)

    counter = ModelTokenCounter(embedder)
    max_tokens = max(16, embedder.n_ctx - len(counter.prefix_tokens(prefix)) - 2)

    def chunk(doc: loaders.Document) -> list[chunking.Chunk]:
        return chunking.chunk_document(doc, counter, chunk_tokens=chunk_tokens,
                                       overlap_tokens=overlap_tokens, max_tokens=max_tokens)

    files_bar = progress_bar(enabled=show_progress, total=len(todo), desc="files", unit="file")
    chunks_bar = progress_bar(enabled=show_progress, desc="chunks", unit="chunk")
    groups = _groups(todo, chunk, max_file_bytes, times)
    report.n_threads = embedder.engine.n_threads
    report.encoder = embedder.engine.model.encoder or ""
    report.read_ahead = _spare_cpus(embedder) > 0
    if report.read_ahead:
        groups = _read_ahead(groups)
    try:
        for group in groups:
            pending: list[_Pending] = []
            for event in group:
                if isinstance(event, _Pending):
                    pending.append(event)
                    continue
                info, rec, skipped = event
                with _timed(times, "store"):
                    if skipped is None:  # the content hash matched: only the time stamps moved
                        store.put_file(FileRecord(**{**rec.__dict__, "size_bytes": info.size_bytes,
                                                     "mtime": info.mtime}))
                        report.unchanged.append(info.path)
                    else:
                        report.skipped.append((skipped.path, skipped.reason))
                        if rec is not None:
                            store.remove_document(rec.doc_id)
                            report.removed.append(info.path)
                files_bar.update(1)
            _flush(store, embedder, pending, prefix, report, chunks_bar, files_bar)
    finally:
        groups.close()  # stops a reader thread
        files_bar.close()
        chunks_bar.close()
        if report.indexed or report.removed:
            with _timed(times, "store"):
                store.bump_revision()
        times["total"] = time.perf_counter() - started
    return report


#: What the reader hands over for one file: its chunks, or ``(info, record, None)`` when its
#: content hash matched the record, or ``(info, record, Skipped)`` when it could not be read.
_Event = Union[_Pending, "tuple[loaders.FileInfo, FileRecord | None, loaders.Skipped | None]"]
_Group = list[_Event]


def _groups(todo: list[tuple[loaders.FileInfo, FileRecord | None]], chunk: Any,
            max_file_bytes: int, times: dict[str, float]) -> Iterator[_Group]:
    """Hash, load and chunk the files of ``todo`` in order, in groups of at least
    :data:`EMBED_GROUP_CHUNKS` chunks (the last one smaller), timing ``read`` and ``chunk``."""
    group: _Group = []
    n_chunks = 0
    for info, rec in todo:
        with _timed(times, "read"):
            try:
                same = rec is not None and rec.state == "done" and \
                    loaders.hash_file(info.path) == rec.content_hash
            except DocumentLoadError:
                same = False  # gone or unreadable since the scan: try_load gives the reason
            if same:
                group.append((info, rec, None))
                continue
            doc = loaders.try_load(info, max_file_bytes=max_file_bytes)
        if isinstance(doc, loaders.Skipped):
            group.append((info, rec, doc))
            continue
        with _timed(times, "chunk"):
            chunks = chunk(doc)
        group.append(_Pending(info, doc, chunks))
        n_chunks += len(chunks)
        if n_chunks >= EMBED_GROUP_CHUNKS:
            yield group
            group, n_chunks = [], 0
    if group:
        yield group


def _read_ahead(groups: Iterator[_Group]) -> Generator[_Group, None, None]:
    """Iterate ``groups`` in a thread of its own, at most :data:`READ_AHEAD_GROUPS` ahead of
    the caller; its exception is raised in the caller's thread. Closing the generator stops
    the thread (at its next group) and waits for it."""
    out: queue.Queue[Any] = queue.Queue(READ_AHEAD_GROUPS)
    stop = threading.Event()
    end = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def run() -> None:
        try:
            for group in groups:
                if not put(group):
                    return
            put(end)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            put(exc)

    reader = threading.Thread(target=run, name="localdocs-reader", daemon=True)
    reader.start()
    try:
        while (item := out.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def _spare_cpus(embedder: Embed4All) -> int:
    """CPUs this process may use beyond the embedder's threads."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cpus = os.cpu_count() or 1
    return cpus - embedder.engine.n_threads


@contextmanager
def _timed(times: dict[str, float], stage: str) -> Iterator[None]:
    """``with _timed(times, stage):`` adds the block's wall-clock seconds to ``times[stage]``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        times[stage] += time.perf_counter() - t0


def _flush(store: Store, embedder: Embed4All, pending: list[_Pending], prefix: str,
           report: IndexReport, chunks_bar: Any, files_bar: Any) -> None:
    """Embed the pending files' chunks in one call and replace their chunks in the store."""
    if not pending:
        return
    texts = [c.text for p in pending for c in p.chunks]
    with _timed(report.timings, "embed"):
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
    with _timed(report.timings, "store"):
        store.replace_documents(batch)
    for p in pending:
        report.indexed.append(p.document.path)
        report.n_chunks += len(p.chunks)
        chunks_bar.update(len(p.chunks))
        files_bar.update(1)


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
