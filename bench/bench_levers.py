"""Retrieval levers of issue 19, measured offline on every labelled set under ``bench/data``.

Each set's corpus is written, loaded and chunked exactly as LocalDocs does with its defaults
(the same loader, chunker, token counter and sizes); chunk and query vectors come from the
same embedding model through ``bench_retrieval``'s vector cache. Search is exact (inner
product over unit vectors, no HNSW) and BM25 is bm25s with LocalDocs' parameters, so that
each variant below is one change to the baseline, measured against it on the same chunks:

* ``headers``: contextual chunk headers: the document title and the chunk's heading path
  put in front of the text that is embedded and BM25-indexed (``--header-on`` picks dense,
  keyword or both);
* ``title boost``: the header repeated (BM25 field weight 2, BM25F-like);
* fusion: RRF with other weights or constants, and convex combinations of min-max or z-score
  normalised scores (Bruch, Gai and Ingber, "An Analysis of Fusion Functions for Hybrid
  Retrieval", ACM TOIS 2023) instead of RRF;
* aggregation: documents ranked by the sum of their chunks' fused scores (or max plus a
  share of the rest) instead of by their best chunk;
* question forms: "What is X?", "How do I ...?" openers stripped before BM25 (and before
  embedding), measured on each set's own queries and on derived question forms of the
  ``infoman`` term queries ("What is X?"), printed apart since nobody typed them.

Every variant prints MRR@10, R@10 and R@1 per set, the mean over sets, and the paired
bootstrap difference of RR@10 against the baseline per set (95 % interval), so a change
that helps one set and hurts another shows. Figures here differ from ``bench_retrieval.py``
by HNSW's approximation only.

Usage::

    python bench/bench_levers.py [--data bench/data/pydocs ...]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_retrieval import (DEFAULT_DATA_ROOT, DEFAULT_WORK, EmbeddingCache,  # noqa: E402
                             beir_sets, query_styles)

from gpt4all_rag.models import pypi as pypi_models  # noqa: E402
from gpt4all_rag.localdocs import LocalDocs, chunking, loaders  # noqa: E402
from gpt4all_rag.localdocs.indexing import ModelTokenCounter  # noqa: E402
from gpt4all_rag.localdocs.retrieval import keyword_query  # noqa: E402
from gpt4all_rag.localdocs.evaluation import (BeirDataset, evaluate_run, load_beir,  # noqa: E402
                                              reciprocal_rank, write_corpus)

K = 10
CANDIDATES = max(4 * K, 20)  # LocalDocs' default for k = 10
def chunk_header(title: str | None, heading: str | None) -> str:
    """A chunk's contextual header: its heading path, preceded by the document title when the
    path does not start with it; ``""`` when there is neither."""
    title = " ".join((title or "").split())
    heading = " ".join((heading or "").split())
    if heading and (not title or heading.startswith(title)):
        return heading
    return " > ".join(p for p in (title, heading) if p)


def indexed_text(text: str, title: str | None, heading: str | None) -> str:
    """Contextual chunk header + text (after Anthropic's "Introducing Contextual Retrieval",
    2024, with the document's own title and heading path as the context); the text alone
    when it already starts with its innermost heading (a section's first chunk)."""
    header = chunk_header(title, heading)
    if not header or text.lstrip("#= \t\n").startswith(header.rsplit(" > ", 1)[-1]):
        return text
    return f"{header}\n\n{text}"


@dataclass
class Corpus:
    """One set chunked as LocalDocs chunks it."""

    ds: BeirDataset
    styles: dict[str, str]
    doc_of_chunk: list[str]
    texts: list[str]
    titles: list[str]
    headings: list[str | None]


def chunk_set(data: Path, ld: LocalDocs, work: Path) -> Corpus:
    ds = load_beir(data)
    path_to_doc = write_corpus(ds, work / ds.name)
    counter = ModelTokenCounter(ld.embedder)
    prefix = ld.embedder.document_prefix or ""
    max_tokens = ld.embedder.n_ctx - len(counter.prefix_tokens(prefix)) - 2
    doc_of_chunk, texts, titles, headings = [], [], [], []
    for path in sorted(path_to_doc):
        doc = loaders.load(path)
        for c in chunking.chunk_document(doc, counter, chunk_tokens=ld.chunk_tokens,
                                         overlap_tokens=ld.overlap_tokens,
                                         max_tokens=max(16, max_tokens)):
            doc_of_chunk.append(path_to_doc[path])
            texts.append(c.text)
            titles.append(doc.title)
            headings.append(c.heading)
    return Corpus(ds, query_styles(data), doc_of_chunk, texts, titles, headings)


class Bm25:
    def __init__(self, texts: list[str]) -> None:
        import bm25s

        self.bm25s = bm25s
        self.index = bm25s.BM25(k1=1.5, b=0.75)
        self.index.index(bm25s.tokenize(texts, stopwords="en", show_progress=False),
                         show_progress=False)
        self.n = len(texts)

    def search(self, query: str, k: int) -> tuple[list[int], list[float]]:
        tokens = self.bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not tokens.ids or not tokens.ids[0]:
            return [], []
        docs, scores = self.index.retrieve(tokens, k=min(k, self.n), show_progress=False,
                                           n_threads=1)
        keep = [(int(d), float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]
        return [d for d, _ in keep], [s for _, s in keep]


Ranked = tuple[list[int], list[float]]
Fusion = Callable[[Ranked, Ranked], dict[int, float]]


def rrf(k: int = 60, w_dense: float = 1.0, w_kw: float = 1.0) -> Fusion:
    """Reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009), weighted."""
    def fuse(dense: Ranked, kw: Ranked) -> dict[int, float]:
        out: dict[int, float] = {}
        for w, ids in ((w_dense, dense[0]), (w_kw, kw[0])):
            for r, c in enumerate(ids, 1):
                out[c] = out.get(c, 0.0) + w / (k + r)
        return out
    return fuse


def convex(alpha: float, norm: str) -> Fusion:
    """``alpha * dense + (1 - alpha) * keyword`` of normalised scores (Bruch et al. 2023);
    a chunk missing from one list gets that list's minimum (min-max: 0)."""
    def scale(scores: list[float]) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        if not len(s):
            return s
        if norm == "minmax":
            span = s.max() - s.min()
            return (s - s.min()) / span if span > 0 else np.ones_like(s)
        sd = s.std()
        return (s - s.mean()) / sd if sd > 0 else np.zeros_like(s)

    def fuse(dense: Ranked, kw: Ranked) -> dict[int, float]:
        d, k = scale(dense[1]), scale(kw[1])
        d_floor = float(d.min()) if len(d) else 0.0
        k_floor = float(k.min()) if len(k) else 0.0
        dd = dict(zip(dense[0], d))
        kk = dict(zip(kw[0], k))
        return {c: alpha * dd.get(c, d_floor) + (1 - alpha) * kk.get(c, k_floor)
                for c in set(dd) | set(kk)}
    return fuse


def to_docs(scores: dict[int, float], doc_of_chunk: list[str], how: str) -> list[str]:
    """Document ranking from fused chunk scores: by the best chunk (``max``, what ranking
    chunks and de-duplicating gives), by the sum of the top-10 chunks' scores (``sum10``),
    or by the best plus half of the second best (``max+0.5``)."""
    if how == "max":
        top = sorted(scores, key=lambda c: (-scores[c], c))[:K]
        return list(dict.fromkeys(doc_of_chunk[c] for c in top))
    per: dict[str, list[float]] = {}
    for c, s in scores.items():
        per.setdefault(doc_of_chunk[c], []).append(s)
    if how.startswith("sum"):
        n = int(how[3:])
        value = {d: sum(sorted(v, reverse=True)[:n]) for d, v in per.items()}
    else:
        share = float(how.split("+")[1])
        value = {d: sorted(v, reverse=True)[0] + share * sum(sorted(v, reverse=True)[1:2])
                 for d, v in per.items()}
    # the chunks returned are still k = 10: documents of the top chunks, re-ordered
    top = sorted(scores, key=lambda c: (-scores[c], c))[:K]
    docs = list(dict.fromkeys(doc_of_chunk[c] for c in top))
    return sorted(docs, key=lambda d: -value[d])


class SetRuns:
    """Cached per-set material: chunk vectors per text variant, BM25 per text variant."""

    def __init__(self, corpus: Corpus, ld: LocalDocs) -> None:
        self.c = corpus
        self.ld = ld
        self._vectors: dict[str, np.ndarray] = {}
        self._bm25: dict[str, Bm25] = {}
        self._qvec: dict[str, np.ndarray] = {}

    def texts(self, variant: str) -> list[str]:
        c = self.c
        if variant == "plain":
            return c.texts
        if variant == "header":
            return [indexed_text(t, ti, h) for t, ti, h in zip(c.texts, c.titles, c.headings)]
        if variant == "header2":  # the header twice: BM25 weight 2 for titles and headings
            return [f"{chunk_header(ti, h)}\n{x}" if chunk_header(ti, h) else x
                    for x, ti, h in zip(self.texts("header-all"), c.titles, c.headings)]
        if variant == "header-all":
            return [f"{chunk_header(ti, h)}\n\n{t}" if chunk_header(ti, h) else t
                    for t, ti, h in zip(c.texts, c.titles, c.headings)]
        raise ValueError(variant)

    def vectors(self, variant: str) -> np.ndarray:
        if variant not in self._vectors:
            v = self.ld.embedder.embed(self.texts(variant), prefix=self.ld.embedder.document_prefix or "")
            m = np.asarray(v, dtype=np.float32)
            self._vectors[variant] = m / np.linalg.norm(m, axis=1, keepdims=True)
        return self._vectors[variant]

    def bm25(self, variant: str) -> Bm25:
        if variant not in self._bm25:
            self._bm25[variant] = Bm25(self.texts(variant))
        return self._bm25[variant]

    def qvec(self, q: str) -> np.ndarray:
        if q not in self._qvec:
            v = np.asarray(self.ld.embedder.embed(q, prefix=self.ld.embedder.query_prefix or ""),
                           dtype=np.float32)
            self._qvec[q] = v / np.linalg.norm(v)
        return self._qvec[q]

    def run(self, queries: dict[str, str], *, dense_text: str = "plain", kw_text: str = "plain",
            fusion: Fusion | None = None, agg: str = "max", q_dense: Callable[[str], str] = str,
            q_kw: Callable[[str], str] = str, mode: str = "hybrid") -> dict[str, list[str]]:
        fusion = fusion or rrf()
        vec = self.vectors(dense_text) if mode != "keyword" else None
        bm = self.bm25(kw_text) if mode != "dense" else None
        out = {}
        for qid, q in queries.items():
            dense: Ranked = ([], [])
            kw: Ranked = ([], [])
            if vec is not None:
                sims = vec @ self.qvec(q_dense(q))
                top = np.argsort(-sims)[:CANDIDATES]
                dense = ([int(i) for i in top], [float(sims[i]) for i in top])
            if bm is not None:
                kw = bm.search(q_kw(q), CANDIDATES)
            if mode == "dense":
                scores = dict(zip(*dense))
            elif mode == "keyword":
                scores = dict(zip(*kw))
            else:
                scores = fusion(dense, kw)
            out[qid] = to_docs(scores, self.c.doc_of_chunk, agg)
        return out


def paired(a: dict[str, list[str]], b: dict[str, list[str]], qrels: dict[str, dict[str, int]],
           n_boot: int = 5000) -> tuple[float, float, float]:
    rel = {q: {d for d, s in r.items() if s >= 1} for q, r in qrels.items()}
    diff = np.array([reciprocal_rank(a[q], r, K) - reciprocal_rank(b[q], r, K)
                     for q, r in rel.items() if r])
    rng = np.random.default_rng(0)
    means = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, action="append", default=None)
    ap.add_argument("--cache", type=Path, default=DEFAULT_WORK.parent / ".embedding-cache.sqlite")
    ap.add_argument("--only", default=None, help="run only variants whose name contains this")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    EmbeddingCache(args.cache).install()
    model_dir = pypi_models.cache_dir()
    pypi_models.default_embedding_model(model_dir)
    work = DEFAULT_WORK.resolve() / "levers"
    ld = LocalDocs("levers", persist_directory=work / "chroma", model_path=model_dir,
                   n_threads=args.threads)
    sets = [SetRuns(chunk_set(d, ld, work / "docs"), ld) for d in (args.data or beir_sets(DEFAULT_DATA_ROOT))]
    for s in sets:
        print(f"{s.c.ds.name}: {len(s.c.texts)} chunks, {len(s.c.ds.queries)} queries", flush=True)

    H, H2 = "header", "header2"
    variants: list[tuple[str, dict]] = [
        ("baseline: plain chunks, RRF k=60, best chunk", {}),
        ("dense only", {"mode": "dense"}),
        ("keyword only", {"mode": "keyword"}),
        ("headers (dense + BM25)", {"dense_text": H, "kw_text": H}),
        ("headers on dense only", {"dense_text": H}),
        ("headers on BM25 only", {"kw_text": H}),
        ("headers dense + BM25 header x2 (boost)", {"dense_text": H, "kw_text": H2}),
        ("RRF k=30", {"fusion": rrf(30)}),
        ("RRF dense 1 : BM25 1.5", {"fusion": rrf(60, 1, 1.5)}),
        ("RRF dense 1.5 : BM25 1", {"fusion": rrf(60, 1.5, 1)}),
        ("convex min-max a=0.5", {"fusion": convex(0.5, "minmax")}),
        ("convex min-max a=0.3", {"fusion": convex(0.3, "minmax")}),
        ("convex min-max a=0.7", {"fusion": convex(0.7, "minmax")}),
        ("convex z-score a=0.5", {"fusion": convex(0.5, "z")}),
        ("aggregate: doc = sum of top-3 chunks", {"agg": "sum3"}),
        ("aggregate: doc = best + 0.5 x second", {"agg": "max+0.5"}),
        ("aggregate: doc = best + 0.2 x second", {"agg": "max+0.2"}),
        ("question openers stripped (BM25)", {"q_kw": keyword_query}),
        ("question openers stripped (BM25 + dense)", {"q_kw": keyword_query,
                                                       "q_dense": keyword_query}),
        ("headers + convex min-max a=0.5", {"dense_text": H, "kw_text": H,
                                            "fusion": convex(0.5, "minmax")}),
        ("headers + best + 0.2 x second", {"dense_text": H, "kw_text": H, "agg": "max+0.2"}),
    ]
    if args.only:
        variants = [variants[0]] + [v for v in variants[1:] if args.only in v[0]]
    names = [s.c.ds.name for s in sets]
    print(f"\n{'variant':<46}" + "".join(f"{n[:21]:>22}" for n in names) + f"{'mean':>22}")
    print(f"{'':<46}" + f"{'MRR@10/R@10/R@1':>22}" * (len(names) + 1))
    base: list[dict[str, list[str]]] = []
    deltas: list[str] = []
    for name, kw in variants:
        runs = [s.run(s.c.ds.queries, **kw) for s in sets]
        if not base:
            base = runs
        cells, total = [], np.zeros(3)
        for s, run in zip(sets, runs):
            m = evaluate_run(run, s.c.ds.qrels)
            v = np.array([m.mrr_at_10, m.recall_at_10, m.recall_at_1])
            total += v
            cells.append(f"{v[0]:.3f}/{v[1]:.3f}/{v[2]:.3f}".rjust(22))
        mean = total / len(sets)
        print(f"{name:<46}{''.join(cells)}{mean[0]:.3f}/{mean[1]:.3f}/{mean[2]:.3f}".rjust(0),
              flush=True)
        if runs is not base:
            d = [paired(run, b, s.c.ds.qrels) for s, run, b in zip(sets, runs, base)]
            deltas.append(f"{name:<46}" + "".join(
                f"{m:+.3f} [{lo:+.3f},{hi:+.3f}]".rjust(22) for m, lo, hi in d))
        for s, run in zip(sets, runs):
            for style in sorted(set(s.c.styles.values())):
                sub = {q: r for q, r in s.c.ds.qrels.items() if s.c.styles.get(q) == style}
                m = evaluate_run(run, sub)
                print(f"    {s.c.ds.name}/{style:<30} {m.mrr_at_10:.3f}/{m.recall_at_10:.3f}/"
                      f"{m.recall_at_1:.3f}")
    print("\nRR@10 difference against the baseline, mean [95 % paired bootstrap interval]:")
    print("\n".join(deltas))

    # Derived question forms: nobody typed these; they mimic the definitional style.
    for s in sets:
        terms = {q: t for q, t in s.c.ds.queries.items() if s.c.styles.get(q) == "term"}
        if not terms:
            continue
        asked = {q: f"What is {t}?" for q, t in terms.items()}
        qrels = {q: s.c.ds.qrels[q] for q in asked}
        print(f"\n{s.c.ds.name}: its {len(asked)} term queries asked as 'What is X?' (derived):")
        plain = s.run(terms)
        print(f"  {'as typed (X)':<52} {evaluate_run(plain, qrels).mrr_at_10:.3f}")
        for name, kw in variants:
            if name.startswith(("baseline", "question", "headers (", "dense only")):
                run = s.run(asked, **kw)
                print(f"  {name:<52} {evaluate_run(run, qrels).mrr_at_10:.3f}")


if __name__ == "__main__":
    main()
