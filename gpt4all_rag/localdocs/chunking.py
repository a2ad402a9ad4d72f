"""Split documents into chunks that fit an embedding model's window, with page and line spans.

:func:`chunk_document` follows the document's structure: Markdown and reST headings start a
new chunk (and give each chunk its heading path, e.g. ``"Install > Linux"``), paragraphs are
packed together up to a target size, fenced code blocks stay whole when they fit, and
oversized paragraphs are split at sentences (prose) or lines (code), then words, then
characters. Sizes are in the embedding model's tokens, measured by a caller-supplied
``count_tokens``; consecutive chunks of one section share ``overlap_tokens`` of text.

Every chunk is a contiguous slice of one :class:`~gpt4all_rag.localdocs.loaders.Section`
(``chunk.text == section.text[chunk.char_start:chunk.char_end]``), so its page and its first
and last line are exact. Every chunk satisfies ``count_tokens(chunk.text) <= max_tokens``:
the final text of each chunk is measured once more and re-split if needed.

Cost: ``count_tokens`` is called about once per paragraph, once per sentence or line of an
oversized paragraph, a few times (binary search on short tails) per overlap, and once per
chunk; O(n log n) characters tokenized in total, never O(n^2). A chunk's size is estimated
as the sum of its parts plus one token per join, so a chunk's true size may differ from the
estimate by a token or two at the joins; the final measurement enforces ``max_tokens``.

Finding the headings, code blocks, paragraphs and sentences is
:mod:`~gpt4all_rag.localdocs.structure`'s part; this module measures and packs them.

:func:`chunk_words_baseline` is GPT4All desktop's chunker, kept for comparison.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gpt4all_rag.errors import InvalidParameterError
from gpt4all_rag.localdocs.loaders import Document, Section
from gpt4all_rag.localdocs.structure import (MARKUP_BY_KIND, line_spans, sentence_spans,
                                             split_blocks, strip_span)

CHUNKING_VERSION = 1
"""Bumped whenever chunk boundaries change for the same input and parameters; an index
records it with its chunking parameters so that a changed chunker triggers a rebuild."""

DEFAULT_CHUNK_TOKENS = 256
DEFAULT_OVERLAP_TOKENS = 32

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class Chunk:
    """A piece of a document, with where it came from.

    Attributes:
        text: The chunk's text. For :func:`chunk_document` it equals
            ``document.sections[section].text[char_start:char_end]``; for
            :func:`chunk_words_baseline` it is the words of that slice joined by single spaces.
        index: 0-based position of the chunk in the document.
        section: Index of the section in ``document.sections`` the chunk comes from.
        page: 1-based PDF page, ``None`` for other formats.
        start_line: 1-based first line of the chunk in the file (for PDFs: in the page's
            extracted text); ``None`` when the section has no line numbers (HTML, DOCX).
        end_line: 1-based last line, inclusive; ``None`` like ``start_line``.
        heading: Heading path in effect at the chunk's start, outermost first, joined by
            ``" > "`` (e.g. ``"Install > Linux"``); ``None`` outside any heading.
        char_start: Offset of the chunk's first character in its section's text.
        char_end: Offset one past its last character.
        n_tokens: ``count_tokens(text)`` as measured; ``None`` for the baseline chunker.
    """

    text: str
    index: int
    section: int
    page: int | None
    start_line: int | None
    end_line: int | None
    heading: str | None
    char_start: int
    char_end: int
    n_tokens: int | None = None


@dataclass
class _Unit:
    """A span of a section's text that the packer places whole: a heading, a paragraph, a
    code block, or a piece of an oversized one."""

    start: int
    end: int
    tokens: int  # content tokens (count_tokens minus the counter's fixed overhead)
    kind: str  # "heading", "fence" (kept whole up to max_tokens), "code" or "text"
    heading: tuple[str, ...]


def chunk_document(
    document: Document,
    count_tokens: TokenCounter,
    *,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    max_tokens: int | None = None,
) -> list[Chunk]:
    """Split a document into structure-aware chunks of about ``chunk_tokens`` tokens.

    Rules, in order of priority:

    * Chunks never cross sections (so a PDF chunk lies on one page).
    * A Markdown (also HTML and DOCX, which the loaders render as Markdown) or reST heading
      starts a new chunk, unless the chunk so far holds only headings; heading lines stay in
      the text. Plain text, PDFs and source code have no headings.
    * Paragraphs (runs of lines between blank lines) are packed while the estimated size
      stays within ``chunk_tokens``. A fenced code block (Markdown ```` ``` ````/``~~~``,
      reST ``::`` literal blocks and ``code-block`` directives) that fits ``max_tokens`` is
      never split.
    * A paragraph over ``chunk_tokens`` is split at sentence ends (prose) or line ends
      (code), pieces still too long at word boundaries, and a single word still too long
      at characters.
    * When a section continues past a chunk for lack of room, the next chunk starts with the
      previous chunk's last ``overlap_tokens`` tokens or fewer (cut at a word, or at a line
      start when one lies in the first half of that tail). No overlap across headings.

    Args:
        document: A loaded document.
        count_tokens: Returns the number of tokens the embedding model sees for a text. It
            may add a fixed number of special tokens (e.g. BERT's ``[CLS]``/``[SEP]``);
            ``count_tokens("")`` is taken as that overhead. Called O(n) times (see the module
            docstring).
        chunk_tokens: Target chunk size in tokens, overlap included (default 256). A chunk
            exceeds it (up to ``max_tokens``) only to keep a code block whole or to keep the
            overlap when the next paragraph alone fills the target.
        overlap_tokens: Tokens shared by consecutive chunks of a section (default 32);
            0 disables overlap.
        max_tokens: Hard limit: ``count_tokens(chunk.text) <= max_tokens`` for every chunk.
            Pass the embedding window minus any prefix the embedder adds. ``None`` means
            ``chunk_tokens + overlap_tokens``.

    Returns:
        The chunks in document order, ``index`` 0, 1, 2, ...; empty if the document has no
        non-blank text.

    Raises:
        InvalidParameterError: ``chunk_tokens < 1``, ``overlap_tokens < 0``,
            ``overlap_tokens >= chunk_tokens``, ``max_tokens < chunk_tokens``, or
            ``max_tokens`` too small for the counter's overhead or for a single character.
    """
    if max_tokens is None:
        max_tokens = chunk_tokens + overlap_tokens
    if chunk_tokens < 1:
        raise InvalidParameterError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    if overlap_tokens < 0 or overlap_tokens >= chunk_tokens:
        raise InvalidParameterError(
            f"overlap_tokens must be in [0, chunk_tokens={chunk_tokens}), got {overlap_tokens}")
    if max_tokens < chunk_tokens:
        raise InvalidParameterError(
            f"max_tokens ({max_tokens}) must be >= chunk_tokens ({chunk_tokens}): lower "
            f"chunk_tokens, or use an embedding model with a larger window")
    overhead = count_tokens("")
    if max_tokens - overhead < 1 or chunk_tokens - overhead < 1:
        raise InvalidParameterError(
            f"chunk_tokens ({chunk_tokens}) and max_tokens ({max_tokens}) must exceed the "
            f"{overhead} tokens count_tokens adds to every text")
    chunker = _Chunker(count_tokens, overhead, chunk_tokens - overhead, overlap_tokens,
                       max_tokens - overhead)
    chunks: list[Chunk] = []
    markup = MARKUP_BY_KIND.get(document.kind, "text")
    for number, section in enumerate(document.sections):
        units = chunker.units(section.text, markup)
        lines = _LineIndex(section)
        for start, end, n_tokens, heading in chunker.pack(section.text, units):
            first, last = lines.span(start, end)
            chunks.append(Chunk(
                text=section.text[start:end], index=len(chunks), section=number,
                page=section.page, start_line=first, end_line=last,
                heading=" > ".join(heading) or None, char_start=start, char_end=end,
                n_tokens=n_tokens,
            ))
    return chunks


def chunk_words_baseline(document: Document, chunk_chars: int = 512) -> list[Chunk]:
    """GPT4All desktop's LocalDocs chunker, for comparison.

    Whitespace-separated words are joined by single spaces into chunks of at most
    ``chunk_chars`` characters, without overlap; a word longer than ``chunk_chars`` is cut
    into pieces of ``chunk_chars`` characters (as GPT4All's ``ChunkStreamer`` does).
    Unlike GPT4All, chunks do not cross sections (PDF pages), and line spans are filled in.

    Args:
        document: A loaded document.
        chunk_chars: Maximum characters per chunk (GPT4All's default is 512).

    Returns:
        The chunks; ``heading`` and ``n_tokens`` are ``None``, ``char_start``/``char_end``
        span the chunk's words in the section.

    Raises:
        InvalidParameterError: ``chunk_chars < 1``.
    """
    if chunk_chars < 1:
        raise InvalidParameterError(f"chunk_chars must be >= 1, got {chunk_chars}")
    chunks: list[Chunk] = []
    for number, section in enumerate(document.sections):
        groups: list[list[tuple[int, int]]] = [[]]
        length = 0
        for match in re.finditer(r"\S+", section.text):
            for piece in range(match.start(), match.end(), chunk_chars):
                span = (piece, min(piece + chunk_chars, match.end()))
                extra = span[1] - span[0] + (1 if groups[-1] else 0)
                if groups[-1] and length + extra > chunk_chars:
                    groups.append([])
                    length, extra = 0, span[1] - span[0]
                groups[-1].append(span)
                length += extra
        lines = _LineIndex(section)
        for words in filter(None, groups):
            start, end = words[0][0], words[-1][1]
            first, last = lines.span(start, end)
            text = " ".join(section.text[s:e] for s, e in words)
            chunks.append(Chunk(text, len(chunks), number, section.page, first, last, None,
                                start, end))
    return chunks


# --------------------------------------------------------------------------- sizing

_WORD = re.compile(r"\S+")
_WORD_START = re.compile(r"(?<!\S)\S")


class _LineIndex:
    """Maps character offsets of a section to 1-based file lines."""

    def __init__(self, section: Section) -> None:
        self.first = section.start_line
        self.newlines = ([m.start() for m in re.finditer("\n", section.text)]
                         if self.first is not None else [])

    def span(self, start: int, end: int) -> tuple[int | None, int | None]:
        if self.first is None:
            return None, None
        return (self.first + bisect.bisect_left(self.newlines, start),
                self.first + bisect.bisect_left(self.newlines, end - 1))


def _largest(lo: int, hi: int, guess: int, size: Callable[[int], int], limit: int
             ) -> tuple[int, int]:
    """Largest k in [lo, hi] with size(k) <= limit, assuming size grows with k: gallop from
    ``guess``, then bisect. Returns (k, size(k)), or (lo - 1, 0) if even size(lo) is over."""
    seen: dict[int, int] = {}

    def fits(k: int) -> bool:
        if k not in seen:
            seen[k] = size(k)
        return seen[k] <= limit

    guess = min(max(guess, lo), hi)
    step = 1
    if fits(guess):
        good, bad = guess, hi + 1
        while good < hi:
            probe = min(good + step, hi)
            if not fits(probe):
                bad = probe
                break
            good, step = probe, step * 2
    else:
        good, bad = lo - 1, guess
        while bad > lo:
            probe = max(bad - step, lo)
            if fits(probe):
                good = probe
                break
            bad, step = probe, step * 2
        if good < lo:
            return lo - 1, 0
    while bad - good > 1:
        middle = (good + bad) // 2
        if fits(middle):
            good = middle
        else:
            bad = middle
    return good, seen[good]


@dataclass
class _Open:
    """The chunk being filled."""

    start: int
    units: list[_Unit]
    tokens: int

    @property
    def only_headings(self) -> bool:
        return all(u.kind == "heading" for u in self.units)


def _heading_of(units: list[_Unit]) -> tuple[str, ...]:
    for unit in units:
        if unit.kind != "heading":
            return unit.heading
    return units[-1].heading


class _Chunker:
    """Chunking with one token counter and one set of budgets (content tokens, i.e. without
    the counter's fixed overhead)."""

    def __init__(self, count_tokens: TokenCounter, overhead: int, target: int, overlap: int,
                 hard: int) -> None:
        self.count = count_tokens
        self.overhead = overhead
        self.target = target
        self.overlap = overlap
        self.hard = hard

    def measure(self, text: str) -> int:
        return self.count(text) - self.overhead

    # ---- units

    def units(self, text: str, markup: str) -> list[_Unit]:
        """Measured units of a section, each within budget (``target``, fences ``hard``)."""
        path: list[tuple[int, str]] = []
        units: list[_Unit] = []
        for block in split_blocks(text, markup):
            start, end = strip_span(text, block.start, block.end)
            if start >= end:
                continue
            if block.kind == "heading":
                while path and path[-1][0] >= block.level:
                    path.pop()
                path.append((block.level, " ".join(block.title.split())))
            heading = tuple(title for _, title in path if title)
            tokens = self.measure(text[start:end])
            limit = self.hard if block.kind == "fence" else self.target
            if tokens <= limit:
                units.append(_Unit(start, end, tokens, block.kind, heading))
            else:
                units.extend(self._split(text, start, end, block.kind, heading, tokens))
        return units

    def _split(self, text: str, start: int, end: int, kind: str, heading: tuple[str, ...],
               tokens: int) -> list[_Unit]:
        """Pieces of an oversized block: sentences (prose) or lines (code), then words, then
        characters; the first piece of a heading stays a heading."""
        if kind == "heading":
            spans = [(start, end)]
        elif kind in ("fence", "code"):
            spans = [strip_span(text, a, b) for a, b in line_spans(text, start, end)]
        else:
            spans = list(sentence_spans(text, start, end))
        piece_kind = "code" if kind in ("fence", "code") else "text"
        pieces: list[_Unit] = []
        for a, b in spans:
            if a >= b:
                continue
            size = tokens if (a, b) == (start, end) else self.measure(text[a:b])
            parts = [(a, b, size)] if size <= self.target else self.cut(
                text, a, b, self.target, size)
            for c, d, t in parts:
                first = kind == "heading" and not pieces
                pieces.append(_Unit(c, d, t, "heading" if first else piece_kind, heading))
        return pieces

    def cut(self, text: str, start: int, end: int, limit: int, tokens: int
            ) -> list[tuple[int, int, int]]:
        """Greedy pieces of ``text[start:end]`` of at most ``limit`` content tokens, cut at
        word boundaries, or inside a word longer than ``limit``. Returns (start, end, tokens)
        with tokens measured on the exact piece."""
        words = [m.span() for m in _WORD.finditer(text, start, end)]
        ends = [e for _, e in words]
        chars_per_token = (end - start) / max(tokens, 1)
        pieces: list[tuple[int, int, int]] = []
        i = 0
        while i < len(words):
            left = words[i][0]
            guess = bisect.bisect_right(ends, left + int(limit * chars_per_token)) - 1
            j, size = _largest(i, len(words) - 1, guess,
                               lambda k, left=left: self.measure(text[left:ends[k]]), limit)
            if j >= i:
                pieces.append((left, ends[j], size))
                i = j + 1
                continue
            pos = left  # a single word over the limit: cut it at characters
            while pos < words[i][1]:
                k, size = _largest(pos + 1, words[i][1], pos + int(limit * chars_per_token),
                                   lambda k, pos=pos: self.measure(text[pos:k]), limit)
                if k <= pos:  # not even one character fits: keep it, fit() will refuse it
                    k, size = pos + 1, self.measure(text[pos:pos + 1])
                pieces.append((pos, k, size))
                pos = k
            i += 1
        return pieces

    # ---- packing

    def pack(self, text: str, units: list[_Unit]
             ) -> Iterator[tuple[int, int, int, tuple[str, ...]]]:
        """Pack units into chunks: (start, end, count_tokens of the text, heading path)."""
        current: _Open | None = None
        for unit in units:
            if current is not None and unit.kind == "heading" and not current.only_headings:
                yield from self.fit(text, current.start, current.units)
                current = None
            if current is None:
                current = _Open(unit.start, [unit], unit.tokens)
                continue
            need = current.tokens + 1 + unit.tokens
            if need <= self.target or (need <= self.hard and (
                    unit.kind == "fence" or current.only_headings)):
                current.units.append(unit)
                current.tokens = need
                continue
            emitted = self.fit(text, current.start, current.units)
            yield from emitted
            overlap = None
            if self.overlap and not current.only_headings and unit.kind != "heading":
                last_start, last_end, last_n, _ = emitted[-1]
                overlap = self.overlap_start(text, last_start, last_end, last_n)
            current = _Open(unit.start, [unit], unit.tokens)
            if overlap is not None and overlap[1] + 1 + unit.tokens <= self.hard:
                current.start = overlap[0]
                current.tokens += overlap[1] + 1
        if current is not None:
            yield from self.fit(text, current.start, current.units)

    def fit(self, text: str, start: int, units: list[_Unit]
            ) -> list[tuple[int, int, int, tuple[str, ...]]]:
        """Measure a packed chunk once; re-split it if the estimate was too optimistic."""
        end = units[-1].end
        n_tokens = self.count(text[start:end])
        if n_tokens - self.overhead <= self.hard:
            return [(start, end, n_tokens, _heading_of(units))]
        if start < units[0].start:  # drop the overlap first
            return self.fit(text, units[0].start, units)
        if len(units) > 1:
            middle = len(units) // 2
            return (self.fit(text, units[0].start, units[:middle])
                    + self.fit(text, units[middle].start, units[middle:]))
        pieces = []
        for a, b, size in self.cut(text, start, end, self.hard, n_tokens - self.overhead):
            if size > self.hard:
                raise InvalidParameterError(
                    f"max_tokens={self.hard + self.overhead} is too small: the text "
                    f"{text[a:b]!r} alone counts {size + self.overhead} tokens")
            pieces.append((a, b, size + self.overhead, units[0].heading))
        return pieces

    def overlap_start(self, text: str, start: int, end: int, n_tokens: int
                      ) -> tuple[int, int] | None:
        """Where the tail of ``text[start:end]`` with at most ``overlap`` content tokens
        begins (a word start, or a line start in the tail's first half), and its size."""
        chars_per_token = (end - start) / max(n_tokens - self.overhead, 1)
        window = int(chars_per_token * self.overlap * 2) + 16
        starts = [m.start() for m in _WORD_START.finditer(text, max(start + 1, end - window),
                                                           end)]
        if not starts:
            return None
        sizes: dict[int, int] = {}

        def size(k: int) -> int:
            if k not in sizes:
                sizes[k] = self.measure(text[starts[k]:end])
            return sizes[k]

        lo, hi = 0, len(starts)  # find the first k whose tail fits
        while lo < hi:
            middle = (lo + hi) // 2
            if size(middle) <= self.overlap:
                hi = middle
            else:
                lo = middle + 1
        if lo == len(starts):
            return None
        position, tokens = starts[lo], size(lo)
        newline = text.find("\n", position, position + (end - position) // 2)
        if newline != -1:
            line_start, _ = strip_span(text, newline, end)
            if line_start < end:
                position, tokens = line_start, self.measure(text[line_start:end])
        return position, tokens


__all__ = [
    "CHUNKING_VERSION",
    "DEFAULT_CHUNK_TOKENS",
    "DEFAULT_OVERLAP_TOKENS",
    "Chunk",
    "TokenCounter",
    "chunk_document",
    "chunk_words_baseline",
]
