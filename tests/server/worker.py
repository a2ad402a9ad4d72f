"""A separate process for the LocalDocs tests: ``python worker.py '<json job>'``.

Jobs (``job["action"]``):

* ``"index"``: index ``job["folder"]`` into a LocalDocs collection. With ``job["pause"]`` =
  ``{"op": "add"|"delete"|"upsert", "n": N, "when": "before"|"after"}`` the process writes
  ``job["marker"]`` and sleeps when the N-th Chroma call of that kind is about to run (or has
  returned), so a test can SIGKILL it at that exact point. With ``job["trace"]`` it appends a
  line to ``job["marker"]`` after every Chroma write and keeps going (a test kills it at an
  arbitrary moment). Prints the report as JSON.
* ``"search"``: open the collection in this new process, print stats and search results.
* ``"plain"``: reopen the chunk collection with plain chromadb (``get_collection(name)``,
  no embedding function given) after importing gpt4all_rag.localdocs (which registers its
  embedding function), and run ``collection.query(query_texts=...)``. With
  ``job["no_import"]`` it skips the import and prints the error Chroma raises instead.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any


def _patch_chroma(job: dict[str, Any]) -> None:
    from chromadb.api.models.Collection import Collection

    pause = job.get("pause")
    trace = bool(job.get("trace"))
    marker = job["marker"]
    counts: dict[str, int] = {}

    def hold(op: str, n: int, when: str) -> None:
        with open(marker, "w", encoding="utf-8") as f:
            f.write(f"{when} {op} {n}\n")
            f.flush()
            os.fsync(f.fileno())
        while True:  # wait for SIGKILL
            time.sleep(60)

    def wrap(op: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            counts[op] = counts.get(op, 0) + 1
            n = counts[op]
            if pause and pause["op"] == op and pause["n"] == n and pause["when"] == "before":
                hold(op, n, "before")
            result = original(self, *args, **kwargs)
            if pause and pause["op"] == op and pause["n"] == n and pause["when"] == "after":
                hold(op, n, "after")
            if trace:
                with open(marker, "a", encoding="utf-8") as f:
                    f.write(f"{op} {n}\n")
            return result

        return wrapper

    for op in ("add", "delete", "upsert"):
        setattr(Collection, op, wrap(op, getattr(Collection, op)))


def main() -> None:
    job = json.loads(sys.argv[1])
    action = job["action"]
    if action == "plain":
        _plain(job)
        return
    from gpt4all_rag.localdocs import LocalDocs, indexing

    if "embed_group_chunks" in job:
        indexing.EMBED_GROUP_CHUNKS = int(job["embed_group_chunks"])
    ld = LocalDocs(**job["localdocs"])
    if action == "index":
        if job.get("pause") or job.get("trace"):
            _patch_chroma(job)
        report = ld.index(job["folder"], progress=False)
        print(json.dumps({"indexed": report.indexed, "unchanged": report.unchanged,
                          "removed": report.removed, "n_chunks": report.n_chunks}))
    elif action == "search":
        out: dict[str, Any] = {"stats": ld.stats(), "results": {}}
        for query in job["queries"]:
            out["results"][query] = {
                mode: [[r.chunk_id, r.path, r.citation()] for r in ld.search(query, k=3, mode=mode)]
                for mode in ("hybrid", "dense", "keyword")}
        print(json.dumps(out))
    else:
        raise SystemExit(f"unknown action {action!r}")
    ld.close()


def _plain(job: dict[str, Any]) -> None:
    import chromadb

    if not job.get("no_import"):
        import gpt4all_rag.localdocs  # noqa: F401 - registers LocalDocsEmbeddingFunction with Chroma

    settings = chromadb.config.Settings(anonymized_telemetry=False)
    if job.get("chroma_url"):
        from urllib.parse import urlparse

        u = urlparse(job["chroma_url"])
        client = chromadb.HttpClient(host=u.hostname, port=u.port, settings=settings)
    else:
        client = chromadb.PersistentClient(path=job["persist_directory"], settings=settings)
    if job.get("no_import"):
        try:
            client.get_collection(job["collection"]).query(query_texts=job["queries"], n_results=3)
        except Exception as exc:  # noqa: BLE001 - report whatever Chroma raises
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}",
                              "gpt4all_rag_imported": "gpt4all_rag" in sys.modules}))
            return
        print(json.dumps({"error": None}))
        return
    collection = client.get_collection(job["collection"])
    ef = collection.configuration.get("embedding_function")
    result = collection.query(query_texts=job["queries"], n_results=3,
                              include=["metadatas", "distances"])
    print(json.dumps({"embedding_function": type(ef).__name__,
                      "ef_config": ef.get_config() if ef is not None else None,
                      "ids": result["ids"],
                      "paths": [[m["path"] for m in ms] for ms in result["metadatas"] or []],
                      "distances": result["distances"]}))


if __name__ == "__main__":
    main()
