"""The LangChain RAG recipe, the anchor a user would otherwise pick: run in the reference
virtualenv (``bench/.venv-ref``, ``bench/setup_reference.sh --langchain``), never in ours.

What LangChain's retrieval tutorial builds: the folder's files as documents (the text of each
file, ``source`` = its path, as ``TextLoader`` makes them), ``RecursiveCharacterTextSplitter``
with ``chunk_size=1000, chunk_overlap=200, add_start_index=True``, ``HuggingFaceEmbeddings``
(sentence-transformers on PyTorch's CPU build, its default batch of 32) and
``Chroma.from_documents`` into an embedded, persistent Chroma. Only ``.md``, ``.txt`` and
``.rst`` files are read.

    python langchain_recipe.py index FOLDER PERSIST CHECKPOINT THREADS
        -> {"seconds": {"read", "split", "embed", "store", "total"}, "files", "characters",
            "chunks"}
    python langchain_recipe.py search PERSIST CHECKPOINT THREADS QUERIES_JSON K
        -> {"seconds": seconds for all queries, "run": {query id: [source path of each of the
            K nearest chunks, nearest first]}}

QUERIES_JSON holds ``{query id: text}``. Each command prints one JSON line (the last line of
its output), as ``bench/reference.py`` expects.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_huggingface import HuggingFaceEmbeddings
from langchain_text_splitters import RecursiveCharacterTextSplitter

SUFFIXES = {".md", ".txt", ".rst"}
COLLECTION = "langchain"


class TimedEmbeddings(HuggingFaceEmbeddings):
    """HuggingFaceEmbeddings that adds up the seconds spent embedding documents."""

    seconds: float = 0.0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        start = time.perf_counter()
        try:
            return super().embed_documents(texts)
        finally:
            self.seconds += time.perf_counter() - start


def embeddings(checkpoint: str, threads: str) -> TimedEmbeddings:
    torch.set_num_threads(int(threads))
    return TimedEmbeddings(model_name=checkpoint, model_kwargs={"device": "cpu"})


def index(folder: str, persist: str, checkpoint: str, threads: str) -> dict:
    emb = embeddings(checkpoint, threads)
    emb.embed_documents(["warm up"])  # the model loads outside the timed region
    emb.seconds = 0.0
    start = time.perf_counter()
    docs = [Document(page_content=p.read_text(encoding="utf-8"), metadata={"source": str(p)})
            for p in sorted(Path(folder).rglob("*")) if p.suffix in SUFFIXES and p.is_file()]
    read_s = time.perf_counter() - start
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200,
                                              add_start_index=True)
    splits = splitter.split_documents(docs)
    split_s = time.perf_counter() - start - read_s
    Chroma.from_documents(documents=splits, embedding=emb, persist_directory=persist,
                          collection_name=COLLECTION)
    total = time.perf_counter() - start
    return {"seconds": {"read": read_s, "split": split_s, "embed": emb.seconds,
                        "store": total - read_s - split_s - emb.seconds, "total": total},
            "files": len(docs), "characters": sum(len(d.page_content) for d in docs),
            "chunks": len(splits)}


def search(persist: str, checkpoint: str, threads: str, queries_json: str, k: str) -> dict:
    store = Chroma(collection_name=COLLECTION, embedding_function=embeddings(checkpoint, threads),
                   persist_directory=persist)
    queries = json.loads(Path(queries_json).read_text(encoding="utf-8"))
    store.similarity_search("warm up", k=1)
    start = time.perf_counter()
    run = {q: [d.metadata["source"] for d in store.similarity_search(text, k=int(k))]
           for q, text in queries.items()}
    return {"seconds": time.perf_counter() - start, "run": run}


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    result = {"index": index, "search": search}[command](*rest)
    print(json.dumps(result))
