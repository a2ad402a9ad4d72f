"""LocalDocs: index folders of documents into ChromaDB and retrieve context for chats.

The pipeline is ``loaders`` (find files, read them into :class:`~.loaders.Document` objects)
-> ``chunking`` (split documents into token-bounded chunks with page and line spans)
-> embed -> store -> retrieve -> prompt context with citations.
"""

from .context import DEFAULT_EXCERPT_TEMPLATE, DEFAULT_PROMPT_TEMPLATE, build_prompt, format_sources
from .localdocs import DEFAULT_EMBEDDING_MODEL, IndexReport, LocalDocs
from .retrieval import SearchResult

__all__ = ["DEFAULT_EMBEDDING_MODEL", "DEFAULT_EXCERPT_TEMPLATE", "DEFAULT_PROMPT_TEMPLATE",
           "IndexReport", "LocalDocs", "SearchResult", "build_prompt", "format_sources"]
