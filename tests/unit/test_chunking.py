"""LocalDocs chunking on real files: token limits, exact spans, overlap, structure, pages.

Two token counters stand in for an embedding tokenizer: ``word_tokens`` (words and
punctuation marks, like a WordPiece pre-tokenizer) and the stricter ``char_tokens``
(one token per 4 characters, rounded up, so long words and code cost a lot). ``bert_tokens``
adds the fixed ``[CLS]``/``[SEP]`` overhead that real BERT tokenizers count.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import string
from collections.abc import Callable
from pathlib import Path

import pytest

from gpt4all_rag.errors import InvalidParameterError
from gpt4all_rag.localdocs import chunking, loaders
from gpt4all_rag.localdocs.chunking import Chunk, chunk_document, chunk_words_baseline
from gpt4all_rag.localdocs.loaders import Document, Section

_TOKEN = re.compile(r"\w+|[^\w\s]")


def word_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def char_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def bert_tokens(text: str) -> int:
    return word_tokens(text) + 2


COUNTERS = [word_tokens, char_tokens, bert_tokens]

def prose(n_words: int, seed: int = 0) -> str:
    """Random lower-case words with a full stop every 11 words; same seed, same text."""
    rng = random.Random(seed * 100003 + n_words)
    words = []
    for i in range(n_words):
        word = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 8)))
        if i % 11 == 10:
            word += "."
        words.append(word)
    return " ".join(words).capitalize() + "."


GUIDE = f"""\
# Guide

{prose(40)}

## Install

{prose(30)}

### Linux

Run the installer:

```bash
# this comment is not a heading
./configure --prefix=/usr/local
make -j2
sudo make install
```

### macOS

{prose(300, seed=1)}

{prose(250, seed=2)}

## Usage

{prose(20)}
"""


def doc_from(tmp_path: Path, name: str, text: str) -> Document:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return loaders.load(path)


def check_spans(document: Document, chunks: list[Chunk]) -> None:
    """Each chunk is the exact slice it claims, on the lines it claims."""
    for chunk in chunks:
        section = document.sections[chunk.section]
        assert section.text[chunk.char_start:chunk.char_end] == chunk.text
        assert chunk.page == section.page
        if section.start_line is None:
            assert chunk.start_line is None and chunk.end_line is None
            continue
        lines = section.text.split("\n")
        first = chunk.start_line - section.start_line
        last = chunk.end_line - section.start_line
        assert chunk.text in "\n".join(lines[first:last + 1])
        line_starts = [0]
        for line in lines:
            line_starts.append(line_starts[-1] + len(line) + 1)
        # The first character lies on line ``first``, the last on line ``last``.
        assert line_starts[first] <= chunk.char_start < line_starts[first + 1]
        assert line_starts[last] <= chunk.char_end - 1 < line_starts[last + 1]


@pytest.mark.parametrize("count_tokens", COUNTERS, ids=lambda f: f.__name__)
def test_every_chunk_fits_and_spans_match_the_file(tmp_path: Path,
                                                   count_tokens: Callable[[str], int]) -> None:
    document = doc_from(tmp_path, "guide.md", GUIDE)
    chunks = chunk_document(document, count_tokens, chunk_tokens=64, overlap_tokens=8,
                            max_tokens=96)
    assert len(chunks) > 5
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert count_tokens(chunk.text) == chunk.n_tokens <= 96
        assert chunk.text == chunk.text.strip() and chunk.text
    check_spans(document, chunks)
    file_lines = (tmp_path / "guide.md").read_text(encoding="utf-8").split("\n")
    for chunk in chunks:  # against the file itself, not only the section
        assert chunk.text in "\n".join(file_lines[chunk.start_line - 1:chunk.end_line])


def test_headings_start_chunks_and_are_recorded(tmp_path: Path) -> None:
    document = doc_from(tmp_path, "guide.md", GUIDE)
    chunks = chunk_document(document, word_tokens, chunk_tokens=64, overlap_tokens=8,
                            max_tokens=96)
    headings = [c.heading for c in chunks]
    assert headings[0] == "Guide"
    assert "Guide > Install" in headings
    assert "Guide > Install > Linux" in headings
    assert "Guide > Install > macOS" in headings
    assert headings[-1] == "Guide > Usage"
    assert chunks[-1].text.startswith("## Usage")
    # A heading followed directly by a subheading stays with it.
    assert any(c.text.startswith("## Install") for c in chunks)
    # "# this comment" inside the fence is code, not a heading.
    assert not any("this comment" in (c.heading or "") for c in chunks)
    # Chunks never straddle a heading: a heading line only ever opens a chunk.
    for chunk in chunks:
        for line in chunk.text.split("\n")[1:]:
            if line.startswith("#") and not line.startswith("# this comment"):
                assert chunk.text.startswith("#")


def test_code_block_kept_whole_when_it_fits(tmp_path: Path) -> None:
    code = "\n".join(f"    value_{i} = compute({i}, {i + 1})" for i in range(12))
    text = f"# Code\n\n{prose(50)}\n\n```python\n{code}\n```\n\n{prose(50)}\n"
    document = doc_from(tmp_path, "code.md", text)
    fence = text[text.index("```python"):text.index("```\n\n", text.index("```python") + 3) + 3]
    assert word_tokens(fence) > 64  # larger than the target, smaller than the hard limit
    chunks = chunk_document(document, word_tokens, chunk_tokens=64, overlap_tokens=8,
                            max_tokens=word_tokens(fence) + 40)
    assert any(fence in c.text for c in chunks)
    small = chunk_document(document, word_tokens, chunk_tokens=32, overlap_tokens=4,
                           max_tokens=48)  # the fence does not fit: split at lines
    assert not any(fence in c.text for c in small)
    assert all(word_tokens(c.text) <= 48 for c in small)
    check_spans(document, small)


def test_overlap_between_consecutive_chunks(tmp_path: Path) -> None:
    document = doc_from(tmp_path, "long.txt", prose(2000))
    chunks = chunk_document(document, word_tokens, chunk_tokens=100, overlap_tokens=20,
                            max_tokens=130)
    assert len(chunks) > 10
    for previous, chunk in itertools.pairwise(chunks):
        assert chunk.char_start < previous.char_end  # shared text
        shared = document.sections[0].text[chunk.char_start:previous.char_end]
        assert 0 < word_tokens(shared) <= 20
        assert previous.text.endswith(shared)
        assert chunk.text.startswith(shared)
    no_overlap = chunk_document(document, word_tokens, chunk_tokens=100, overlap_tokens=0)
    for previous, chunk in itertools.pairwise(no_overlap):
        assert chunk.char_start >= previous.char_end


def test_no_overlap_across_headings(tmp_path: Path) -> None:
    text = f"# A\n\n{prose(150)}\n\n# B\n\n{prose(150)}\n"
    document = doc_from(tmp_path, "two.md", text)
    chunks = chunk_document(document, word_tokens, chunk_tokens=64, overlap_tokens=16)
    b_start = text.index("# B")
    first_b = next(c for c in chunks if c.heading == "B")
    assert first_b.char_start == b_start
    assert all(c.char_end <= b_start for c in chunks if c.heading == "A")


def test_sentences_then_words_then_characters(tmp_path: Path) -> None:
    giant_word = "x" * 5000
    long_line = " ".join(["word"] * 3000)  # no sentence end
    text = f"{prose(400)}\n\n{long_line}\n\n{giant_word}\n"
    document = doc_from(tmp_path, "hard.txt", text)
    for count_tokens in COUNTERS:
        chunks = chunk_document(document, count_tokens, chunk_tokens=50, overlap_tokens=5,
                                max_tokens=60)
        assert all(count_tokens(c.text) <= 60 for c in chunks)
        check_spans(document, chunks)
        covered = "".join(c.text for c in chunks)
        assert covered.count("x") >= 5000
    chunks = chunk_document(document, word_tokens, chunk_tokens=50, overlap_tokens=0)
    prose_chunks = [c for c in chunks if c.char_end <= text.index(long_line)]
    # Prose is cut at sentence ends: every prose chunk ends with a full stop.
    assert len(prose_chunks) > 5 and all(c.text.endswith(".") for c in prose_chunks)


def test_pdf_pages_are_recorded(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    pages = [f"Page {n} marker{n}. " + prose(120, seed=n) for n in (1, 2, 3)]
    for page in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, page)
    (tmp_path / "doc.pdf").write_bytes(bytes(pdf.output()))
    document = loaders.load(tmp_path / "doc.pdf")
    chunks = chunk_document(document, word_tokens, chunk_tokens=48, overlap_tokens=8)
    assert {c.page for c in chunks} == {1, 2, 3}
    for n in (1, 2, 3):
        marked = [c for c in chunks if f"marker{n}" in c.text]
        assert marked and all(c.page == n for c in marked)
    assert [c.page for c in chunks] == sorted(c.page for c in chunks)
    check_spans(document, chunks)


def test_rst_headings_and_literal_blocks(tmp_path: Path) -> None:
    text = ("=======\nManual\n=======\n\nIntro text.\n\nSetup\n=====\n\nExample::\n\n"
            "    $ run --flag\n\n    $ run again\n\nDetails\n-------\n\nMore text.\n\n"
            ".. code-block:: python\n\n   print('x')\n")
    document = doc_from(tmp_path, "manual.rst", text)
    chunks = chunk_document(document, word_tokens, chunk_tokens=8, overlap_tokens=0,
                            max_tokens=20)
    by_heading = {c.heading for c in chunks}
    assert by_heading == {"Manual", "Manual > Setup", "Manual > Setup > Details"}
    assert any("$ run --flag\n\n    $ run again" in c.text for c in chunks)  # literal kept
    assert any(c.text.startswith(".. code-block:: python") for c in chunks)
    check_spans(document, chunks)


def test_html_and_docx_chunks_have_headings_but_no_lines(tmp_path: Path) -> None:
    (tmp_path / "p.html").write_text(
        f"<h1>Top</h1><p>{prose(30)}</p><h2>Sub</h2><p>{prose(30)}</p>", encoding="utf-8")
    chunks = chunk_document(loaders.load(tmp_path / "p.html"), word_tokens, chunk_tokens=64,
                            overlap_tokens=0)
    assert [c.heading for c in chunks] == ["Top", "Top > Sub"]
    assert all(c.start_line is None and c.end_line is None for c in chunks)


def test_source_code_is_split_at_lines_not_sentences(tmp_path: Path) -> None:
    body = "\n".join(f"    total += item_{i}.value  # add. Then continue." for i in range(80))
    document = doc_from(tmp_path, "mod.py", f"def f():\n{body}\n    return total\n")
    chunks = chunk_document(document, word_tokens, chunk_tokens=60, overlap_tokens=10)
    lines = (tmp_path / "mod.py").read_text(encoding="utf-8").split("\n")
    for chunk in chunks:
        assert chunk.heading is None
        assert chunk.text.endswith(lines[chunk.end_line - 1].strip())  # ends at a line end


def test_deterministic_and_empty(tmp_path: Path) -> None:
    document = doc_from(tmp_path, "guide.md", GUIDE)
    first = chunk_document(document, char_tokens, chunk_tokens=80, overlap_tokens=10)
    assert first == chunk_document(document, char_tokens, chunk_tokens=80, overlap_tokens=10)
    empty = Document("/x.md", "x", "markdown", 0.0, 0, "", ())
    assert chunk_document(empty, word_tokens) == []
    assert chunk_words_baseline(empty) == []


def test_token_counter_called_about_linearly(tmp_path: Path) -> None:
    rng = random.Random(7)
    text = "\n\n".join(prose(rng.randint(5, 400), seed=i) for i in range(60)) + "\n" + "y" * 20000
    document = doc_from(tmp_path, "big.txt", text)
    counted = [0, 0]

    def counting(text: str) -> int:
        counted[0] += 1
        counted[1] += len(text)
        return char_tokens(text)

    chunks = chunk_document(document, counting, chunk_tokens=128, overlap_tokens=16)
    assert counted[1] <= 8 * len(text)  # characters tokenized: O(n), not O(n^2)
    assert counted[0] <= 20 * len(chunks) + 200


def test_parameters_are_validated() -> None:
    document = Document("/x.txt", "x", "text", 0.0, 1, "", (Section("hello world", None, 1),))
    bad = [dict(chunk_tokens=0), dict(overlap_tokens=-1), dict(chunk_tokens=10, overlap_tokens=10),
           dict(chunk_tokens=64, overlap_tokens=8, max_tokens=32)]
    for kwargs in bad:
        with pytest.raises(InvalidParameterError):
            chunk_document(document, word_tokens, **kwargs)
    with pytest.raises(InvalidParameterError, match="tokens count_tokens adds"):
        chunk_document(document, lambda s: word_tokens(s) + 10, chunk_tokens=8,
                       overlap_tokens=0, max_tokens=10)
    with pytest.raises(InvalidParameterError, match="too small"):  # 1 char = 5 tokens > 4
        chunk_document(document, lambda s: 5 * len(s), chunk_tokens=4, overlap_tokens=0)
    with pytest.raises(InvalidParameterError):
        chunk_words_baseline(document, chunk_chars=0)
    assert isinstance(InvalidParameterError("x"), ValueError)


def test_baseline_matches_gpt4all_rules(tmp_path: Path) -> None:
    text = f"# Title\n\n{prose(600)}\n\n{'z' * 1300} tail words\n"
    document = doc_from(tmp_path, "base.md", text)
    chunks = chunk_words_baseline(document)
    assert all(len(c.text) <= 512 for c in chunks)
    assert " ".join(c.text for c in chunks).replace(" ", "") == "".join(text.split())
    assert " ".join(c.text for c in chunks) == " ".join(text.split()).replace(
        "z" * 1300, " ".join(["z" * 512, "z" * 512, "z" * 276]))
    for previous, chunk in itertools.pairwise(chunks):
        assert chunk.char_start >= previous.char_end  # no overlap
    lines = text.split("\n")
    for chunk in chunks:
        first_word, last_word = chunk.text.split(" ")[0], chunk.text.split(" ")[-1]
        assert first_word in lines[chunk.start_line - 1]
        assert last_word in lines[chunk.end_line - 1]
        assert chunk.heading is None and chunk.n_tokens is None
    words = text.split()
    k = max(k for k in range(1, len(words)) if len(" ".join(words[:k])) <= 64)
    assert chunk_words_baseline(document, chunk_chars=64)[0].text == " ".join(words[:k])


@pytest.mark.parametrize("seed", range(40))
def test_random_documents_property(seed: int) -> None:
    """Random mixes of prose, headings, fences, lists, long words and blank lines."""
    rng = random.Random(seed)
    pieces = ["alpha", "beta.", "gamma!", "delta?", "\n", "\n\n", "\n# Head ", "\n## Sub ",
              "\n```\n", "\n- item ", "\n    indented", "w" * rng.randint(20, 400),
              "\u00e9t\u00e9", "\u65e5\u672c\u3002", "::\n\n   ", "\n=====\n"]
    text = "".join(rng.choice(pieces) + rng.choice([" ", " ", "\n"])
                   for _ in range(rng.randint(0, 300)))
    kind = rng.choice(["markdown", "rst", "text", "code", "pdf", "html"])
    section = Section(text, 1 if kind == "pdf" else None,
                      None if kind == "html" else rng.randint(1, 9))
    document = Document("/r", "r", kind, 0.0, 1, "", (section, Section("tail text", None, 1)))
    count_tokens = rng.choice(COUNTERS)
    chunk_tokens = rng.choice([8, 16, 64, 200])
    overlap = rng.randint(0, chunk_tokens // 3)
    max_tokens = chunk_tokens + overlap + rng.randint(0, 10)
    chunks = chunk_document(document, count_tokens, chunk_tokens=chunk_tokens,
                            overlap_tokens=overlap, max_tokens=max_tokens)
    assert all(count_tokens(c.text) <= max_tokens for c in chunks)
    check_spans(document, chunks)
    for number, sec in enumerate(document.sections):  # nothing is lost
        covered = bytearray(len(sec.text))
        for c in chunks:
            if c.section == number:
                covered[c.char_start:c.char_end] = b"\x01" * (c.char_end - c.char_start)
        assert all(covered[i] or ch.isspace() for i, ch in enumerate(sec.text))
    starts = [(c.section, c.char_start) for c in chunks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert chunks == chunk_document(document, count_tokens, chunk_tokens=chunk_tokens,
                                    overlap_tokens=overlap, max_tokens=max_tokens)
    base = chunk_words_baseline(document, chunk_chars=chunk_tokens * 4)
    assert all(len(c.text) <= chunk_tokens * 4 for c in base)
    check_words = [w for c in base for w in c.text.split(" ")]
    assert "".join(check_words) == "".join("".join(s.text.split()) for s in document.sections)


def test_version_constant() -> None:
    assert isinstance(chunking.CHUNKING_VERSION, int)
