"""LocalDocs loaders on real files made in tmp_path: every format, every skip reason.

PDFs are written with fpdf2 (a test dependency) and read back with pypdf; DOCX files with
python-docx. Tests run as root, so an unreadable file is simulated by making ``os.open``
refuse one path (root ignores permission bits).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
from pathlib import Path

import pytest

from gpt4all_rag.errors import DocumentLoadError
from gpt4all_rag.localdocs import loaders
from gpt4all_rag.localdocs.loaders import Document, FileInfo, Skipped

MARKDOWN = """\
# Project Title

Intro paragraph.

## Install

```bash
pip install project
```
"""


def make_pdf(path: Path, pages: list[str], title: str | None = "PDF Title") -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 8, text)
    path.write_bytes(bytes(pdf.output()))
    return path


def make_docx(path: Path, *, core_title: str = "") -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = core_title
    document.add_heading("Report", level=0)
    document.add_heading("Results", level=1)
    document.add_paragraph("The results were good. Very good.")
    document.add_paragraph("first item", style="List Bullet")
    document.add_paragraph("second item", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for (r, c), value in {(0, 0): "name", (0, 1): "value", (1, 0): "x", (1, 1): "42"}.items():
        table.cell(r, c).text = value
    document.add_heading("Details", level=2)
    document.add_paragraph("Closing words.")
    document.save(str(path))
    return path


def items(paths: object, **kwargs: object) -> list[FileInfo | Skipped]:
    return list(loaders.iter_files(paths, **kwargs))  # type: ignore[arg-type]


def skipped(results: list, path: Path) -> str:
    """The reason given for ``path``; fails if it was not skipped."""
    reasons = [r.reason for r in results if isinstance(r, Skipped) and r.path == str(path)]
    assert reasons, f"{path} not skipped in {results}"
    return reasons[0]


# --------------------------------------------------------------------------- formats


def test_markdown_document_fields(tmp_path: Path) -> None:
    path = tmp_path / "readme.md"
    path.write_text(MARKDOWN, encoding="utf-8")
    doc = loaders.load(path)
    st = os.stat(path)
    assert doc.path == str(path) and os.path.isabs(doc.path)
    assert doc.title == "Project Title"
    assert doc.kind == "markdown"
    assert doc.encoding == "utf-8"
    assert doc.size_bytes == st.st_size
    assert doc.mtime == st.st_mtime
    assert doc.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert doc.content_hash == loaders.hash_file(path)
    assert loaders.file_stat(path) == (st.st_size, st.st_mtime)
    assert len(doc.sections) == 1
    assert doc.sections[0].text == MARKDOWN and doc.sections[0].start_line == 1
    assert doc.sections[0].page is None


def test_relative_path_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert loaders.load("a.txt").path == str(tmp_path / "a.txt")
    assert [i.path for i in items(".")] == [str(tmp_path / "a.txt")]


def test_text_rst_and_code_kinds_and_titles(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("just notes\n", encoding="utf-8")
    (tmp_path / "guide.rst").write_text("=====\nGuide\n=====\n\nBody text.\n", encoding="utf-8")
    (tmp_path / "tool.py").write_text("# comment, not a title\nprint('hi')\n", encoding="utf-8")
    (tmp_path / "plain.rst").write_text("Usage\n-----\n\nRun it.\n", encoding="utf-8")
    docs = {Path(d.path).name: d for d in loaders.scan(tmp_path)}
    assert docs["notes.txt"].kind == "text" and docs["notes.txt"].title == "notes.txt"
    assert docs["guide.rst"].kind == "rst" and docs["guide.rst"].title == "Guide"
    assert docs["plain.rst"].title == "Usage"
    assert docs["tool.py"].kind == "code" and docs["tool.py"].title == "tool.py"


def test_crlf_and_cr_newlines_are_normalised(tmp_path: Path) -> None:
    path = tmp_path / "dos.txt"
    path.write_bytes(b"line one\r\nline two\r\nline three\rline four\r\n")
    doc = loaders.load(path)
    assert doc.sections[0].text == "line one\nline two\nline three\nline four\n"
    assert doc.size_bytes == len(path.read_bytes())


def test_html_visible_text_title_headings_and_code(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<!DOCTYPE html><html><head><title> The  Page </title><style>p {color: red}</style>"
        "<script>var secret = 1;</script></head><body><!-- a comment -->"
        "<h1>Welcome</h1><p>First <b>bold</b>   paragraph.</p>"
        "<h2>Code</h2><pre>def f():\n    return 1</pre>"
        "<ul><li>one</li><li>two</li></ul><p>line<br>break</p>"
        "<div hidden>invisible</div><noscript>no js</noscript>"
        "<table><tr><td>a</td><td>b</td></tr></table></body></html>",
        encoding="utf-8")
    doc = loaders.load(path)
    text = doc.text
    assert doc.kind == "html" and doc.title == "The Page"
    assert doc.sections[0].start_line is None
    for absent in ("secret", "color", "a comment", "invisible", "no js", "The  Page"):
        assert absent not in text
    assert text.startswith("# Welcome\n\nFirst bold paragraph.\n\n## Code\n\n")
    assert "```\ndef f():\n    return 1\n```" in text
    assert "- one\n\n- two" in text
    assert "line\nbreak" in text
    assert "a | b" in text


def test_html_without_title_uses_first_h1_and_meta_charset(tmp_path: Path) -> None:
    path = tmp_path / "latin.htm"
    path.write_bytes('<html><head><meta charset="windows-1252"></head><body><h1>Caf\xe9</h1>'
                     '<p>Cr\xe8me br\xfbl\xe9e</p></body></html>'.encode("cp1252"))
    doc = loaders.load(path)
    assert doc.title == "Café"
    assert "Crème brûlée" in doc.text


def test_docx_headings_lists_tables_and_title(tmp_path: Path) -> None:
    doc = loaders.load(make_docx(tmp_path / "report.docx"))
    assert doc.kind == "docx" and doc.title == "Report"  # first heading (Title style)
    assert doc.encoding is None and doc.sections[0].start_line is None
    assert doc.text == ("# Report\n\n# Results\n\nThe results were good. Very good.\n\n"
                        "- first item\n- second item\n\nname | value\nx | 42\n\n"
                        "## Details\n\nClosing words.")
    titled = loaders.load(make_docx(tmp_path / "titled.docx", core_title="Core Title"))
    assert titled.title == "Core Title"


def test_pdf_pages_text_and_title(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "book.pdf",
                    ["First page text.", "", "Third page says hello.\nSecond line."])
    doc = loaders.load(path)
    assert doc.kind == "pdf" and doc.title == "PDF Title"
    assert [s.page for s in doc.sections] == [1, 3]  # the blank page has no section
    assert all(s.start_line == 1 for s in doc.sections)
    assert "First page text." in doc.sections[0].text
    assert "Third page says hello." in doc.sections[1].text
    untitled = loaders.load(make_pdf(tmp_path / "untitled.pdf", ["x y z"], title=None))
    assert untitled.title == "untitled.pdf"


# --------------------------------------------------------------------------- encodings


def test_cp1252_and_latin1_are_detected(tmp_path: Path) -> None:
    text = "Le café était très agréable. Grüße aus Köln — «bonjour» à l'hôtel, 5 €.\n"
    (tmp_path / "cp1252.txt").write_bytes(text.encode("cp1252"))
    latin = "Ça coûte cher, señor. Æble og ø.\n"
    (tmp_path / "latin1.txt").write_bytes(latin.encode("latin-1"))
    (tmp_path / "short.txt").write_bytes("café\n".encode("latin-1"))
    assert loaders.load(tmp_path / "cp1252.txt").text == text
    assert loaders.load(tmp_path / "cp1252.txt").encoding == "cp1252"
    assert loaders.load(tmp_path / "latin1.txt").text == latin
    assert loaders.load(tmp_path / "short.txt").text == "café\n"


def test_other_legacy_encodings_are_not_forced_to_cp1252(tmp_path: Path) -> None:
    russian = "Привет, мир! Съешь же ещё этих мягких французских булок.\n"
    japanese = "日本語のテキストです。文字コードの検出。\n"
    (tmp_path / "ru.txt").write_bytes(russian.encode("cp1251"))
    (tmp_path / "jp.txt").write_bytes(japanese.encode("shift_jis"))
    assert loaders.load(tmp_path / "ru.txt").text == russian
    assert loaders.load(tmp_path / "jp.txt").text == japanese


@pytest.mark.parametrize("codec, bom", [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"),
                                        ("utf-8", b"\xef\xbb\xbf"),
                                        ("utf-32-le", b"\xff\xfe\x00\x00")])
def test_byte_order_marks(tmp_path: Path, codec: str, bom: bytes) -> None:
    text = "# Überschrift\n\nZeile mit Ümlauten und 日本.\n"
    path = tmp_path / "bom.md"
    path.write_bytes(bom + text.encode(codec))
    doc = loaders.load(path)
    assert doc.text == text and doc.encoding == codec and doc.title == "Überschrift"


# --------------------------------------------------------------------------- skip reasons


def test_binary_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "image.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(DocumentLoadError) as info:
        loaders.load(path)
    assert str(info.value) == f"Cannot load {str(path)!r}: binary file (contains NUL bytes)"
    assert isinstance(info.value, ValueError)
    assert loaders.try_load(path) == Skipped(str(path), "binary file (contains NUL bytes)")


def test_control_characters_mean_binary(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(b"text\x01\x02\x03\x04\x05\x06 more\x1a\x1c\x1d" * 10)
    assert loaders.try_load(path) == Skipped(str(path), "binary file (control characters)")


def test_binary_bytes_named_html_are_refused(tmp_path: Path) -> None:
    import random

    path = tmp_path / "page.html"
    path.write_bytes(random.Random(0).randbytes(20000).replace(b"\x00", b""))
    assert loaders.try_load(path) == Skipped(str(path), "binary file (control characters)")


def test_a_docx_zip_bomb_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    import zipfile

    from gpt4all_rag.localdocs.readers import MAX_DOCX_UNPACKED_BYTES

    path = tmp_path / "bomb.docx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            block = b" " * 2**20
            for _ in range(MAX_DOCX_UNPACKED_BYTES // len(block) + 1):
                member.write(block)
    assert path.stat().st_size < 2**20  # under a MiB on disk
    reason = loaders.try_load(path).reason
    assert reason.startswith("DOCX too large unpacked") and "zip bomb" in reason


def test_a_file_name_that_is_not_utf8_is_skipped(tmp_path: Path) -> None:
    with open(os.path.join(os.fsencode(tmp_path), b"caf\xe9.txt"), "wb") as f:
        f.write(b"Latin-1 named\n")
    (tmp_path / "good.txt").write_text("UTF-8 named\n", encoding="utf-8")
    results = items(tmp_path)
    assert [r.path for r in results if isinstance(r, FileInfo)] == [str(tmp_path / "good.txt")]
    (bad,) = [r for r in results if isinstance(r, Skipped)]
    assert bad.reason == "the file name is not valid UTF-8 (rename it to index it)"


def test_empty_and_blank_files(tmp_path: Path) -> None:
    (tmp_path / "empty.md").write_bytes(b"")
    (tmp_path / "blank.md").write_text("  \n\n\t\n", encoding="utf-8")
    results = items(tmp_path)
    assert skipped(results, tmp_path / "empty.md") == "empty file"
    with pytest.raises(DocumentLoadError, match=r"empty file$"):
        loaders.load(tmp_path / "empty.md")
    assert loaders.try_load(tmp_path / "blank.md").reason == "no text content"


def test_missing_path_broken_symlink_and_fifo(tmp_path: Path) -> None:
    (tmp_path / "broken.md").symlink_to(tmp_path / "nowhere.md")
    (tmp_path / "broken.png").symlink_to(tmp_path / "nowhere.png")  # not wanted: not reported
    (tmp_path / "broken_dir").symlink_to(tmp_path / "nowhere", target_is_directory=True)
    os.mkfifo(tmp_path / "pipe.txt")
    os.mkfifo(tmp_path / "pipe.bin")  # not wanted: not reported
    results = items([tmp_path, tmp_path / "missing"])
    assert [Path(r.path).name for r in results] == ["broken.md", "broken_dir", "pipe.txt",
                                                    "missing"]
    assert skipped(results, tmp_path / "broken_dir") == "broken symbolic link"
    assert skipped(results, tmp_path / "broken.md") == "broken symbolic link"
    assert skipped(results, tmp_path / "pipe.txt") == "not a regular file (FIFO)"
    assert skipped(results, tmp_path / "missing") == "no such file or directory"
    # load() must not block on the FIFO
    assert loaders.try_load(tmp_path / "pipe.txt").reason == "not a regular file (FIFO)"
    assert loaders.try_load(tmp_path / "broken.md").reason == "broken symbolic link"
    assert loaders.try_load(tmp_path).reason == "is a folder, not a file"
    with pytest.raises(DocumentLoadError, match="no such file or directory"):
        loaders.file_stat(tmp_path / "missing")
    with pytest.raises(DocumentLoadError, match="no such file or directory"):
        loaders.hash_file(tmp_path / "missing")


def test_unreadable_file_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("# hidden\n", encoding="utf-8")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "inside.md").write_text("x", encoding="utf-8")
    real_open, real_scandir = os.open, os.scandir

    def refusing_open(path: object, *args: object, **kwargs: object) -> int:
        if os.fspath(path) == str(secret):  # type: ignore[arg-type]
            raise PermissionError(errno.EACCES, "Permission denied", str(secret))
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    def refusing_scandir(path: object) -> object:
        if os.fspath(path) == str(locked):  # type: ignore[arg-type]
            raise PermissionError(errno.EACCES, "Permission denied", str(locked))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refusing_open)
    monkeypatch.setattr(os, "scandir", refusing_scandir)
    results = list(loaders.scan(tmp_path))
    assert skipped(results, secret) == "permission denied"
    assert skipped(results, locked) == "permission denied"
    with pytest.raises(DocumentLoadError, match="permission denied"):
        loaders.load(secret)


def test_corrupt_pdf_and_docx(tmp_path: Path) -> None:
    good = make_pdf(tmp_path / "good.pdf", ["Some text on a page."]).read_bytes()
    (tmp_path / "truncated.pdf").write_bytes(good[: len(good) // 2])
    (tmp_path / "garbage.pdf").write_bytes(b"%PDF-1.4\nthis is not a pdf at all\n")
    (tmp_path / "fake.docx").write_bytes(b"PK\x03\x04 not really a zip archive")
    (tmp_path / "text.docx").write_text("plain text, not a zip", encoding="utf-8")
    results = {Path(r.path).name: r for r in loaders.scan(tmp_path)}
    assert isinstance(results["good.pdf"], Document)
    for name in ("truncated.pdf", "garbage.pdf"):
        assert results[name].reason.startswith("corrupt PDF ("), results[name]
    for name in ("fake.docx", "text.docx"):
        assert results[name].reason.startswith("corrupt DOCX ("), results[name]


def test_encrypted_and_textless_pdf(tmp_path: Path) -> None:
    import pypdf

    source = make_pdf(tmp_path / "plain.pdf", ["secret words"]).read_bytes()
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(source))
    writer.encrypt("password", algorithm="RC4-128")
    writer.write(str(tmp_path / "locked.pdf"))
    make_pdf(tmp_path / "scan.pdf", [""])
    locked = loaders.try_load(tmp_path / "locked.pdf")
    assert locked.reason == "encrypted PDF (a password is needed)"
    assert (loaders.try_load(tmp_path / "scan.pdf").reason
            == "no extractable text (scanned images? OCR is not supported)")


def test_huge_file(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("word " * 40, encoding="utf-8")  # 200 bytes
    results = items(tmp_path, max_file_bytes=100)
    assert skipped(results, path) == "file too large (200 bytes > limit 100 bytes)"
    with pytest.raises(DocumentLoadError, match=r"file too large \(200 bytes > limit 100 bytes\)"):
        loaders.load(path, max_file_bytes=100)
    assert isinstance(loaders.load(path, max_file_bytes=200), Document)


def test_symlink_loops(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.md").write_text("# A\n", encoding="utf-8")
    (root / "sub" / "up").symlink_to(root, target_is_directory=True)  # directory loop
    (root / "x.md").symlink_to(root / "y.md")  # file loop
    (root / "y.md").symlink_to(root / "x.md")
    results = list(loaders.scan(root))
    assert (skipped(results, root / "sub" / "up")
            == "symbolic link loop (points to an enclosing folder)")
    assert skipped(results, root / "x.md") == "symbolic link loop"
    assert skipped(results, root / "y.md") == "symbolic link loop"
    assert [Path(r.path).name for r in results if isinstance(r, Document)] == ["a.md"]
    assert loaders.try_load(root / "x.md").reason == "symbolic link loop"


def test_symlinks_followed_deduplicated_or_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "doc.md").write_text("# Doc\n", encoding="utf-8")
    (tmp_path / "alias.md").symlink_to(tmp_path / "real" / "doc.md")
    (tmp_path / "zlink").symlink_to(tmp_path / "real", target_is_directory=True)
    results = items(tmp_path)
    alias, real = str(tmp_path / "alias.md"), str(tmp_path / "real")
    assert [r.path for r in results if isinstance(r, FileInfo)] == [alias]
    assert skipped(results, tmp_path / "real" / "doc.md") == f"same file as {alias!r}"
    assert skipped(results, tmp_path / "zlink") == f"folder already scanned as {real!r}"
    unfollowed = items(tmp_path, follow_symlinks=False)
    assert [r.path for r in unfollowed if isinstance(r, FileInfo)] == [real + "/doc.md"]
    assert skipped(unfollowed, tmp_path / "alias.md") == "symbolic link (not followed)"
    assert skipped(unfollowed, tmp_path / "zlink") == "symbolic link (not followed)"


# --------------------------------------------------------------------------- walking


def test_walk_is_sorted_filters_extensions_and_hidden(tmp_path: Path) -> None:
    for rel in ("b.md", "a.txt", "c.png", "sub/z.rst", "sub/deeper/y.py", ".git/config.md",
                ".hidden.md", "node_modules/pkg/readme.md", "__pycache__/x.py", "A.MD"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("content\n", encoding="utf-8")
    (tmp_path / "README").write_text("no extension: read as text\n", encoding="utf-8")
    walked = items(tmp_path)
    # a file of another type is reported, not silently left out (hidden ones are not walked)
    assert skipped(walked, tmp_path / "c.png") == "file type .png is not among the extensions to index"
    found = [r for r in walked if not isinstance(r, Skipped)]
    assert all(isinstance(r, FileInfo) for r in found) and len(found) == len(walked) - 1
    assert [os.path.relpath(r.path, tmp_path) for r in found] == [
        "A.MD", "README", "a.txt", "b.md", "sub/deeper/y.py", "sub/z.rst"]
    assert walked == items(tmp_path)  # deterministic
    first = found[0]
    assert (first.size_bytes, first.mtime) == loaders.file_stat(first.path)
    only_md = [r for r in items(tmp_path, extensions=["MD", ".rst"]) if isinstance(r, FileInfo)]
    assert [Path(r.path).name for r in only_md] == ["A.MD", "b.md", "z.rst"]
    explicit = items([tmp_path / "c.png", tmp_path / "b.md"])
    assert (skipped(explicit, tmp_path / "c.png")
            == "file type .png is not among the extensions to index")
    assert explicit[1] == FileInfo(str(tmp_path / "b.md"), 8, os.stat(tmp_path / "b.md").st_mtime)


def test_iter_files_reads_no_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.md").write_text("# A\n", encoding="utf-8")

    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("iter_files opened a file")

    monkeypatch.setattr(os, "open", no_open)
    monkeypatch.setattr("builtins.open", no_open)
    assert [Path(r.path).name for r in items(tmp_path)] == ["a.md"]


def test_scan_mixed_folder_never_raises(tmp_path: Path) -> None:
    (tmp_path / "ok.md").write_text(MARKDOWN, encoding="utf-8")
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.7 nonsense")
    (tmp_path / "dangling.md").symlink_to(tmp_path / "gone")
    make_docx(tmp_path / "report.docx")
    results = list(loaders.scan(tmp_path))
    assert [Path(r.path).name for r in results] == [
        "bad.pdf", "bin.txt", "dangling.md", "empty.txt", "ok.md", "report.docx"]
    assert [type(r).__name__ for r in results] == [
        "Skipped", "Skipped", "Skipped", "Skipped", "Document", "Document"]


def test_kind_of() -> None:
    assert loaders.kind_of("a/B.MARKDOWN") == "markdown"
    assert loaders.kind_of("x.tsx") == "code"
    assert loaders.kind_of("x.log") == "text"
    assert loaders.kind_of("x.HTM") == "html"
    assert ".pdf" in loaders.DEFAULT_EXTENSIONS and ".docx" in loaders.DEFAULT_EXTENSIONS


def test_decode_text_raises_documented_error() -> None:
    assert loaders.decode_text(b"plain") == ("plain", "utf-8")
    with pytest.raises(DocumentLoadError, match="binary file"):
        loaders.decode_text(b"a\x00b")


def test_pdf_page_that_cannot_be_read_is_reported(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import pypdf

    path = make_pdf(tmp_path / "partly.pdf", ["good first page", "broken page", "good third"])
    real_extract = pypdf.PageObject.extract_text

    def extract(page: pypdf.PageObject, *args: object, **kwargs: object) -> str:
        text = real_extract(page, *args, **kwargs)
        if "broken" in text:
            raise KeyError("/Contents")
        return text

    monkeypatch.setattr(pypdf.PageObject, "extract_text", extract)
    doc = loaders.load(path)
    assert [s.page for s in doc.sections] == [1, 3]
    assert doc.warnings == ("page 2 skipped (KeyError: '/Contents')",)
    assert loaders.load(make_pdf(tmp_path / "fine.pdf", ["ok"])).warnings == ()
    only_broken = make_pdf(tmp_path / "broken.pdf", ["broken"])
    assert (loaders.try_load(only_broken).reason
            == "corrupt PDF (no page can be read; KeyError: '/Contents')")
