"""Build a labelled retrieval set (BEIR format) from Debian's section-1 manual pages.

Provenance: nobody on this project wrote a word of it.

* Corpus: manual pages of section 1 installed under ``/usr/share/man/man1`` (written by the
  authors of each program, packaged by Debian), rendered to text by ``man`` (man-db, 100
  columns) and drawn in a seeded random order. A document is one page: its title is the page's
  name and section (``ls(1)``), its text the page without its NAME section (which holds the
  query), cut at ``--max-doc-chars``.
* Queries: the one-line description of the NAME section (``ls - list directory contents`` ->
  ``list directory contents``): the short descriptive phrases people type when they look
  for a command, a style the Python-docs set (docstring sentences) lacks.
* Labels: the query is answered by its own page (one relevant document per query).

Pages whose description is shared by another page (aliases), is under 3 or over 20 words,
or names the command itself are left out, as are pages that render to under 300 characters.
At most ``--per-family`` pages share a name prefix (``gcloud_*``, ``git-*``), so that one
tool suite with thousands of near-identical pages does not make up the set.
``stats.json`` reports how many of a query's content words occur in its page.

Usage::

    python bench/build_manpages_set.py            # writes bench/data/manpages/

Output: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv``, ``stats.json`` and a
``README.md`` with the packages and licences the texts come from.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "data" / "manpages"
MAN1 = Path("/usr/share/man/man1")
_NAME_LINE = re.compile(r"^(?P<names>[^\n]+?)\s+[-\u2010\u2013\u2014\\]+\s+(?P<desc>.+)$")
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("a an and are as at be by for from in into is it of on or the to with".split())


def render(page: Path) -> str:
    """The page as plain text (man-db, 100 columns, no hyphenation or justification)."""
    env = {**os.environ, "MANWIDTH": "100", "MANPAGER": "cat", "LC_ALL": "C.UTF-8", "MAN_KEEP_FORMATTING": ""}
    out = subprocess.run(["man", "--nh", "--nj", "-l", str(page)], capture_output=True, env=env,
                         timeout=30)
    return out.stdout.decode("utf-8", "replace")


def split_name(text: str) -> tuple[str, str, str] | None:
    """``(names, description, the page without its NAME section)``."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "NAME")
    except StopIteration:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i][0].isspace()),
               len(lines))
    name_text = " ".join(line.strip() for line in lines[start + 1:end] if line.strip())
    m = _NAME_LINE.match(name_text)
    if not m:
        return None
    rest = "\n".join(lines[1:start] + lines[end:])  # without the header line and NAME
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in rest.splitlines())).strip()
    return m["names"], m["desc"].strip(), body


def packages(paths: list[Path]) -> dict[str, str]:
    """Debian package of each file (``dpkg -S``)."""
    out: dict[str, str] = {}
    for i in range(0, len(paths), 200):
        r = subprocess.run(["dpkg", "-S", *map(str, paths[i:i + 200])], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            pkg, _, path = line.partition(": ")
            out[path.strip()] = pkg.split(":")[0].strip()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=500)
    ap.add_argument("--max-doc-chars", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--per-family", type=int, default=8,
                    help="pages per name prefix (gcloud_*, git-*): one tool suite must not dominate")
    args = ap.parse_args()
    candidates = sorted(p for p in MAN1.glob("*.1*") if p.is_file())
    random.Random(args.seed).shuffle(candidates)
    parsed = []
    per_family: collections.Counter[str] = collections.Counter()
    for page in candidates:
        if len(parsed) >= args.pages * 2:  # enough to drop duplicated descriptions
            break
        family = re.split(r"[_.-]", page.name)[0]  # gcloud_*, git-*, x86_64-*...
        if per_family[family] >= args.per_family:
            continue
        got = split_name(render(page))
        if got is None:
            continue
        names, desc, body = got
        words = desc.split()
        first = names.split(",")[0].strip()
        if not 3 <= len(words) <= 20 or len(body) < 300 or first.lower() in desc.lower().split():
            continue
        parsed.append((page, first, desc, body))
        per_family[family] += 1
    counts = collections.Counter(desc.lower() for _, _, desc, _ in parsed)
    chosen = [p for p in parsed if counts[p[2].lower()] == 1][: args.pages]
    owners = packages([p[0] for p in chosen])
    (OUT / "qrels").mkdir(parents=True, exist_ok=True)
    overlap = []
    with open(OUT / "corpus.jsonl", "w") as corpus, open(OUT / "queries.jsonl", "w") as queries, \
            open(OUT / "qrels" / "test.tsv", "w") as qrels:
        qrels.write("query-id\tcorpus-id\tscore\n")
        for i, (page, name, desc, body) in enumerate(chosen):
            doc_id = f"{name}.1"
            text = body[: args.max_doc_chars]
            corpus.write(json.dumps({"_id": doc_id, "title": f"{name}(1)", "text": text,
                                     "package": owners.get(str(page), "")}) + "\n")
            queries.write(json.dumps({"_id": f"q{i:04d}", "text": desc, "page": page.name}) + "\n")
            qrels.write(f"q{i:04d}\t{doc_id}\t1\n")
            qw = [w for w in _WORD.findall(desc.lower()) if w not in _STOP]
            tw = set(_WORD.findall(text.lower()))
            overlap.append(sum(w in tw for w in qw) / max(len(qw), 1))
    pkgs = sorted(set(owners.values()))
    stats = {"documents": len(chosen), "queries": len(chosen), "packages": len(pkgs),
             "corpus_chars": sum(min(len(c[3]), args.max_doc_chars) for c in chosen),
             "mean_query_words": sum(len(c[2].split()) for c in chosen) / max(len(chosen), 1),
             "mean_content_word_overlap": sum(overlap) / max(len(overlap), 1), "seed": args.seed}
    (OUT / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    (OUT / "README.md").write_text(f"""# manpages: a retrieval test set from Debian's manual pages

Generated by `bench/build_manpages_set.py` (see its docstring); do not edit by hand.
BEIR layout: `corpus.jsonl`, `queries.jsonl`, `qrels/test.tsv`; `stats.json` has the figures.

- Corpus: {stats['documents']} section-1 manual pages from {stats['packages']} Debian 12 packages
  installed on the project's machines, rendered by man-db at 100 columns, each without its
  NAME section and cut at {args.max_doc_chars} characters ({stats['corpus_chars']:,} characters in all).
- Queries: each page's NAME description ("list directory contents"), {stats['mean_query_words']:.1f} words
  on average; one relevant document per query, its own page. On average
  {100 * stats['mean_content_word_overlap']:.0f}% of a query's content words occur in its page.

The texts belong to the authors of each program. Each corpus line names its Debian package
(`package`); the package's licence is in `/usr/share/doc/<package>/copyright` (free
licences: GPL, LGPL, BSD, MIT, Apache 2.0 and the like), under which these excerpts are
redistributed for evaluation. Packages: {", ".join(pkgs)}.
""")
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
