"""LlamaIndex embeddings on gpt4all-rag's Embed4All, with the model's task prefixes."""

from llama_index.embeddings.gpt4all_rag.base import DEFAULT_EMBEDDING_MODEL, GPT4AllRagEmbedding

__all__ = ["DEFAULT_EMBEDDING_MODEL", "GPT4AllRagEmbedding"]
