"""LlamaIndex LLM on gpt4all-rag: local GGUF models with their own chat templates."""

from llama_index.llms.gpt4all_rag._structured import StructuredOutputError
from llama_index.llms.gpt4all_rag.base import GPT4AllRag

__all__ = ["GPT4AllRag", "StructuredOutputError"]
