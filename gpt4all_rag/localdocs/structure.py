"""The structure of a section's text, for the chunker: headings, code blocks, paragraphs.

:func:`split_blocks` splits a section into blocks line by line: Markdown ATX (``# Title``) and
setext (underlined) headings, fenced code (```` ``` ````/``~~~``) and YAML front matter;
reStructuredText section titles (over- and underlined or underlined; levels in order of first
appearance, as docutils assigns them), ``code-block`` directives and the indented literal
block after ``::``; and paragraphs (runs of non-blank lines; in source code files, code).
:func:`sentence_spans` and :func:`line_spans` cut an oversized paragraph or code block further.
Offsets are into the section's text, so every block and piece is an exact slice of it.

Used by :mod:`~gpt4all_rag.localdocs.chunking`, which sizes and packs what this module finds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["Block", "MARKUP_BY_KIND", "SENTENCE_BREAK", "line_spans", "sentence_spans",
           "split_blocks", "strip_span"]

#: The markup each :attr:`Document.kind <gpt4all_rag.localdocs.loaders.Document.kind>` is parsed
#: as (HTML and DOCX are rendered as Markdown by the loaders).
MARKUP_BY_KIND = {"markdown": "markdown", "html": "markdown", "docx": "markdown",
                   "rst": "rst", "code": "code", "text": "text", "pdf": "text"}
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_ADORNMENT = re.compile(r"([!-/:-@\[-`{-~])\1+[ \t]*")
_RST_CODE_DIRECTIVE = re.compile(r"[ \t]*\.\. +(code-block|code|sourcecode)::")
SENTENCE_BREAK = re.compile(
    r"[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+|[\u3002\uff01\uff1f]+\s*"
    r"|\n(?=[ \t]*(?:[-*+\u2022]|\d+[.)]|\|)[ \t])")


@dataclass
class Block:
    """A heading, a code block or a paragraph of a section's text (offsets into it)."""

    start: int  # offset of the block's first line
    end: int  # offset of the end of its last line (before the newline)
    kind: str  # "heading", "fence" (a code block kept whole), "code" or "text" (a paragraph)
    level: int = 0  # heading level
    title: str = ""


def _line_offsets(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of every line, end excluding the newline."""
    spans, pos = [], 0
    for line in text.split("\n"):
        spans.append((pos, pos + len(line)))
        pos += len(line) + 1
    return spans


def split_blocks(text: str, markup: str) -> list[Block]:
    """Split a section into headings, code blocks and paragraphs (runs of non-blank lines).

    Args:
        text: the section's text.
        markup: ``"markdown"``, ``"rst"``, ``"code"`` or ``"text"`` (see :data:`MARKUP_BY_KIND`).

    Returns:
        The blocks in order; blank lines belong to none (except inside code blocks).
    """
    lines = _line_offsets(text)
    blocks: list[Block] = []
    para: int | None = None  # index of the current paragraph's first line
    rst_levels: dict[tuple[str, bool], int] = {}
    body_kind = "code" if markup == "code" else "text"

    def close(last: int) -> None:
        nonlocal para
        if para is not None:
            blocks.append(Block(lines[para][0], lines[last][1], body_kind))
            para = None

    def line(k: int) -> str:
        return text[lines[k][0]:lines[k][1]]

    i, n = 0, len(lines)
    if markup == "markdown" and n > 2 and line(0).rstrip() == "---":  # YAML front matter
        for k in range(1, min(n, 200)):
            if line(k).rstrip() in ("---", "..."):
                blocks.append(Block(lines[0][0], lines[k][1], "code"))
                i = k + 1
                break
    while i < n:
        current = line(i)
        if not current.strip():
            close(i - 1)
            i += 1
            continue
        if markup == "markdown":
            fence = _FENCE.match(current)
            atx = _ATX.fullmatch(current)
            if fence:
                close(i - 1)
                mark = fence.group(1)
                k = i + 1
                closing = re.compile(rf" {{0,3}}{re.escape(mark[0])}{{{len(mark)},}}[ \t]*")
                while k < n and not closing.fullmatch(line(k)):
                    k += 1
                k = min(k, n - 1)
                blocks.append(Block(lines[i][0], lines[k][1], "fence"))
                i = k + 1
                continue
            if atx:
                close(i - 1)
                title = (atx.group(2) or "").strip()
                blocks.append(Block(lines[i][0], lines[i][1], "heading", len(atx.group(1)),
                                     title))
                i += 1
                continue
            if para == i - 1 and _SETEXT.fullmatch(current) and i > 0:
                level = 1 if current.strip()[0] == "=" else 2
                blocks.append(Block(lines[para][0], lines[i][1], "heading", level,
                                     line(para).strip()))
                para = None
                i += 1
                continue
        elif markup == "rst":
            heading = _rst_heading(line, i, n, para)
            if heading is not None:
                close(i - 1)
                key, title, last = heading
                level = rst_levels.setdefault(key, len(rst_levels) + 1)
                blocks.append(Block(lines[i][0], lines[last][1], "heading", level, title))
                i = last + 1
                continue
            indent = len(current) - len(current.lstrip())
            if para is None and _RST_CODE_DIRECTIVE.match(current):
                last = _indented_end(line, i, n, indent)
                blocks.append(Block(lines[i][0], lines[last][1], "fence"))
                i = last + 1
                continue
            if current.rstrip().endswith("::"):  # the indented block that follows is code
                if para is None:
                    para = i
                close(i)
                last = _indented_end(line, i, n, indent)
                if last > i:
                    first = i + 1
                    while not line(first).strip():
                        first += 1
                    blocks.append(Block(lines[first][0], lines[last][1], "fence"))
                i = last + 1
                continue
        if para is None:
            para = i
        i += 1
    close(n - 1)
    return blocks


def _rst_heading(line: Callable[[int], str], i: int, n: int, para: int | None
                 ) -> tuple[tuple[str, bool], str, int] | None:
    """(style key, title, last line) if a reST section title starts at line ``i``."""
    if para is not None:
        return None
    current = line(i)
    if (_ADORNMENT.fullmatch(current) and i + 2 < n and line(i + 1).strip()
            and line(i + 2).rstrip() == current.rstrip()):
        return (current.strip()[0], True), line(i + 1).strip(), i + 2
    if i + 1 < n and not _ADORNMENT.fullmatch(current):
        under = line(i + 1)
        title = current.strip()
        if (_ADORNMENT.fullmatch(under) and not under[0].isspace()
                and len(under.strip()) >= min(len(title), 3)):
            return (under.strip()[0], False), title, i + 1
    return None


def _indented_end(line: Callable[[int], str], i: int, n: int, indent: int) -> int:
    """Last line of the block indented deeper than ``indent`` after line ``i`` (``i`` if
    there is none); blank lines inside the block belong to it."""
    last = i
    for k in range(i + 1, n):
        text = line(k)
        if text.strip():
            if len(text) - len(text.lstrip()) <= indent:
                break
            last = k
    return last



def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` narrowed past the whitespace at both ends of ``text[start:end]``."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def line_spans(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The lines of ``text[start:end]`` as ``(start, end)``, end before the newline."""
    position = start
    while position < end:
        newline = text.find("\n", position, end)
        stop = end if newline == -1 else newline
        yield position, stop
        position = stop + 1


def sentence_spans(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The sentences of ``text[start:end]`` (after ``.!?…`` and CJK full stops followed by
    space, and before list items and table rows), stripped; see :data:`SENTENCE_BREAK`."""
    position = start
    for match in SENTENCE_BREAK.finditer(text, start, end):
        yield strip_span(text, position, match.end())
        position = match.end()
    if position < end:
        yield strip_span(text, position, end)
