"""Request models of the OpenAI-compatible server, field by field after OpenAI's API reference.

Responses are the chat core's own objects (:mod:`gpt4all_rag.completion_types`, whose
``to_dict()`` is OpenAI's JSON) plus the few shapes defined here. Fields OpenAI has and a local
model cannot honour are accepted at their neutral value and refused otherwise (``n`` > 1,
non-zero ``frequency_penalty``/``presence_penalty``, ``echo``), so a client never silently
gets something else than it asked for.

Extensions beyond OpenAI's fields (llama.cpp's server names where it has them): ``top_k``,
``min_p``, ``repeat_penalty``, ``repeat_last_n`` (sampling), ``grammar`` (GBNF), ``localdocs`` (retrieval from
LocalDocs collections, :class:`LocalDocsOptions`), ``input_type`` on embeddings (the model's
query or document prefix), ``enable_thinking`` (templates that switch reasoning).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ChatCompletionRequest", "CompletionRequest", "EmbeddingRequest", "LocalDocsOptions",
           "SearchRequest", "StreamOptions"]


class _Request(BaseModel):
    # Unknown fields are ignored, as OpenAI's API does for forward compatibility.
    model_config = ConfigDict(extra="ignore")


class StreamOptions(_Request):
    """``stream_options``: ``include_usage`` adds a last chunk with the usage and no choices."""

    include_usage: bool = False


class LocalDocsOptions(_Request):
    """The ``localdocs`` extension of chat completions.

    Attributes:
        collections: LocalDocs collections to search (1-8 names).
        k: excerpts given to the model (1-20), the best of all collections by score.
        mode: ``hybrid`` (dense + BM25 by reciprocal rank fusion), ``dense`` or ``keyword``.
    """

    collections: list[str] = Field(min_length=1, max_length=8)
    k: int = Field(default=3, ge=1, le=20)
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"


class _Sampling(_Request):
    """Sampling fields shared by both completion endpoints (see gpt4all_rag.sampling; unset
    fields take the schema's defaults)."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=0)
    stop: str | list[str] | None = None
    seed: int | None = None
    frequency_penalty: float | None = 0.0
    presence_penalty: float | None = 0.0
    n: int | None = 1
    user: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    # extensions (llama.cpp's server names)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0, le=1)
    repeat_penalty: float | None = Field(default=None, gt=0)
    repeat_last_n: int | None = Field(default=None, ge=-1)
    grammar: str | None = None

    @model_validator(mode="after")
    def _honourable(self) -> _Sampling:
        if self.n not in (None, 1):
            raise ValueError("n must be 1: one choice per request")
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(self, name) not in (None, 0, 0.0):
                raise ValueError(f"{name} is not supported (use the repeat_penalty extension)")
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise ValueError("stop takes at most 4 sequences")
        return self

    def sampling(self) -> dict[str, Any]:
        """The chat core's sampling options (None: the schema's default)."""
        return {"temperature": self.temperature, "top_p": self.top_p,
                "max_tokens": self.max_tokens, "stop": self.stop, "seed": self.seed,
                "top_k": self.top_k, "min_p": self.min_p, "repeat_penalty": self.repeat_penalty,
                "repeat_last_n": self.repeat_last_n, "grammar": self.grammar}


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions``."""

    model: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=0)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    enable_thinking: bool | None = None
    localdocs: LocalDocsOptions | None = None

    def sampling(self) -> dict[str, Any]:
        out = super().sampling()
        if self.max_completion_tokens is not None:
            out["max_tokens"] = self.max_completion_tokens
        return out


class CompletionRequest(_Sampling):
    """``POST /v1/completions``: plain continuation of ``prompt`` (base models)."""

    model: str | None = None
    prompt: str | list[str]
    logprobs: int | None = Field(default=None, ge=0, le=5)
    echo: bool = False
    suffix: str | None = None

    @model_validator(mode="after")
    def _one_prompt(self) -> CompletionRequest:
        if isinstance(self.prompt, list) and len(self.prompt) != 1:
            raise ValueError("prompt must be a string or a list of one string")
        if self.echo:
            raise ValueError("echo is not supported")
        if self.suffix:
            raise ValueError("suffix is not supported")
        return self

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class EmbeddingRequest(_Request):
    """``POST /v1/embeddings``.

    Attributes:
        input: a string, a list of strings, a list of token ids, or a list of token-id lists
            (1-2,048 inputs).
        dimensions: Matryoshka truncation, where the model supports it.
        encoding_format: ``float`` or ``base64`` (little-endian float32).
        input_type: extension: ``document`` (default) or ``query``, which chooses the model's
            task prefix (Nomic Embed ``search_document`` / ``search_query``; none for MiniLM).
    """

    model: str | None = None
    input: str | list[str] | list[int] | list[list[int]]
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] = "float"
    input_type: Literal["document", "query"] = "document"
    user: str | None = None

    @model_validator(mode="after")
    def _bounded(self) -> EmbeddingRequest:
        items = self.input if isinstance(self.input, list) else [self.input]
        if not items or len(items) > 2048:
            raise ValueError("input must hold 1 to 2048 items")
        if any(isinstance(i, str) and not i for i in items):
            raise ValueError("input strings must not be empty")
        return self


class SearchRequest(_Request):
    """``POST /v1/collections/{name}/search``."""

    query: str = Field(min_length=1)
    k: int = Field(default=5, ge=1, le=50)
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"
