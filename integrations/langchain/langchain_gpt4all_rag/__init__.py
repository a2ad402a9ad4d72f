"""LangChain integration of gpt4all-rag: local GGUF models and LocalDocs in LangChain.

Public names:

* :class:`ChatGPT4All`: chat model (real streaming, stop sequences, usage metadata, tools and
  structured output by grammar-constrained sampling).
* :class:`GPT4AllLLM`: completion model.
* :class:`GPT4AllEmbeddings`: embeddings with the model's document and query prefixes.
* :class:`LocalDocsRetriever`: retriever over a LocalDocs collection.
* :class:`LocalDocsVectorStore`: a LocalDocs collection as a vector store (filters, MMR,
  ``add_documents`` and ``delete`` through LocalDocs' bookkeeping).

Every class loads its model weights on first use, not when it is built.
"""

from importlib import metadata

from .chat_models import ChatGPT4All
from .embeddings import GPT4AllEmbeddings
from .llms import GPT4AllLLM
from .retrievers import LocalDocsRetriever
from .vectorstores import LocalDocsVectorStore

try:
    __version__ = metadata.version("langchain-gpt4all-rag")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = ""

__all__ = ["ChatGPT4All", "GPT4AllEmbeddings", "GPT4AllLLM", "LocalDocsRetriever",
           "LocalDocsVectorStore", "__version__"]
