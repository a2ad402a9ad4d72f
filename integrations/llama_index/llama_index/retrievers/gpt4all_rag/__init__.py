"""LlamaIndex retriever over a gpt4all-rag LocalDocs collection."""

from llama_index.retrievers.gpt4all_rag.base import (
    LLM_METADATA_KEYS,
    LocalDocsRetriever,
    node_from_result,
)

__all__ = ["LLM_METADATA_KEYS", "LocalDocsRetriever", "node_from_result"]
