"""Find documents in folders and read them into text with page and line positions.

Two steps, so that an incremental indexer never reads a file it does not need:

1. :func:`iter_files` walks folders (sorted, deterministic) and yields a :class:`FileInfo`
   (path, size, mtime: one ``stat``, no content read) per candidate, or a :class:`Skipped`
   record saying why a path was left out (broken link, symlink loop, too large, ...).
2. :func:`load` (or :func:`try_load`) reads one file into a :class:`Document`: its text as
   :class:`Section` objects that remember where the text came from (PDF page, first line).

:func:`scan` chains both. Nothing here raises on a bad file during a scan: every problem
becomes a :class:`Skipped` record with a reason a user can act on.

Supported formats: plain text, Markdown, reStructuredText and source code (decoded with a
UTF-8 fast path, byte-order marks, then charset-normalizer), HTML (beautifulsoup4, visible
text, headings and code blocks rendered as Markdown), PDF (pypdf, one section per page) and
DOCX (python-docx, headings rendered as Markdown ``#`` lines). GPT4All's desktop LocalDocs
reads txt, md, rst, pdf and docx.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import io
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Union

from gpt4all_rag.errors import DocumentLoadError

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

_CONTROL_CHARS = re.compile("[\x00-\x06\x0e-\x1a\x1c-\x1f]")  # GPT4All's "binary" set
_MAX_CONTROL_RATIO = 0.01
_WESTERN_MAX_CHAOS = 0.1
_HASH_BLOCK_BYTES = 1 << 20
_BOMS = (  # longest first: the UTF-32 LE BOM starts with the UTF-16 LE BOM
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


@dataclass(frozen=True)
class Section:
    """A run of a document's text and where it came from.

    Attributes:
        text: The text, newlines normalised to ``"\\n"``.
        page: 1-based PDF page number; ``None`` for other formats.
        start_line: 1-based line of the file (or, for PDFs, of the page's extracted text) on
            which ``text`` starts, so that a character offset in ``text`` maps to line
            ``start_line + text.count("\\n", 0, offset)``. ``None`` when the text is converted
            (HTML, DOCX) and lines do not map to the file.
    """

    text: str
    page: int | None = None
    start_line: int | None = None


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
    """

    path: str
    reason: str


ScanResult = Union[Document, Skipped]  # noqa: UP007 - a runtime alias, Python 3.10 compatible
PathLike = Union[str, "os.PathLike[str]"]  # noqa: UP007


class _RefusedError(Exception):
    """Internal: a file cannot be loaded; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
            and ``".MD"`` are the same). ``None`` means :data:`DEFAULT_EXTENSIONS`.
        max_file_bytes: Larger files are skipped. Default 50 MiB.
        follow_symlinks: Follow symbolic links to files and folders (loops are detected and
            skipped). When False, links are skipped with a reason.

    Yields:
        :class:`FileInfo` per candidate file, or :class:`Skipped`.
    """
    wanted = _normalize_extensions(extensions)
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
            ext = os.path.splitext(path)[1].lower() or "(no extension)"
            yield Skipped(path, f"file type {ext} is not among the extensions to index")
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

    @staticmethod
    def _entries(directory: str) -> list[tuple[str, str] | Skipped]:
        try:
            with os.scandir(directory) as it:
                names = sorted(entry.name for entry in it)
        except OSError as exc:
            return [Skipped(directory, _os_reason(directory, exc))]
        return [(name, os.path.join(directory, name)) for name in names]

    def _file(self, path: str, st: os.stat_result) -> FileInfo | Skipped:
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


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def decode_text(raw: bytes) -> tuple[str, str]:
    """Decode the bytes of a text file.

    Order: a byte-order mark (UTF-8/16/32) decides; else bytes with NUL are binary; else
    strict UTF-8; else Windows-1252 when charset-normalizer finds it clean (its best guess is
    unreliable for short Western-European text); else charset-normalizer's best guess. Text
    with more than 1 % of the control characters GPT4All treats as binary (C0 except tab,
    newlines, form feed, escape) is refused. Newlines are normalised to ``"\\n"`` and a BOM is
    dropped, so line numbers match what editors show.

    Args:
        raw: The file's bytes.

    Returns:
        ``(text, encoding)``, encoding as a Python codec name (``"utf-8"``, ``"cp1252"``, ...).

    Raises:
        DocumentLoadError: Binary or undecodable bytes.
    """
    try:
        return _decode_text(raw)
    except _RefusedError as failure:
        raise DocumentLoadError(failure.reason) from None


def _decode_text(raw: bytes) -> tuple[str, str]:
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            text = raw[len(bom):].decode(codec, errors="replace")
            return _check_control(_normalize_newlines(text)), codec
    if b"\x00" in raw:
        raise _RefusedError("binary file (contains NUL bytes)")
    try:
        return _check_control(_normalize_newlines(raw.decode("utf-8"))), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    western = from_bytes(raw, cp_isolation=["cp1252"]).best()
    if western is not None and western.chaos <= _WESTERN_MAX_CHAOS:
        match = western
    else:
        match = from_bytes(raw).best()
    if match is None:
        raise _RefusedError("binary file or unknown text encoding")
    return _check_control(_normalize_newlines(str(match))), match.encoding


def _check_control(text: str) -> str:
    sample = text[:65536]
    if sample and len(_CONTROL_CHARS.findall(sample)) > _MAX_CONTROL_RATIO * len(sample):
        raise _RefusedError("binary file (control characters)")
    return text


_ATX = re.compile(r" {0,3}#{1,6}[ \t]+(.+?)[ \t#]*")
_UNDERLINE = {"markdown": re.compile(r" {0,3}=+[ \t]*"),
              "rst": re.compile(r"([!-/:-@\[-`{-~])\1+[ \t]*")}


def _markup_title(text: str, kind: str) -> str:
    """First Markdown ``#``/``===`` or reST (underlined) title in the first 200 lines."""
    if kind not in _UNDERLINE:
        return ""
    lines = text.split("\n", 200)[:200]
    for i, line in enumerate(lines):
        atx = _ATX.fullmatch(line) if kind == "markdown" else None
        if atx:
            return atx.group(1).strip()
        under = lines[i + 1] if i + 1 < len(lines) else ""
        title = line.strip()
        if (title and not _UNDERLINE["rst"].fullmatch(line) and _UNDERLINE[kind].fullmatch(under)
                and len(under.strip()) >= min(len(title), 3)):
            return title
    return ""


def _load_pdf(raw: bytes) -> tuple[str, list[Section], list[str]]:
    import pypdf

    # pypdf raises many exception types on malformed files (PdfReadError, KeyError,
    # ValueError, RecursionError, ...); any of them means "cannot read this PDF".
    try:
        reader = pypdf.PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise _RefusedError("encrypted PDF (a password is needed)")
        pages = reader.pages
        n_pages = len(pages)
    except _RefusedError:
        raise
    except Exception as exc:  # noqa: BLE001 - see above
        raise _RefusedError(f"corrupt PDF ({type(exc).__name__}: {exc})") from None
    sections, warnings, first_error = [], [], ""
    for number in range(1, n_pages + 1):
        try:
            text = pages[number - 1].extract_text() or ""
        except Exception as exc:  # noqa: BLE001 - one broken page must not lose the others
            warnings.append(f"page {number} skipped ({type(exc).__name__}: {exc})")
            first_error = first_error or f"{type(exc).__name__}: {exc}"
            continue
        text = _normalize_newlines(text).replace("\x00", "")
        if text.strip():
            sections.append(Section(text, number, 1))
    title = ""
    try:
        if reader.metadata is not None and reader.metadata.title:
            title = str(reader.metadata.title).strip()
    except Exception:  # noqa: BLE001 - broken metadata is not worth refusing the text
        title = ""
    if warnings and not sections:
        raise _RefusedError(f"corrupt PDF (no page can be read; {first_error})")
    return title, sections, warnings


def _load_docx(raw: bytes) -> tuple[str, list[Section]]:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(raw))
        blocks: list[str] = []
        first_heading = ""
        previous_was_item = False
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                rows = []
                for row in item.rows:
                    cells, seen = [], set()
                    for cell in row.cells:  # merged cells repeat: keep each once
                        if id(cell._tc) not in seen:
                            seen.add(id(cell._tc))
                            cells.append(" ".join(cell.text.split()))
                    rows.append(" | ".join(cells))
                if any(r.strip(" |") for r in rows):
                    blocks.append("\n".join(rows))
                previous_was_item = False
                continue
            text = _normalize_newlines(item.text).strip()
            if not text:
                continue
            style = (item.style.name if item.style is not None else "") or ""
            level = _docx_heading_level(style)
            if level:
                text = " ".join(text.split())
                first_heading = first_heading or text
                blocks.append("#" * level + " " + text)
                previous_was_item = False
            elif style.startswith("List"):
                if previous_was_item:
                    blocks[-1] += "\n- " + text
                else:
                    blocks.append("- " + text)
                previous_was_item = True
            else:
                blocks.append(text)
                previous_was_item = False
        core_title = (document.core_properties.title or "").strip()
    except Exception as exc:  # noqa: BLE001 - zipfile, lxml and python-docx errors alike
        raise _RefusedError(f"corrupt DOCX ({type(exc).__name__}: {exc})") from None
    text = "\n\n".join(blocks)
    return core_title or first_heading, [Section(text)] if text.strip() else []


def _docx_heading_level(style: str) -> int:
    if style == "Title":
        return 1
    m = re.fullmatch(r"Heading ([1-9])", style)
    return int(m.group(1)) if m else 0


_HTML_SKIP = frozenset({"script", "style", "noscript", "template", "head", "svg", "canvas",
                        "iframe", "object", "embed", "select", "button"})
_HTML_BLOCK = frozenset({
    "address", "article", "aside", "blockquote", "body", "dd", "details", "dialog", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "li",
    "main", "nav", "ol", "p", "section", "summary", "table", "tbody", "thead", "tfoot", "tr",
    "ul", "caption", "html",
})
_BR = "\x00"  # stands for <br> while whitespace is collapsed (decoded HTML never has NUL)


def _load_html(raw: bytes) -> tuple[str, list[Section], str | None]:
    from bs4 import BeautifulSoup

    if b"\x00" in raw and not raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _RefusedError("binary file (contains NUL bytes)")
    soup = BeautifulSoup(raw, "html.parser")
    title = ""
    if soup.title is not None:
        title = " ".join(soup.title.get_text().split())
    blocks = _html_blocks(soup)
    if not title:
        title = next((b.lstrip("#").strip() for b in blocks if b.startswith("# ")), "")
    text = "\n\n".join(blocks)
    return title, [Section(text)] if text.strip() else [], soup.original_encoding


def _html_blocks(root: object) -> list[str]:
    """Visible text of an HTML tree as Markdown-like blocks (iterative: no recursion limit)."""
    from bs4.element import (Comment, Declaration, Doctype, NavigableString,
                             ProcessingInstruction, Tag)

    hidden_strings = (Comment, Declaration, Doctype, ProcessingInstruction)
    blocks: list[str] = []
    buffer: list[str] = []

    def flush() -> None:
        lines = [" ".join(part.split()) for part in "".join(buffer).split(_BR)]
        text = "\n".join(line for line in lines if line)
        buffer.clear()
        if text and text != "-":
            blocks.append(text)

    stack: list[tuple[object, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        if isinstance(node, NavigableString):
            if not isinstance(node, hidden_strings):
                buffer.append(str(node).replace(_BR, " "))
            continue
        if not isinstance(node, Tag):
            continue
        name = (node.name or "").lower()
        if closing:
            if name in _HTML_BLOCK:
                flush()
            elif name in ("td", "th"):
                buffer.append(" | ")
            continue
        if name in _HTML_SKIP or node.has_attr("hidden"):
            continue
        if re.fullmatch(r"h[1-6]", name):
            flush()
            heading = " ".join(node.get_text(" ").split())
            if heading:
                blocks.append("#" * int(name[1]) + " " + heading)
            continue
        if name == "pre":
            flush()
            code = _normalize_newlines(node.get_text()).strip("\n")
            if code.strip():
                blocks.append("```\n" + code + "\n```")
            continue
        if name == "br":
            buffer.append(_BR)
            continue
        if name in _HTML_BLOCK:
            flush()
            if name == "li":
                buffer.append("- ")
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.contents))
    flush()
    return blocks


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
