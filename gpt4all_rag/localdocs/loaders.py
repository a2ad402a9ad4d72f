"""Find documents in folders and read them into text with page and line positions.

Two steps, so that an incremental indexer never reads a file it does not need:

1. :func:`iter_files` walks folders (sorted, deterministic) and yields a :class:`FileInfo`
   (path, size, mtime: one ``stat``, no content read) per candidate, or a :class:`Skipped`
   record saying why a path was left out (broken link, symlink loop, too large, ...).
2. :func:`load` (or :func:`try_load`) reads one file into a :class:`Document`: its text as
   :class:`Section` objects that remember where the text came from (PDF page, first line).

:func:`scan` chains both. Nothing here raises on a bad file during a scan: every problem
becomes a :class:`Skipped` record with a reason a user can act on.

Supported formats: plain text, Markdown, reStructuredText and source code, HTML, PDF and DOCX.
GPT4All's desktop LocalDocs reads txt, md, rst, pdf and docx. This module picks the format
from the extension (:func:`kind_of`); the per-format readers are in
:mod:`gpt4all_rag.localdocs.readers`, as are :class:`Section` and :func:`decode_text`, which
are re-exported here.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Union

from gpt4all_rag.errors import DocumentLoadError
from gpt4all_rag.localdocs.readers import (
    Section,
    _decode_text,
    _load_docx,
    _load_html,
    _load_pdf,
    _markup_title,
    _RefusedError,
    decode_text,
)

DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024
"""Files larger than this (50 MiB) are skipped unless the caller passes another limit."""

MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown", ".mdown", ".mkd"})
RST_EXTENSIONS = frozenset({".rst"})
TEXT_EXTENSIONS = frozenset({".txt", ".text"})
HTML_EXTENSIONS = frozenset({".html", ".htm", ".xhtml"})
PDF_EXTENSIONS = frozenset({".pdf"})
DOCX_EXTENSIONS = frozenset({".docx"})
CODE_EXTENSIONS = frozenset({
    ".py", ".pyi", ".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".java", ".kt",
    ".kts", ".scala", ".groovy", ".gradle", ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh",
    ".hxx", ".cs", ".go", ".rs", ".rb", ".php", ".pl", ".pm", ".lua", ".r", ".jl", ".swift",
    ".m", ".mm", ".dart", ".ex", ".exs", ".erl", ".hs", ".ml", ".clj", ".nim", ".zig", ".sh",
    ".bash", ".zsh", ".fish", ".ps1", ".bat", ".cmd", ".toml", ".yaml", ".yml", ".json",
    ".ini", ".cfg", ".conf", ".xml", ".css", ".scss", ".sass", ".less", ".sql", ".proto",
    ".graphql", ".cmake", ".vue", ".svelte", ".tex", ".bib", ".org", ".adoc",
})
DEFAULT_EXTENSIONS = (MARKDOWN_EXTENSIONS | RST_EXTENSIONS | TEXT_EXTENSIONS | HTML_EXTENSIONS
                      | PDF_EXTENSIONS | DOCX_EXTENSIONS | CODE_EXTENSIONS)
"""File name extensions (lower case, with the dot) that :func:`iter_files` picks by default."""

EXCLUDED_DIRS = frozenset({"__pycache__", "node_modules"})
"""Directory names never descended into (besides hidden ones, whose name starts with a dot)."""

_HASH_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class Document:
    """One loaded file.

    Attributes:
        path: Absolute path of the file as it was named (symbolic links are not resolved).
        title: From the format's metadata (HTML ``<title>``, PDF and DOCX properties), else
            the first heading (Markdown, reST, HTML, DOCX), else the file name.
        kind: ``"text"``, ``"markdown"``, ``"rst"``, ``"code"``, ``"html"``, ``"pdf"`` or
            ``"docx"``. HTML and DOCX text is rendered as Markdown (``#`` headings, fenced
            code), which the chunker uses.
        mtime: Modification time, seconds since the epoch (``st_mtime``).
        size_bytes: Size of the file in bytes.
        content_hash: SHA-256 of the file's bytes, lower-case hex.
        sections: Non-empty text sections in document order: one per page for PDFs, one for
            every other format.
        encoding: The text encoding used to decode a text-like file (e.g. ``"utf-8"``,
            ``"cp1252"``); ``None`` for PDF and DOCX.
        warnings: Problems that lost part of the text without refusing the file, e.g.
            ``"page 7 skipped (KeyError: '/Contents')"`` for a PDF page pypdf cannot read.
    """

    path: str
    title: str
    kind: str
    mtime: float
    size_bytes: int
    content_hash: str
    sections: tuple[Section, ...]
    encoding: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """All sections' text joined by blank lines."""
        return "\n\n".join(section.text for section in self.sections)


@dataclass(frozen=True)
class FileInfo:
    """A candidate file found by :func:`iter_files`; its content has not been read.

    Attributes:
        path: Absolute path (symbolic links not resolved).
        size_bytes: Size in bytes (of the link's target for a symbolic link).
        mtime: Modification time, seconds since the epoch.
    """

    path: str
    size_bytes: int
    mtime: float


@dataclass(frozen=True)
class Skipped:
    """A path that was left out, and why.

    Attributes:
        path: Absolute path.
        reason: Short human-readable reason, e.g. ``"empty file"``,
            ``"binary file (contains NUL bytes)"``, ``"symbolic link loop"``.
        filtered: left out by the extensions asked for, not for a problem with the file
            (an index run keeps what it indexed of it before).
    """

    path: str
    reason: str
    filtered: bool = False


ScanResult = Union[Document, Skipped]  # noqa: UP007 - a runtime alias, Python 3.10 compatible
PathLike = Union[str, "os.PathLike[str]"]  # noqa: UP007


def kind_of(path: PathLike) -> str:
    """The :attr:`Document.kind` a file gets from its extension.

    Args:
        path: File path; only its extension (case-insensitive) matters.

    Returns:
        ``"markdown"``, ``"rst"``, ``"html"``, ``"pdf"``, ``"docx"``, ``"code"``, or ``"text"``
        for everything else (unknown extensions are read as plain text).
    """
    ext = os.path.splitext(os.fspath(path))[1].lower()
    for exts, kind in ((MARKDOWN_EXTENSIONS, "markdown"), (RST_EXTENSIONS, "rst"),
                       (HTML_EXTENSIONS, "html"), (PDF_EXTENSIONS, "pdf"),
                       (DOCX_EXTENSIONS, "docx"), (CODE_EXTENSIONS, "code")):
        if ext in exts:
            return kind
    return "text"


def file_stat(path: PathLike) -> tuple[int, float]:
    """Size and modification time of a file, following symbolic links; reads no content.

    Args:
        path: File path.

    Returns:
        ``(size_bytes, mtime)``, mtime in seconds since the epoch.

    Raises:
        DocumentLoadError: The file cannot be stat'ed (missing, broken link, loop, ...).
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise DocumentLoadError(f"Cannot load {os.fspath(path)!r}: {_os_reason(path, exc)}"
                                ) from None
    return st.st_size, st.st_mtime


def hash_file(path: PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks.

    Args:
        path: File path.

    Returns:
        Lower-case hex digest, equal to :attr:`Document.content_hash` of the same bytes.

    Raises:
        DocumentLoadError: The file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(_HASH_BLOCK_BYTES), b""):
                digest.update(block)
    except OSError as exc:
        raise DocumentLoadError(f"Cannot load {os.fspath(path)!r}: {_os_reason(path, exc)}"
                                ) from None
    return digest.hexdigest()


def iter_files(
    paths: PathLike | Iterable[PathLike],
    *,
    extensions: Iterable[str] | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    follow_symlinks: bool = True,
) -> Iterator[FileInfo | Skipped]:
    """Find candidate files under folders, without reading their content.

    Folders are walked depth-first with entries sorted by name, so the order is deterministic.
    Hidden entries (name starting with ``.``, e.g. ``.git``) and :data:`EXCLUDED_DIRS` are
    passed over silently, as are files in walked folders whose extension is not wanted. Every
    other problem yields a :class:`Skipped` record: missing path, broken symbolic link,
    symbolic link loop, permission denied, not a regular file (FIFO, socket, device), empty
    file, file over ``max_file_bytes``, a file or folder already reached by another path.

    Args:
        paths: A file or folder, or several. Files named directly must still have a wanted
            extension (else they are skipped with a reason).
        extensions: Extensions to pick, with or without the dot, case-insensitive (``"md"``
            and ``".MD"`` are the same). ``None`` means :data:`DEFAULT_EXTENSIONS` and files
            without an extension (``README``, ``LICENSE``: read as plain text, refused by
            :func:`load` when binary). Every other regular file met in a folder is yielded
            as :class:`Skipped` with its type; hidden entries and :data:`EXCLUDED_DIRS` are
            not walked.
        max_file_bytes: Larger files are skipped. Default 50 MiB.
        follow_symlinks: Follow symbolic links to files and folders (loops are detected and
            skipped). When False, links are skipped with a reason.

    Yields:
        :class:`FileInfo` per candidate file, or :class:`Skipped`.
    """
    wanted = _normalize_extensions(extensions)
    if extensions is None:
        wanted = wanted | {""}
    walker = _Walker(wanted, max_file_bytes, follow_symlinks)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    for path in paths:
        yield from walker.top(os.path.abspath(os.fspath(path)))


def load(path: PathLike, *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Document:
    """Read one file into a :class:`Document`.

    The format follows the extension (see :func:`kind_of`); unknown extensions are read as
    plain text, so binary content is detected and refused.

    Args:
        path: File path (relative paths are made absolute).
        max_file_bytes: Refuse larger files. Default 50 MiB.

    Returns:
        The document; ``sections`` is never empty.

    Raises:
        DocumentLoadError: The file cannot be used: missing, unreadable, not a regular file,
            empty, too large, binary, undecodable, a corrupt or encrypted PDF or DOCX, or
            without any text. The message names the path and the reason.
    """
    abspath = os.path.abspath(os.fspath(path))
    try:
        return _load(abspath, max_file_bytes)
    except _RefusedError as failure:
        raise DocumentLoadError(f"Cannot load {abspath!r}: {failure.reason}") from None


def try_load(path: PathLike | FileInfo, *,
             max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> ScanResult:
    """Like :func:`load`, but returns a :class:`Skipped` record instead of raising.

    Args:
        path: File path, or a :class:`FileInfo` from :func:`iter_files`.
        max_file_bytes: Refuse larger files. Default 50 MiB.

    Returns:
        The :class:`Document`, or :class:`Skipped` with the reason.
    """
    raw_path = path.path if isinstance(path, FileInfo) else path
    abspath = os.path.abspath(os.fspath(raw_path))
    try:
        return _load(abspath, max_file_bytes)
    except _RefusedError as failure:
        return Skipped(abspath, failure.reason)


def scan(
    paths: PathLike | Iterable[PathLike],
    *,
    extensions: Iterable[str] | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    follow_symlinks: bool = True,
) -> Iterator[ScanResult]:
    """Find and load documents: :func:`iter_files` then :func:`try_load` for each file.

    Args:
        paths: See :func:`iter_files`.
        extensions: See :func:`iter_files`.
        max_file_bytes: See :func:`iter_files`.
        follow_symlinks: See :func:`iter_files`.

    Yields:
        A :class:`Document` per loaded file or a :class:`Skipped` record, in walk order. Never
        raises for a bad file.
    """
    for item in iter_files(paths, extensions=extensions, max_file_bytes=max_file_bytes,
                           follow_symlinks=follow_symlinks):
        yield item if isinstance(item, Skipped) else try_load(item, max_file_bytes=max_file_bytes)


# --------------------------------------------------------------------------- walking


def _normalize_extensions(extensions: Iterable[str] | None) -> frozenset[str]:
    if extensions is None:
        return DEFAULT_EXTENSIONS
    if isinstance(extensions, str):
        extensions = [extensions]
    return frozenset("." + e.lower().lstrip(".") for e in extensions)


def _os_reason(path: PathLike, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "broken symbolic link" if os.path.islink(path) else "no such file or directory"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return f"cannot read ({exc.strerror or exc})"


def _type_name(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def _size_text(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


class _Walker:
    """Depth-first, sorted walk with loop and duplicate detection across all given paths."""

    def __init__(self, wanted: frozenset[str], max_file_bytes: int, follow: bool) -> None:
        self.wanted = wanted
        self.max_file_bytes = max_file_bytes
        self.follow = follow
        self.seen_dirs: dict[tuple[int, int], str] = {}
        self.seen_files: dict[tuple[int, int], str] = {}

    def top(self, path: str) -> Iterator[FileInfo | Skipped]:
        if not self.follow and os.path.islink(path):
            yield Skipped(path, "symbolic link (not followed)")
            return
        try:
            st = os.stat(path)
        except OSError as exc:
            yield Skipped(path, _os_reason(path, exc))
            return
        if stat.S_ISDIR(st.st_mode):
            yield from self._walk(path, st)
        elif os.path.splitext(path)[1].lower() not in self.wanted:
            yield self._unwanted(path)
        else:
            yield self._file(path, st)

    def _walk(self, root: str, root_st: os.stat_result) -> Iterator[FileInfo | Skipped]:
        key = (root_st.st_dev, root_st.st_ino)
        if key in self.seen_dirs:
            yield Skipped(root, f"folder already scanned as {self.seen_dirs[key]!r}")
            return
        self.seen_dirs[key] = root
        # Each frame: (directory path, its (dev, ino), iterator over its remaining entries).
        stack = [(root, key, iter(self._entries(root)))]
        ancestors = {key}
        while stack:
            _, dir_key, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                ancestors.discard(dir_key)
                continue
            if isinstance(entry, Skipped):
                yield entry
                continue
            name, path = entry
            if name.startswith("."):
                continue
            if os.path.islink(path) and not self.follow:
                yield Skipped(path, "symbolic link (not followed)")
                continue
            extension = os.path.splitext(name)[1].lower()
            try:
                st = os.stat(path)
            except OSError as exc:  # report it unless it is plainly a file we do not want
                if extension in self.wanted or not extension:
                    yield Skipped(path, _os_reason(path, exc))
                continue
            if stat.S_ISDIR(st.st_mode):
                if name in EXCLUDED_DIRS:
                    continue
                sub_key = (st.st_dev, st.st_ino)
                if sub_key in ancestors:
                    yield Skipped(path, "symbolic link loop (points to an enclosing folder)")
                elif sub_key in self.seen_dirs:
                    yield Skipped(path, f"folder already scanned as {self.seen_dirs[sub_key]!r}")
                else:
                    self.seen_dirs[sub_key] = path
                    ancestors.add(sub_key)
                    stack.append((path, sub_key, iter(self._entries(path))))
            elif extension in self.wanted:
                yield self._file(path, st)
            elif stat.S_ISREG(st.st_mode):
                yield self._unwanted(path)

    @staticmethod
    def _unwanted(path: str) -> Skipped:
        ext = os.path.splitext(path)[1].lower() or "(no extension)"
        return Skipped(path, f"file type {ext} is not among the extensions to index", filtered=True)

    @staticmethod
    def _entries(directory: str) -> list[tuple[str, str] | Skipped]:
        try:
            with os.scandir(directory) as it:
                names = sorted(entry.name for entry in it)
        except OSError as exc:
            return [Skipped(directory, _os_reason(directory, exc))]
        return [(name, os.path.join(directory, name)) for name in names]

    def _file(self, path: str, st: os.stat_result) -> FileInfo | Skipped:
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:  # bytes the file system's encoding could not decode
            return Skipped(path, "the file name is not valid UTF-8 (rename it to index it)")
        if not stat.S_ISREG(st.st_mode):
            return Skipped(path, f"not a regular file ({_type_name(st.st_mode)})")
        key = (st.st_dev, st.st_ino)
        if key in self.seen_files:
            return Skipped(path, f"same file as {self.seen_files[key]!r}")
        self.seen_files[key] = path
        if st.st_size == 0:
            return Skipped(path, "empty file")
        if st.st_size > self.max_file_bytes:
            return Skipped(path, f"file too large ({_size_text(st.st_size)} > limit "
                                 f"{_size_text(self.max_file_bytes)})")
        return FileInfo(path, st.st_size, st.st_mtime)


# --------------------------------------------------------------------------- loading


def _read(path: str, max_file_bytes: int) -> tuple[bytes, os.stat_result]:
    """Read a regular file's bytes; the stat comes from the open descriptor (no race)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _RefusedError(_os_reason(path, exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise _RefusedError("is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):  # never open a FIFO: it would block
        raise _RefusedError(f"not a regular file ({_type_name(st.st_mode)})")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise _RefusedError(_os_reason(path, exc)) from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _RefusedError(f"not a regular file ({_type_name(st.st_mode)})")
        if st.st_size > max_file_bytes:
            raise _RefusedError(f"file too large ({_size_text(st.st_size)} > limit "
                               f"{_size_text(max_file_bytes)})")
        try:
            raw = f.read(max_file_bytes + 1)
        except OSError as exc:
            raise _RefusedError(_os_reason(path, exc)) from None
    if len(raw) > max_file_bytes:
        raise _RefusedError(f"file too large (over the limit of {_size_text(max_file_bytes)})")
    if not raw:
        raise _RefusedError("empty file")
    return raw, st


def _load(path: str, max_file_bytes: int) -> Document:
    raw, st = _read(path, max_file_bytes)
    kind = kind_of(path)
    name = os.path.basename(path)
    encoding: str | None = None
    warnings: list[str] = []
    if kind == "pdf":
        title, sections, warnings = _load_pdf(raw)
    elif kind == "docx":
        title, sections = _load_docx(raw)
    elif kind == "html":
        title, sections, encoding = _load_html(raw)
    else:
        text, encoding = _decode_text(raw)
        title = _markup_title(text, kind)
        sections = (Section(text, None, 1),) if text.strip() else ()
    if not sections:
        raise _RefusedError("no extractable text (scanned images? OCR is not supported)"
                           if kind == "pdf" else "no text content")
    return Document(
        path=path, title=title or name, kind=kind, mtime=st.st_mtime, size_bytes=len(raw),
        content_hash=hashlib.sha256(raw).hexdigest(), sections=tuple(sections),
        encoding=encoding, warnings=tuple(warnings),
    )


__all__ = [
    "CODE_EXTENSIONS",
    "DEFAULT_EXTENSIONS",
    "DEFAULT_MAX_FILE_BYTES",
    "EXCLUDED_DIRS",
    "Document",
    "FileInfo",
    "ScanResult",
    "Section",
    "Skipped",
    "decode_text",
    "file_stat",
    "hash_file",
    "iter_files",
    "kind_of",
    "load",
    "scan",
    "try_load",
]
