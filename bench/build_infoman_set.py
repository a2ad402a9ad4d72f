"""Build a labelled retrieval set (BEIR format) from the GNU Texinfo manuals installed here.

Provenance: nobody on this project wrote a word of it.

* Corpus: the nodes (sections) of the Info manuals under ``/usr/share/info`` (coreutils,
  find, grep, sed, gettext, GnuPG, wget, diffutils, ...; written by each project's authors,
  packaged by Debian 12), drawn in a seeded random order with at most ``--per-manual`` nodes
  per manual. A document is one node: its title is ``manual: node name`` (``grep: Usage``),
  its text the node's text as ``makeinfo`` wrote it (menus included, the ``File: ... Node:``
  navigation line left out), cut at ``--max-doc-chars`` at a line end. Index nodes, the
  licence texts (GNU FDL, GPL) and the Python manual (the ``pydocs`` set's corpus) are left
  out.
* Queries: the manuals' own index entries (``@cindex``, ``@opindex``, ``@findex``...): the
  terms a reader looks up in a manual's index, a style neither the docstring sentences of
  ``pydocs`` nor the NAME phrases of ``manpages`` have. Two styles, told apart by shape:
  ``phrase`` (several words: "counting lines", "files, deleting") and ``term`` (one word or
  symbol: ``--color``, ``LC_ALL``, ``tac``).
* Labels: the node(s) the entry points to (an entry listed several times, ``<1>``, ``<2>``,
  has them all); every one of them is in the corpus, and the entry's line lies within the
  part of the node that was kept.

Entries shared by several manuals (``--help``), pointing to more than three nodes, under 2
or over 60 characters are left out; at most ``--per-node`` queries share a node, so that one
long option table does not make up a style. ``stats.json`` reports counts and how often a
query occurs verbatim in its node.

Usage::

    python bench/build_infoman_set.py            # writes bench/data/infoman/

Output: ``corpus.jsonl``, ``queries.jsonl`` (with ``style``), ``qrels/test.tsv``,
``stats.json`` and a ``README.md`` with the manuals, packages and licences.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import random
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "data" / "infoman"
INFO = Path("/usr/share/info")
SKIP_MANUALS = {"python3.11"}  # the pydocs set's corpus
_HEADER = re.compile(r"^File: (?P<file>[^,]+),\s+Node: (?P<node>[^,\t]+?)(?:,|$)")
_ENTRY = re.compile(r"^\* (?P<entry>.+?):\s+(?P<node>[^\t]+?)\.\s*(?:\(line\s+(?P<line>\d+)\))?\s*$")
_INDEX_MARK = "\x00\x08[index\x00\x08]"
_LICENCE_NODE = re.compile(r"(free documentation license|general public license|copying|"
                           r"gnu gpl|gnu fdl|licen[cs]e)", re.I)
_WORD = re.compile(r"[a-z0-9]+")
_MARKER = re.compile(r"\x00\x08\[[^\x00]*\x00\x08\]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass
class Node:
    manual: str
    name: str
    lines: list[str]
    is_index: bool = False
    entries: list[tuple[str, str, int]] = field(default_factory=list)  # (entry, node, line)


def manual_files() -> dict[str, list[Path]]:
    """``{manual: [its .info parts in order]}`` (an indirect manual's parts ``-1``, ``-2``...)."""
    out: dict[str, list[Path]] = collections.defaultdict(list)
    for path in sorted(INFO.glob("*.info*.gz")):
        m = re.match(r"(?P<name>.+?)\.info(?:-(?P<part>\d+))?\.gz$", path.name)
        if m and m["name"] not in SKIP_MANUALS:
            out[m["name"]].append(path)
    for name, parts in out.items():
        parts.sort(key=lambda p: int(re.search(r"-(\d+)\.gz$", p.name).group(1))  # type: ignore[union-attr]
                   if re.search(r"-\d+\.gz$", p.name) else 0)
    return dict(out)


def parse_manual(manual: str, parts: list[Path]) -> tuple[list[Node], str]:
    """The manual's nodes and its preamble (the text before the first node: the licence)."""
    nodes: list[Node] = []
    preamble = ""
    for part in parts:
        text = gzip.decompress(part.read_bytes()).decode("utf-8", "replace")
        blocks = text.split("\x1f")
        if not preamble:
            preamble = blocks[0]
        for block in blocks[1:]:
            lines = block.strip("\n").split("\n")
            m = _HEADER.match(lines[0]) if lines else None
            if not m:
                continue  # the tag table, the indirect table, the local variables
            node = Node(manual, m["node"].strip(), lines)
            node.is_index = any(_INDEX_MARK in line for line in lines)
            if node.is_index:
                node.entries = index_entries(lines)
            nodes.append(node)
    return nodes, preamble


def index_entries(lines: list[str]) -> list[tuple[str, str, int]]:
    """``(entry, node, line)`` of an index node's menu; a wrapped ``(line N)`` is joined."""
    out = []
    joined: list[str] = []
    for line in lines:
        if line.startswith("* ") or not joined:
            joined.append(line)
        elif line.strip().startswith("(line"):
            joined[-1] += " " + line.strip()
        else:
            joined.append(line)
    for line in joined:
        m = _ENTRY.match(line.replace("\x00\x08", ""))
        if m and line.strip() != "* Menu:":
            entry = re.sub(r"\s*<\d+>$", "", m["entry"].strip())
            out.append((entry, m["node"].strip(), int(m["line"] or 1)))
    return out


def packages(paths: list[Path]) -> dict[str, str]:
    """Debian package of each file (``dpkg -S``)."""
    out: dict[str, str] = {}
    r = subprocess.run(["dpkg", "-S", *map(str, paths)], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        pkg, _, path = line.partition(": ")
        out[path.strip()] = pkg.split(":")[0].strip()
    return out


#: Manuals whose Info file states no licence: the Debian copyright file's statement for it.
_LICENCE_FROM_COPYRIGHT = {"bc": "GNU GPL 2 or later (Debian copyright file: GPL-2.0+)",
                           "bzip2": "bzip2's BSD-style licence (Debian copyright file: BSD-variant)"}


def licence(manual: str, preamble: str) -> str:
    """The manual's licence as its own preamble states it, else as Debian records it."""
    flat = " ".join(preamble.split())
    later = r"(?:or any later|or \(at your option\) any later)"
    fdl = re.search(r"Free Documentation License[^.;]*?version (\d\.\d)", flat, re.I)
    gpl = re.search(r"General Public License[^.]*?version (\d)", flat, re.I)
    if fdl and gpl and re.search(r"dually licensed", flat):
        return f"GNU FDL {fdl[1]} or later, or GNU GPL {gpl[1]} or later (dual)"
    if fdl:
        return f"GNU FDL {fdl[1]}" + (" or later" if re.search(later, flat) else "")
    if gpl:
        return f"GNU GPL {gpl[1]}" + (" or later" if re.search(later, flat) else "")
    if re.search(r"placed in the public domain", flat):
        return "public domain (the manual's own statement)"
    if re.search(r"Permission is hereby granted, free of charge", flat):
        return "MIT (Expat)"
    return _LICENCE_FROM_COPYRIGHT.get(manual, "see the Debian package's copyright file")


def node_text(node: Node, max_chars: int) -> tuple[str, int]:
    """The node's text without its navigation line, cut at ``max_chars`` at a line end, and the
    number of the node's lines kept (the header is line 1, as index entries count)."""
    kept, size = [], 0
    for line in node.lines[1:]:
        if size + len(line) + 1 > max_chars and kept:
            break
        kept.append(line.rstrip())
        size += len(line) + 1
    text = _MARKER.sub("", "\n".join(kept))  # makeinfo's image and index markers
    text = re.sub(r"\n{3,}", "\n\n", _CONTROL.sub("", text)).strip()
    return text, len(kept) + 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=600)
    ap.add_argument("--per-manual", type=int, default=90)
    ap.add_argument("--per-node", type=int, default=3)
    ap.add_argument("--queries-per-style", type=int, default=300)
    ap.add_argument("--max-doc-chars", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    manuals = manual_files()
    all_nodes: dict[tuple[str, str], Node] = {}
    entries: list[tuple[str, str, str, int]] = []  # manual, entry, node, line
    licences: dict[str, str] = {}
    for manual, parts in manuals.items():
        nodes, preamble = parse_manual(manual, parts)
        licences[manual] = licence(manual, preamble)
        for node in nodes:
            if node.is_index:
                entries.extend((manual, e, n, line) for e, n, line in node.entries)
            elif not _LICENCE_NODE.search(node.name):
                all_nodes[(manual, node.name)] = node
    # queries: one per distinct entry text; its targets across all index nodes
    targets: dict[str, set[tuple[str, str, int]]] = collections.defaultdict(set)
    for manual, entry, node, line in entries:
        targets[entry].add((manual, node, line))
    usable = {e: t for e, t in targets.items()
              if len({m for m, _, _ in t}) == 1 and len({n for _, n, _ in t}) <= 3
              and 2 <= len(e) <= 60 and all((m, n) in all_nodes for m, n, _ in t)}
    # corpus: nodes with at least one usable entry first drawn, then others, per-manual cap
    pointed = collections.Counter((m, n) for t in usable.values() for m, n, _ in t)
    keys = sorted(all_nodes)
    rng.shuffle(keys)
    keys.sort(key=lambda k: k not in pointed)  # stable: nodes that entries name come first
    chosen: dict[tuple[str, str], tuple[str, int]] = {}
    per_manual: collections.Counter[str] = collections.Counter()
    for key in keys:
        if len(chosen) >= args.nodes:
            break
        if per_manual[key[0]] >= args.per_manual:
            continue
        text, n_lines = node_text(all_nodes[key], args.max_doc_chars)
        if len(text) < 200:
            continue
        chosen[key] = (text, n_lines)
        per_manual[key[0]] += 1
    # queries: entries whose every target is chosen and within the kept lines
    by_style: dict[str, list[tuple[str, list[tuple[str, str]]]]] = {"phrase": [], "term": []}
    for entry in sorted(usable):
        t = usable[entry]
        if not all((m, n) in chosen and line <= chosen[(m, n)][1] for m, n, line in t):
            continue
        style = "phrase" if len(entry.split()) > 1 else "term"
        by_style[style].append((entry, sorted({(m, n) for m, n, _ in t})))
    picked: list[tuple[str, str, list[tuple[str, str]]]] = []
    per_node: collections.Counter[tuple[str, str]] = collections.Counter()
    for style, items in by_style.items():
        rng.shuffle(items)
        n = 0
        for entry, docs in items:
            if n >= args.queries_per_style:
                break
            if any(per_node[d] >= args.per_node for d in docs):
                continue
            for d in docs:
                per_node[d] += 1
            picked.append((style, entry, docs))
            n += 1
    owners = packages([p for parts in manuals.values() for p in parts])
    manual_pkg = {m: owners.get(str(parts[0]), "") for m, parts in manuals.items()}

    def doc_id(key: tuple[str, str]) -> str:
        return f"{key[0]}/{key[1]}"

    (OUT / "qrels").mkdir(parents=True, exist_ok=True)
    verbatim = collections.Counter()
    overlap = []
    with open(OUT / "corpus.jsonl", "w") as corpus:
        for key in sorted(chosen):
            text, _ = chosen[key]
            corpus.write(json.dumps({"_id": doc_id(key), "title": f"{key[0]}: {key[1]}",
                                     "text": text, "manual": key[0],
                                     "package": manual_pkg[key[0]]}, ensure_ascii=False) + "\n")
    with open(OUT / "queries.jsonl", "w") as queries, open(OUT / "qrels" / "test.tsv", "w") as qrels:
        qrels.write("query-id\tcorpus-id\tscore\n")
        for i, (style, entry, docs) in enumerate(picked):
            queries.write(json.dumps({"_id": f"q{i:04d}", "text": entry, "style": style,
                                      "manual": docs[0][0]}, ensure_ascii=False) + "\n")
            for d in docs:
                qrels.write(f"q{i:04d}\t{doc_id(d)}\t1\n")
            body = " ".join(" ".join(chosen[d][0] for d in docs).lower().split())
            verbatim[style] += " ".join(entry.lower().split()) in body
            qw = _WORD.findall(entry.lower())
            tw = set(_WORD.findall(body))
            overlap.append(sum(w in tw for w in qw) / max(len(qw), 1))
    styles = collections.Counter(s for s, _, _ in picked)
    used = sorted(per_manual)
    stats = {"source": "/usr/share/info (Debian 12)", "manuals": used,
             "documents": len(chosen), "nodes_available": len(all_nodes),
             "corpus_chars": sum(len(t) for t, _ in chosen.values()),
             "queries": len(picked), "queries_by_style": dict(styles),
             "usable_index_entries": len(usable),
             "verbatim_in_relevant_node": dict(verbatim),
             "mean_query_word_overlap": sum(overlap) / max(len(overlap), 1),
             "multi_relevant_queries": sum(len(d) > 1 for _, _, d in picked),
             "per_manual_documents": dict(per_manual), "seed": args.seed}
    (OUT / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    lines = "\n".join(f"| {m} | {manual_pkg[m]} | {per_manual[m]} | {licences[m]} |" for m in used)
    (OUT / "README.md").write_text(f"""# infoman: a retrieval test set from the GNU Texinfo manuals

Generated by `bench/build_infoman_set.py` (see its docstring); do not edit by hand.
BEIR layout: `corpus.jsonl`, `queries.jsonl`, `qrels/test.tsv`; `stats.json` has the figures.

- Corpus: {stats['documents']} nodes (sections) of {len(used)} Info manuals installed under
  `/usr/share/info` on the project's machines (Debian 12), at most {args.per_manual} per manual,
  each cut at {args.max_doc_chars} characters at a line end ({stats['corpus_chars']:,} characters in all);
  titled `manual: node`. Index nodes, licence texts and the Python manual (the corpus of
  `pydocs`) are left out.
- Queries: {stats['queries']} of the manuals' own index entries, in two styles (`style` in
  `queries.jsonl`): `phrase`, several words ("counting lines", "files, deleting"):
  {styles['phrase']}; `term`, one word or symbol (`--color`, `LC_ALL`): {styles['term']}.
  Relevant documents: the node(s) the entry points to ({stats['multi_relevant_queries']} queries
  have more than one). Occurring verbatim in a relevant node: phrase
  {verbatim['phrase']}, term {verbatim['term']}; on average
  {100 * stats['mean_query_word_overlap']:.0f}% of a query's words occur in its node(s).

The texts belong to the authors of each manual. Licences as each manual's own copying notice
states them (the full terms are in `/usr/share/doc/<package>/copyright` and in the manuals),
under which these excerpts are redistributed for evaluation:

| manual | Debian package | nodes | licence |
|---|---|---|---|
{lines}
""")
    print(json.dumps({k: v for k, v in stats.items() if k != "per_manual_documents"}))


if __name__ == "__main__":
    main()
