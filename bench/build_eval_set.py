"""Build a labelled retrieval set (BEIR format) from the Python 3.11 documentation.

Provenance: nobody on this project wrote a word of it.

* Corpus: pages of the library reference of Debian's ``python3.11-doc`` package (HTML under
  ``/usr/share/doc/python3.11/html/library/``, written by the CPython developers), drawn in a
  seeded random order while the text stays under ``--max-corpus-chars`` (embedding every
  chunk of all 317 pages, 5.3 M characters, takes too long on a 2-core machine). Every
  ``<section id=...>`` of every page is one corpus document: its title is the page title and
  the headings of the enclosing sections (``"json — JSON encoder and decoder > Basic Usage"``),
  its text is the section's own content rendered as light Markdown (paragraphs, lists, API
  signatures, fenced code blocks, tables as ``|``-separated rows), without its subsections
  (they are documents of their own).
* Queries: the first sentence of the docstring of a standard-library function, class,
  method or exception (``obj.__doc__`` in the running interpreter, written by the CPython
  developers in the source code, not in the documentation), for every API entry
  (``<dt id="json.dumps">``) of the reference that resolves to such an object.
* Labels (qrels): the query of ``json.dumps`` is answered by the corpus section that holds
  the ``<dt id="json.dumps">`` entry (relevance 1; exactly one relevant document per query).

Docstrings and the reference were written separately, but often by the same people and
sometimes with the same words: the script reports how many queries occur verbatim in their
section, and how many of a query's words the section contains, so results can be read with
that in mind (``stats.json``). Queries whose first sentence is shared by several objects,
signature-only lines, inherited or generic docstrings, and sentences under 5 or over 60 words
are left out. A fixed seed samples at most ``--per-module`` queries per module, ``--queries``
in all.

Usage::

    apt-get install -y python3.11-doc
    python bench/build_eval_set.py              # writes bench/data/pydocs/

Output (BEIR layout, Thakur et al. 2021): ``corpus.jsonl`` (``_id``, ``title``, ``text``),
``queries.jsonl`` (``_id``, ``text``, plus ``entry`` and ``module`` for inspection),
``qrels/test.tsv`` (``query-id  corpus-id  score`` with a header), ``stats.json`` and a
``README.md`` (provenance, figures, the PSF copyright notice the licence asks for).
"""

from __future__ import annotations

import argparse
import collections
import importlib
import inspect
import json
import random
import re
import statistics
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator

from bs4 import BeautifulSoup, NavigableString, Tag

DOC_ROOT = Path("/usr/share/doc/python3.11/html")
OUT_DIR = Path(__file__).resolve().parent / "data" / "pydocs"
SEED = 20240811

# Modules never imported (side effects, GUI, platform-specific or test-only).
NO_IMPORT = {"antigravity", "this", "__main__", "turtle", "turtledemo", "tkinter", "idlelib",
             "test", "msilib", "winreg", "winsound", "msvcrt", "_winapi", "lib2to3", "ensurepip",
             "venv", "pydoc_data", "__future__", "builtins.__import__"}
ENTRY_KINDS = {"function", "class", "method", "exception", "classmethod", "staticmethod",
               "decorator"}
BLOCK_TAGS = {"p", "pre", "dl", "dt", "dd", "ul", "ol", "li", "table", "div", "blockquote",
              "section", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "figure", "aside"}
_WS = re.compile(r"\s+")
_SIGNATURE_LINE = re.compile(r"^[\w.]+\(.*\)\s*(->.*)?$")
_ROLE = re.compile(r":[\w:.+-]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_WORD = re.compile(r"[a-z0-9_]+")
STOPWORDS = frozenset("""a an and are as at be by for from has have if in into is it its of on or
that the their then there these this to was were will with which when not no can may return
returns""".split())


# --------------------------------------------------------------------------- corpus

def _collapse(text: str) -> str:
    return _WS.sub(" ", text).replace("\u00b6", "").strip()


def _blocks(node: Tag) -> list[str]:
    """The node's content as Markdown blocks, skipping nested sections."""
    out: list[str] = []
    inline: list[str] = []

    def flush() -> None:
        text = _collapse("".join(inline))
        if text:
            out.append(text)
        inline.clear()

    for child in node.children:
        if isinstance(child, NavigableString):
            if type(child) is NavigableString:  # not a comment / doctype
                inline.append(str(child))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name
        if name not in BLOCK_TAGS:
            inline.append(child.get_text())
            continue
        flush()
        if name == "section" or name in ("h1", "h2", "h3", "h4", "h5", "h6", "hr"):
            continue  # subsections are documents of their own; the heading is the title
        if name == "pre":
            code = child.get_text().strip("\n")
            if code.strip():
                out.append(f"```\n{code}\n```")
        elif name == "p" or name == "dt":
            text = _collapse(child.get_text())
            if text:
                out.append(text)
        elif name == "li":
            inner = _blocks(child)
            if inner:
                out.append("- " + inner[0])
                out.extend(inner[1:])
        elif name == "table":
            rows = []
            for tr in child.find_all("tr"):
                cells = [_collapse(c.get_text()) for c in tr.find_all(["th", "td"])]
                if any(cells):
                    rows.append(" | ".join(cells))
            if rows:
                out.append("\n".join(rows))
        else:
            out.extend(_blocks(child))
    flush()
    return out


def _heading(section: Tag) -> str:
    for child in section.children:
        if isinstance(child, Tag) and re.fullmatch(r"h[1-6]", child.name or ""):
            return _collapse(child.get_text())
    return ""


def parse_page(path: Path) -> Iterator[tuple[str, str, str, list[str]]]:
    """(doc id, title, text, API entry ids) for every section of a reference page."""
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "lxml")
    body = soup.find("div", class_="body")
    if body is None:
        return
    for link in body.select("a.headerlink"):
        link.decompose()
    page = path.stem
    for section in body.find_all("section"):
        headings = [_heading(s) for s in reversed(section.find_parents("section"))]
        headings.append(_heading(section))
        title = " > ".join(h for h in headings if h)
        text = "\n\n".join(_blocks(section))
        entries = []
        for dt in section.find_all("dt", id=True):
            if dt.find_parent("section") is not section:
                continue
            dl = dt.find_parent("dl")
            kinds = set(dl.get("class") or []) if dl is not None else set()
            if "py" in kinds and kinds & ENTRY_KINDS:
                entries.append(dt["id"])
        yield f"{page}#{section['id']}", title, text, entries


# --------------------------------------------------------------------------- queries

def resolve(entry: str) -> tuple[str, Any] | None:
    """(module name, object) of a documented dotted name, or None."""
    parts = entry.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        top = parts[0]
        if top not in sys.stdlib_module_names or top in NO_IMPORT or module_name in NO_IMPORT:
            break
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(module_name)
        except Exception:  # noqa: BLE001 - any import failure means "not this prefix"
            continue
        obj: Any = module
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return module_name, obj
    import builtins

    obj = builtins
    try:
        for attr in parts:
            obj = getattr(obj, attr)
    except AttributeError:
        return None
    return "builtins", obj


def own_docstring(obj: Any) -> str | None:
    """The object's own docstring (not a class's or a type's inherited one)."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
    elif inspect.isroutine(obj) or isinstance(obj, (property, classmethod, staticmethod)):
        doc = getattr(obj, "__doc__", None)
    else:
        return None
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else None


def first_sentence(doc: str) -> str | None:
    """The first sentence of a docstring, reST roles and literals reduced to plain text."""
    lines = doc.splitlines()
    while lines and (not lines[0].strip() or _SIGNATURE_LINE.match(lines[0].strip())
                     or lines[0].strip() == "--"):
        lines.pop(0)
    para = []
    for line in lines:
        if not line.strip():
            break
        para.append(line.strip())
    text = " ".join(para)
    text = _ROLE.sub(r"\1", text).replace("``", "").replace("`", "")
    match = re.search(r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)[.!?](\s|$)", text)
    if match:
        text = text[:match.end()].strip()
    text = _collapse(text)
    n_words = len(text.split())
    return text if 5 <= n_words <= 60 else None


def _norm(text: str) -> str:
    return _collapse(text.lower()).rstrip(".")


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1}


README = """# pydocs: a retrieval test set from the Python 3.11 documentation

Generated by `bench/build_eval_set.py` (see its docstring); do not edit by hand.
BEIR layout: `corpus.jsonl`, `queries.jsonl`, `qrels/test.tsv`; `stats.json` has the figures.

- Corpus: {docs} sections of {pages} of the {all_pages} pages of the library reference in
  Debian's `python3.11-doc` (3.11.2), {chars:.2f} M characters; one document per
  `<section>`, its own text without subsections, titled by the page and section headings.
- Queries: {queries} first sentences of standard-library docstrings (Python {python}, from
  {modules} modules), each labelled with the section that documents the same object
  (`<dt id="module.name">`); one relevant document per query.
- Overlap: {verbatim} queries occur verbatim in their section; on average {recall:.0%} of a
  query's content words occur in it; {named} queries contain the object's own name.

The texts are the Python documentation and docstrings:
Copyright © 2001-2023 Python Software Foundation. All rights reserved.
Licensed under the PSF License Agreement (see /usr/share/doc/python3.11-doc/copyright,
https://docs.python.org/3/license.html).
"""


# --------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--doc-root", type=Path, default=DOC_ROOT)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--per-module", type=int, default=6)
    parser.add_argument("--max-corpus-chars", type=int, default=1_500_000,
                        help="pages are drawn in a seeded random order while the corpus text "
                             "stays under this many characters (embedding cost)")
    parser.add_argument("--min-chars", type=int, default=40,
                        help="sections with less text than this are left out of the corpus")
    args = parser.parse_args()
    library = args.doc_root / "library"
    if not library.is_dir():
        sys.exit(f"{library} not found: apt-get install -y python3.11-doc")

    corpus: dict[str, dict[str, str]] = {}
    entry_doc: dict[str, str] = {}
    all_pages = sorted(library.glob("*.html"))
    order = list(all_pages)
    random.Random(SEED).shuffle(order)
    pages, n_chars = [], 0
    for page in order:
        sections = [s for s in parse_page(page) if len(s[2]) >= args.min_chars]
        size = sum(len(text) for _, _, text, _ in sections)
        if not sections or n_chars + size > args.max_corpus_chars:
            continue
        pages.append(page)
        n_chars += size
        for doc_id, title, text, entries in sections:
            corpus[doc_id] = {"_id": doc_id, "title": title, "text": text}
            for entry in entries:
                entry_doc.setdefault(entry, doc_id)
    pages.sort()
    corpus = dict(sorted(corpus.items()))

    candidates: list[dict[str, str]] = []
    rejected: collections.Counter[str] = collections.Counter()
    for entry, doc_id in sorted(entry_doc.items()):
        found = resolve(entry)
        if found is None:
            rejected["does not resolve"] += 1
            continue
        module_name, obj = found
        doc = own_docstring(obj)
        if doc is None:
            rejected["no own docstring"] += 1
            continue
        sentence = first_sentence(doc)
        if sentence is None:
            rejected["first sentence under 5 or over 60 words"] += 1
            continue
        candidates.append({"entry": entry, "module": module_name, "text": sentence,
                           "doc": doc_id})
    by_text = collections.Counter(_norm(c["text"]) for c in candidates)
    unique = [c for c in candidates if by_text[_norm(c["text"])] == 1]
    rejected["first sentence shared with another object"] += len(candidates) - len(unique)

    rng = random.Random(SEED)
    rng.shuffle(unique)
    per_module: collections.Counter[str] = collections.Counter()
    chosen = []
    for c in unique:
        if per_module[c["module"]] >= args.per_module:
            continue
        per_module[c["module"]] += 1
        chosen.append(c)
        if len(chosen) == args.queries:
            break
    chosen.sort(key=lambda c: c["entry"])

    verbatim = contains_name = 0
    word_recall = []
    for c in chosen:
        doc = corpus[c["doc"]]
        haystack = _norm(doc["title"] + " " + doc["text"])
        verbatim += _norm(c["text"]) in haystack
        words = _content_words(c["text"])
        word_recall.append(len(words & _content_words(haystack)) / max(len(words), 1))
        contains_name += c["entry"].rsplit(".", 1)[-1].lower() in c["text"].lower()

    out = args.out
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as f:
        for doc in corpus.values():
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    with open(out / "queries.jsonl", "w", encoding="utf-8") as f:
        for i, c in enumerate(chosen):
            f.write(json.dumps({"_id": f"q{i:04d}", "text": c["text"], "entry": c["entry"],
                                "module": c["module"]}, ensure_ascii=False) + "\n")
    with open(out / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for i, c in enumerate(chosen):
            f.write(f"q{i:04d}\t{c['doc']}\t1\n")

    sizes = [len(d["text"]) for d in corpus.values()]
    stats = {
        "source": f"{library} (Debian python3.11-doc); "
                  f"docstrings of Python {sys.version.split()[0]}",
        "pages": len(pages),
        "pages_available": len(all_pages),
        "corpus_documents": len(corpus),
        "corpus_chars": sum(sizes),
        "document_chars_median": statistics.median(sizes),
        "document_chars_p90": sorted(sizes)[int(0.9 * len(sizes))],
        "document_chars_max": max(sizes),
        "api_entries_in_corpus": len(entry_doc),
        "candidate_queries": len(unique),
        "rejected": dict(rejected),
        "queries": len(chosen),
        "modules": len(per_module),
        "relevant_documents": len({c["doc"] for c in chosen}),
        "query_words_median": statistics.median(len(c["text"].split()) for c in chosen),
        "verbatim_in_relevant_section": verbatim,
        "query_content_words_in_relevant_section_mean": round(statistics.mean(word_recall), 3),
        "query_content_words_all_in_relevant_section": sum(r == 1.0 for r in word_recall),
        "query_contains_entry_name": contains_name,
        "page_names": [p.stem for p in pages],
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(README.format(
        docs=len(corpus), pages=len(pages), all_pages=len(all_pages), chars=sum(sizes) / 1e6,
        queries=len(chosen), modules=len(per_module), python=sys.version.split()[0],
        verbatim=verbatim, recall=stats["query_content_words_in_relevant_section_mean"],
        named=contains_name), encoding="utf-8")
    print(json.dumps({k: v for k, v in stats.items() if k != "page_names"}, indent=2))


if __name__ == "__main__":
    main()
