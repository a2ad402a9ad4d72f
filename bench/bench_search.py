"""LocalDocs search latency at 40k chunks: hybrid, dense and keyword p50/p95 per query, the
first query of a fresh process with and without the persisted BM25 index, and its memory.

Issue targets: hybrid search p95 < 50 ms at 40k chunks; first query in a fresh process < 1 s.

The collection is built from the real chunks and vectors that ``bench_retrieval.py`` wrote for
the labelled sets (run it first; about 11k chunks of ``structure-v1`` / all-MiniLM-L6-v2 in
``bench/data/.work/<set>/chroma``), copied until there are ``--chunks`` of them. Copies after
the first keep the text and get the vector plus Gaussian noise (sigma ``--noise`` per
dimension, renormalised) and paths of their own, so the HNSW graph holds distinct points and
BM25 sees the same vocabulary at a realistic scale. The queries are those of the labelled sets
(real phrases, names and questions), embedded by the real model for every search, as a user's
search does. Steady-state figures come from one process after a warm-up query; the fresh
process figures from ``--fresh`` new processes each (interleaved: cached, uncached, ...).

    python bench/bench_retrieval.py          # once, for the chunk vectors
    python bench/bench_search.py [--chunks 40000] [--queries 300] [--fresh 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpt4all_rag.models import pypi as pypi_models  # noqa: E402

HERE = ROOT / "bench"
SETS = ("pydocs", "manpages", "infoman")
COLLECTION = "bench40k"


def build(work: Path, n_chunks: int, noise: float, seed: int = 0) -> int:
    """Write the collection (and its files collection) into ``work/chroma``; returns its size."""
    import chromadb

    rng = np.random.default_rng(seed)
    sources = []
    for name in SETS:
        path = HERE / "data" / ".work" / name / "chroma"
        if not path.exists():
            sys.exit(f"{path} is missing: run bench/bench_retrieval.py first")
        col = chromadb.PersistentClient(path=str(path)).get_collection("ours")
        got = col.get(include=["embeddings", "documents", "metadatas"])
        sources.append((dict(col.metadata), got))
    shutil.rmtree(work / "chroma", ignore_errors=True)
    client = chromadb.PersistentClient(path=str(work / "chroma"))
    meta = {**sources[0][0], "g4r_revision": 1, "g4r_writing": False}
    chunks = client.create_collection(COLLECTION, metadata=meta, embedding_function=None)
    files = client.create_collection(f"{COLLECTION}__files", embedding_function=None)
    written, replica = 0, 0
    while written < n_chunks:
        for _, got in sources:
            ids, vecs, docs, metas = [], [], [], []
            file_rows: dict[str, dict] = {}
            for cid, vec, doc, md in zip(got["ids"], got["embeddings"], got["documents"],
                                         got["metadatas"]):
                if written + len(ids) >= n_chunks:
                    break
                v = np.asarray(vec, dtype=np.float32)
                if replica:
                    v = v + rng.normal(0.0, noise, v.shape).astype(np.float32)
                    v /= np.linalg.norm(v)
                doc_id = f"{md['doc_id']}r{replica}"
                path = f"/replica-{replica}{md['path']}"
                ids.append(f"{doc_id}:{md['chunk_index']:05d}")
                vecs.append(v.tolist())
                docs.append(doc)
                metas.append({**md, "doc_id": doc_id, "path": path})
                row = file_rows.setdefault(doc_id, {"path": path, "title": md.get("title") or "",
                                                    "n_chunks": 0, "state": "done",
                                                    "origin": "file", "content_hash": doc_id,
                                                    "mtime": "0", "size_bytes": 0})
                row["n_chunks"] += 1
            for at in range(0, len(ids), 2000):
                chunks.add(ids=ids[at:at + 2000], embeddings=vecs[at:at + 2000],
                           documents=docs[at:at + 2000], metadatas=metas[at:at + 2000])
            frows = list(file_rows.items())
            for at in range(0, len(frows), 2000):
                part = frows[at:at + 2000]
                files.add(ids=[k for k, _ in part], documents=[r["path"] for _, r in part],
                          metadatas=[r for _, r in part], embeddings=[[0.0] for _ in part])
            written += len(ids)
            if written >= n_chunks:
                break
        replica += 1
    return chunks.count()


def queries(n: int) -> list[str]:
    out: list[str] = []
    per = max(1, n // len(SETS))
    for name in SETS:
        lines = (HERE / "data" / name / "queries.jsonl").read_text(encoding="utf-8").splitlines()
        out += [json.loads(line)["text"] for line in lines[:per]]
    return out[:n]


def child(work: Path, mode: str, qs: list[str]) -> dict:
    """Runs in a fresh process: open the collection, time the first query, then ``qs``."""
    import resource

    from gpt4all_rag.localdocs import LocalDocs

    t0 = time.perf_counter()
    ld = LocalDocs(COLLECTION, persist_directory=work / "chroma",
                   model_path=pypi_models.cache_dir(), n_threads=2)
    ld.search(qs[0], k=10, mode=mode)
    first = time.perf_counter() - t0
    rss_first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = {}
    for m in ("hybrid", "dense", "keyword"):
        ld.search(qs[0], k=10, mode=m)  # warm-up of this mode
        ts = []
        for q in qs[1:]:
            t = time.perf_counter()
            ld.search(q, k=10, mode=m)
            ts.append(1000 * (time.perf_counter() - t))
        times[m] = ts
    return {"first_s": first, "rss_mib_first": rss_first,
            "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "ms": times}


def run_child(work: Path, mode: str, qs: list[str], cache: Path, keep_cache: bool) -> dict:
    if not keep_cache:
        shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "GPT4ALL_RAG_BM25_CACHE": str(cache)}
    out = subprocess.run([sys.executable, __file__, "--child", str(work), "--mode", mode],
                         input=json.dumps(qs), capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=40000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--fresh", type=int, default=3, help="fresh processes per cache state")
    ap.add_argument("--noise", type=float, default=0.02)
    ap.add_argument("--work", type=Path, default=HERE / "data" / ".work" / "search40k")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="hybrid", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.mode, json.loads(sys.stdin.read()))))
        return

    args.work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    n = build(args.work, args.chunks, args.noise)
    print(f"collection: {n} chunks (real chunks of {', '.join(SETS)} and noisy copies), "
          f"written in {time.perf_counter() - t:.0f} s")
    qs = queries(args.queries)
    cache = args.work / "bm25-cache"
    runs: dict[str, list[dict]] = {"persisted BM25": [], "no BM25 cache": []}
    run_child(args.work, "hybrid", qs[:2], cache, keep_cache=False)  # writes the cache once
    for _ in range(args.fresh):
        runs["persisted BM25"].append(run_child(args.work, "hybrid", qs, cache, keep_cache=True))
        runs["no BM25 cache"].append(run_child(args.work, "hybrid", qs[:2], cache, keep_cache=False))

    print(f"\nfirst hybrid query of a fresh process (open + BM25 + query embedding + search), "
          f"median of {args.fresh}; target < 1 s")
    for label, rs in runs.items():
        print(f"  {label:16s} {statistics.median(r['first_s'] for r in rs):6.2f} s  "
              f"[{min(r['first_s'] for r in rs):.2f}-{max(r['first_s'] for r in rs):.2f}]  "
              f"max RSS after it {statistics.median(r['rss_mib_first'] for r in rs):.0f} MiB")
    print(f"\nper query, k=10, {len(qs) - 1} queries x {args.fresh} processes "
          f"(query embedding included); target hybrid p95 < 50 ms")
    for m in ("hybrid", "dense", "keyword"):
        ms = [x for r in runs["persisted BM25"] for x in r["ms"][m]]
        print(f"  {m:8s} p50 {pct(ms, 0.5):6.1f} ms   p95 {pct(ms, 0.95):6.1f} ms   "
              f"max {max(ms):6.1f} ms")
    print(f"  max RSS of the process: "
          f"{statistics.median(r['rss_mib'] for r in runs['persisted BM25']):.0f} MiB")


if __name__ == "__main__":
    main()
