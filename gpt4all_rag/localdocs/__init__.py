"""LocalDocs: index folders of documents into ChromaDB and retrieve context for chats.

The pipeline is ``loaders`` (find files, read them into :class:`~.loaders.Document` objects)
-> ``chunking`` (split documents into token-bounded chunks with page and line spans)
-> embed -> store -> retrieve -> prompt context with citations.

Importing this package registers LocalDocs' Chroma embedding function (``gpt4all-rag``), so a
plain ``chromadb`` client can reopen a collection and query it by text (see
:class:`~gpt4all_rag.localdocs.embedding_function.LocalDocsEmbeddingFunction`).

``DEFAULT_EMBEDDING_MODEL`` is :data:`gpt4all_rag.embed4all.DEFAULT_MODEL_NAME` under the name
this package has always given it.
"""

from ..embed4all import DEFAULT_MODEL_NAME as DEFAULT_EMBEDDING_MODEL
from .collections import Collections, list_collections
from .context import DEFAULT_EXCERPT_TEMPLATE, DEFAULT_PROMPT_TEMPLATE, build_prompt, format_sources
from .indexing import IndexReport
from .localdocs import LocalDocs
from .retrieval import SearchResult, SearchResults, search_collections

__all__ = ["DEFAULT_EMBEDDING_MODEL", "DEFAULT_EXCERPT_TEMPLATE", "DEFAULT_PROMPT_TEMPLATE",
           "Collections", "IndexReport", "LocalDocs", "SearchResult", "SearchResults",
           "build_prompt", "format_sources", "list_collections", "search_collections"]
