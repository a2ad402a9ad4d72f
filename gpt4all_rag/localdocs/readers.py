"""Per-format readers: turn the bytes of one file into text :class:`Section` objects.

:mod:`gpt4all_rag.localdocs.loaders` finds files, reads their bytes, picks a reader here by
the file's extension and builds the :class:`~gpt4all_rag.localdocs.loaders.Document`:

* plain text, Markdown, reStructuredText and source code: :func:`decode_text` (a UTF-8 fast
  path, byte-order marks, then charset-normalizer; binary content is refused), and
  ``_markup_title`` for the first Markdown or reST heading;
* HTML: ``_load_html`` (beautifulsoup4; visible text, headings and code blocks rendered as
  Markdown; permalink anchors such as Sphinx's ``¶`` header links left out, see
  ``_strip_permalinks``);
* PDF: ``_load_pdf`` (pypdf, one section per page; unreadable pages become warnings);
* DOCX: ``_load_docx`` (python-docx, headings rendered as Markdown ``#`` lines).

A reader that cannot use a file raises ``_RefusedError`` with a reason a user can act on; the
loaders turn it into a :class:`~gpt4all_rag.localdocs.loaders.Skipped` record or a
:class:`~gpt4all_rag.errors.DocumentLoadError`.
"""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from dataclasses import dataclass

from gpt4all_rag.errors import DocumentLoadError

_CONTROL_CHARS = re.compile("[\x00-\x06\x0e-\x1a\x1c-\x1f]")  # GPT4All's "binary" set
_MAX_CONTROL_RATIO = 0.01
#: The most a DOCX (a zip archive) may hold unpacked, its entries' sizes summed: python-docx
#: parses the XML in memory (about twice its size), and a zip bomb of a few MiB declares GiB.
MAX_DOCX_UNPACKED_BYTES = 256 * 1024 * 1024
_WESTERN_MAX_CHAOS = 0.1
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


class _RefusedError(Exception):
    """Internal: a file cannot be loaded; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            unpacked = sum(entry.file_size for entry in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        unpacked = 0  # not a zip archive: python-docx below says so
    if unpacked > MAX_DOCX_UNPACKED_BYTES:
        raise _RefusedError(f"DOCX too large unpacked ({unpacked / 2**20:,.0f} MiB > "
                            f"{MAX_DOCX_UNPACKED_BYTES // 2**20} MiB): a zip bomb, or a document to split")
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
#: Classes of permalink anchors: Sphinx and MkDocs (``headerlink``), Docusaurus (``hash-link``).
_PERMALINK_CLASSES = frozenset({"headerlink", "hash-link"})
#: The whole visible text of a permalink anchor in a heading (whitespace and zero-width
#: spaces removed): ¶ (Sphinx, MkDocs, Python-Markdown's toc), # (Hugo, many themes),
#: § (rustdoc), 🔗, or nothing (GitHub's icon-only ``<a class="anchor">``).
_PERMALINK_GLYPHS = frozenset({"", "\u00b6", "#", "\u00a7", "\U0001f517"})
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def _load_html(raw: bytes) -> tuple[str, list[Section], str | None]:
    from bs4 import BeautifulSoup

    if b"\x00" in raw and not raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _RefusedError("binary file (contains NUL bytes)")
    soup = BeautifulSoup(raw, "html.parser")
    _strip_permalinks(soup)
    title = ""
    if soup.title is not None:
        title = " ".join(soup.title.get_text().split())
    blocks = _html_blocks(soup)
    if not title:
        title = next((b.lstrip("#").strip() for b in blocks if b.startswith("# ")), "")
    text = _check_control("\n\n".join(blocks))  # binary bytes read as HTML
    return title, [Section(text)] if text.strip() else [], soup.original_encoding


def _strip_permalinks(soup: object) -> None:
    """Remove permalink anchors, which are navigation, not text, from a parsed page.

    Sphinx writes ``<a class="headerlink" href="#id" title="Link to this heading">¶</a>``
    inside every heading, and also after API signatures (``<dt>``), captions and tables;
    left in, each heading path of a citation would read "7. Input and Output ¶ > 7.2. ...".
    Removed: every ``<a>`` with a permalink class (:data:`_PERMALINK_CLASSES`) anywhere, and
    inside a heading every same-page ``<a href="#...">`` whose whole text is a permalink
    glyph (:data:`_PERMALINK_GLYPHS`). A heading that is itself a link (``<h2><a
    href="#install">Install</a></h2>``) keeps its text.
    """
    from bs4.element import Tag

    for anchor in soup.find_all("a"):  # type: ignore[attr-defined]
        if not isinstance(anchor, Tag) or anchor.decomposed:
            continue
        classes = anchor.get("class") or []
        if _PERMALINK_CLASSES.intersection(classes):
            anchor.decompose()
            continue
        href = anchor.get("href")
        if isinstance(href, str) and href.startswith("#") \
                and anchor.find_parent(re.compile(r"^h[1-6]$")) is not None \
                and "".join(anchor.get_text().split()).translate(_ZERO_WIDTH) in _PERMALINK_GLYPHS:
            anchor.decompose()


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


__all__ = ["Section", "decode_text"]
