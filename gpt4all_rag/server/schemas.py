"""Request models of the OpenAI-compatible server, field by field after OpenAI's API reference.

Responses are the chat core's own objects (:mod:`gpt4all_rag.engine.types`, whose
``to_dict()`` is OpenAI's JSON) plus the few shapes defined here. Fields OpenAI has and a local
model cannot honour are accepted at their neutral value and refused otherwise (``n`` > 1,
non-zero ``frequency_penalty``/``presence_penalty``, a non-empty ``logit_bias``, ``echo``,
``best_of`` > 1; ``top_logprobs`` without ``logprobs``), so a
client never silently gets something else than it asked for.

Extensions beyond OpenAI's fields (llama.cpp's server names where it has them): ``top_k``,
``min_p``, ``repeat_penalty``, ``repeat_last_n`` (sampling), ``grammar`` (GBNF), ``localdocs`` (retrieval from
LocalDocs collections, :class:`LocalDocsOptions`), ``input_type`` on embeddings (the model's
query or document prefix), ``enable_thinking`` (templates that switch reasoning).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationInfo, field_validator

from ..engine.sampling import SamplingParams, json_bounds
from ..names import COLLECTION_NAME_PATTERN, MODEL_NAME_MAX, MODEL_NAME_PATTERN

#: A token id as a request may carry it: an int32 (the model then checks its vocabulary).
TokenId = Annotated[int, Field(ge=0, lt=2**31)]

__all__ = ["ChatCompletionRequest", "ChatInput", "CompletionRequest", "DetokenizeRequest",
           "EmbeddingRequest", "ErrorResponse", "LocalDocsOptions", "SearchRequest", "StreamOptions",
           "TokenizeMessages", "TokenizeText"]


class _Request(BaseModel):
    # Unknown fields are ignored, as OpenAI's API does for forward compatibility.
    model_config = ConfigDict(extra="ignore")


#: A model file name (gpt4all_rag.names; ``.gguf`` is appended to a name without
#: ``.gguf``/``.bin``).
ModelName = Annotated[str, Field(pattern=MODEL_NAME_PATTERN, max_length=MODEL_NAME_MAX)]
#: A LocalDocs collection name (gpt4all_rag.names).
CollectionName = Annotated[str, Field(pattern=COLLECTION_NAME_PATTERN, min_length=3, max_length=63)]
#: GBNF text (llama.cpp's grammar format): declared as the ``gbnf`` string format.
Grammar = Annotated[str, Field(json_schema_extra={"format": "gbnf"})]


class TextPart(_Request):
    """A ``{"type": "text", "text": ...}`` content part (the only kind a text model reads)."""

    type: Literal["text"]
    text: str


class _FilledTextPart(TextPart):
    text: str = Field(min_length=1)


Content = Annotated[str, Field()] | list[TextPart]
FilledContent = Annotated[str, Field(min_length=1)] | Annotated[list[_FilledTextPart], Field(min_length=1)]


class FunctionCall(_Request):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCall(_Request):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(_Request):
    role: Literal["system", "developer"]
    content: FilledContent
    name: str | None = None


class UserMessage(_Request):
    role: Literal["user"]
    content: FilledContent
    name: str | None = None


class AssistantMessage(_Request):
    role: Literal["assistant"]
    content: Content | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = None
    name: str | None = None


class ToolMessage(_Request):
    role: Literal["tool"]
    content: Content | None = None
    tool_call_id: str = ""
    name: str | None = None


Message = Annotated[SystemMessage | UserMessage | AssistantMessage | ToolMessage,
                    Field(discriminator="role")]


class FunctionDefinition(_Request):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of the arguments (what llama.cpp's "
                                  "json-schema-to-grammar converts)")
    strict: StrictBool | None = None


class FunctionTool(_Request):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class _ChosenFunction(_Request):
    name: str


class ToolChoiceFunction(_Request):
    type: Literal["function"] = "function"
    function: _ChosenFunction


class JsonSchemaSpec(_Request):
    name: str = "response"
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    strict: StrictBool | None = None


class TextFormat(_Request):
    type: Literal["text"]


class JsonObjectFormat(_Request):
    type: Literal["json_object"]


class JsonSchemaFormat(_Request):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]


class StreamOptions(_Request):
    """``stream_options``: ``include_usage`` adds a last chunk with the usage and no choices."""

    include_usage: StrictBool = False


class LocalDocsOptions(_Request):
    """The ``localdocs`` extension of chat completions.

    Attributes:
        collections: LocalDocs collections to search (1-8 names).
        k: excerpts given to the model (1-20): the best of one collection, or of several
            collections' rankings merged by reciprocal rank fusion (their scores are not
            comparable; :func:`gpt4all_rag.localdocs.search_collections`).
        mode: ``hybrid`` (in each collection, dense and BM25 scores fused by a convex
            combination, :func:`gpt4all_rag.localdocs.retrieval.convex_score_fusion`),
            ``dense`` or ``keyword``.
    """

    collections: list[CollectionName] = Field(min_length=1, max_length=8)
    k: int = Field(default=3, ge=1, le=20)
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"


class _Sampling(_Request):
    """Sampling fields shared by both completion endpoints (see gpt4all_rag.engine.sampling; unset
    fields take the schema's defaults)."""

    # Bounds: the sampling schema's (gpt4all_rag.engine.sampling.RANGES), not restated here.
    temperature: float | None = Field(default=None, **json_bounds("temp"))
    top_p: float | None = Field(default=None, **json_bounds("top_p"))
    max_tokens: int | None = Field(default=None, **json_bounds("max_tokens"))
    stop: (Annotated[str, Field(min_length=1)]
           | Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=4)] | None) = None
    seed: int | None = Field(default=None, description="its low 32 bits seed the sampler")
    # Accepted at their neutral value only; the API description says so (the validator below
    # gives the reason in its message).
    frequency_penalty: float | None = Field(0.0, json_schema_extra={"minimum": 0, "maximum": 0})
    presence_penalty: float | None = Field(0.0, json_schema_extra={"minimum": 0, "maximum": 0})
    n: int | None = Field(1, json_schema_extra={"minimum": 1, "maximum": 1})
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = Field(
        None, json_schema_extra={"maxProperties": 0})
    user: str | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    # extensions (llama.cpp's server names)
    top_k: int | None = Field(default=None, **json_bounds("top_k"))
    min_p: float | None = Field(default=None, **json_bounds("min_p"))
    repeat_penalty: float | None = Field(default=None, **json_bounds("repeat_penalty"))
    repeat_last_n: int | None = Field(default=None, **json_bounds("repeat_last_n"))
    grammar: Grammar | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("n must be 1: one choice per request")
        return value

    @field_validator("frequency_penalty", "presence_penalty")
    @classmethod
    def _no_penalty(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value not in (None, 0, 0.0):
            raise ValueError(f"{info.field_name} is not supported (use the repeat_penalty extension)")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _no_bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value:
            if not all(k.isdigit() for k in value):
                raise ValueError("logit_bias keys must be token ids")
            raise ValueError("logit_bias is not supported (use grammar to constrain tokens)")
        return value

    def sampling(self) -> dict[str, Any]:
        """The sampling options the request sets (OpenAI's names; unset ones are left out)."""
        out = {"temperature": self.temperature, "top_p": self.top_p,
               "max_tokens": self.max_tokens, "stop": self.stop, "seed": self.seed,
               "top_k": self.top_k, "min_p": self.min_p, "repeat_penalty": self.repeat_penalty,
               "repeat_last_n": self.repeat_last_n, "grammar": self.grammar}
        return {k: v for k, v in out.items() if v is not None}

    def sampling_params(self, config: Any) -> SamplingParams:
        """The request's :class:`~gpt4all_rag.engine.sampling.SamplingParams`, ``max_tokens``
        within the server's limit (``config``: a ``ServerConfig``).

        Raises:
            InvalidParameterError: a value the sampler cannot take (HTTP 400).
        """
        options = self.sampling()
        return SamplingParams.from_options(**{**options, "max_tokens": config.max_tokens(options.get("max_tokens"))})


class ChatInput(_Request):
    """What a chat prompt is made of: the fields a chat completion renders (shared by
    ``POST /v1/chat/completions`` and ``POST /tokenize``)."""

    model: ModelName | None = None
    messages: list[Message] = Field(min_length=1)
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceFunction | None = Field(
        default=None, description="a function named here must be one of tools")
    response_format: ResponseFormat | None = None
    enable_thinking: StrictBool | None = None

    @field_validator("tool_choice")
    @classmethod
    def _chosen_tool_exists(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, ToolChoiceFunction):
            names = [t.function.name for t in info.data.get("tools") or []]
            if value.function.name not in names:
                raise ValueError(f"tool_choice names {value.function.name!r}, which is not among "
                                 "the tools (a JSON Schema cannot say so: see the description)")
        return value

    def chat_arguments(self) -> dict[str, Any]:
        """``messages``, ``tools``, ``tool_choice`` and ``response_format`` as the chat core
        takes them (OpenAI's JSON: fields the client did not send left out)."""
        def plain(value: Any) -> Any:
            if isinstance(value, list):
                return [plain(v) for v in value]
            if isinstance(value, BaseModel):
                return value.model_dump(by_alias=True, exclude_unset=True)
            return value

        return {"messages": plain(self.messages), "tools": plain(self.tools),
                "tool_choice": plain(self.tool_choice), "response_format": plain(self.response_format)}


class ChatCompletionRequest(ChatInput, _Sampling):
    """``POST /v1/chat/completions``."""

    max_completion_tokens: int | None = Field(default=None, **json_bounds("max_tokens"))
    parallel_tool_calls: StrictBool | None = None
    logprobs: StrictBool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20, description="needs logprobs: true")
    localdocs: LocalDocsOptions | None = None

    @field_validator("top_logprobs")
    @classmethod
    def _with_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and not info.data.get("logprobs"):
            raise ValueError("top_logprobs needs logprobs: true")
        return value

    def sampling(self) -> dict[str, Any]:
        out = super().sampling()
        if self.max_completion_tokens is not None:
            out["max_tokens"] = self.max_completion_tokens
        return out


class TokenizeText(_Request):
    """``POST /tokenize`` of a text (llama.cpp's server's shape): ``{"tokens": [ids]}``, or
    with ``with_pieces`` ``[{"id", "piece"}]`` (a piece that is not whole UTF-8 as its bytes)."""

    model: ModelName | None = None
    content: str
    add_special: StrictBool = Field(default=True, description="the model's BOS/EOS as it adds them")
    with_pieces: StrictBool = False


class TokenizeMessages(ChatInput):
    """``POST /tokenize`` of chat messages: the tokens a chat completion of the same fields
    would feed the model (its ``usage.prompt_tokens`` is their number)."""

    with_pieces: StrictBool = False


class DetokenizeRequest(_Request):
    """``POST /detokenize``: ``{"content": text}`` of token ids."""

    model: ModelName | None = None
    tokens: list[TokenId]


class CompletionRequest(_Sampling):
    """``POST /v1/completions``: plain continuation of ``prompt`` (base models)."""

    model: ModelName | None = None
    prompt: Annotated[str, Field(min_length=1)] | Annotated[list[Annotated[str, Field(min_length=1)]],
                                                             Field(min_length=1, max_length=1)]
    logprobs: int | None = Field(default=None, ge=0, le=5)
    echo: StrictBool = Field(False, json_schema_extra={"enum": [False]})
    suffix: str | None = Field(None, json_schema_extra={"maxLength": 0})
    best_of: int | None = Field(None, json_schema_extra={"minimum": 1, "maximum": 1})

    @field_validator("best_of")
    @classmethod
    def _one_candidate(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("best_of must be 1: one candidate per request")
        return value

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, value: bool) -> bool:
        if value:
            raise ValueError("echo is not supported")
        return value

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, value: str | None) -> str | None:
        if value:
            raise ValueError("suffix is not supported")
        return value

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
            task prefix (Nomic Embed ``search_document`` / ``search_query``; none for MiniLM;
            :meth:`gpt4all_rag.Embed4All.resolve_prefix`). A model whose prefixes are unknown
            is refused (400, ``param: input_type``).
    """

    model: ModelName | None = None
    input: (Annotated[str, Field(min_length=1)]
            | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1, max_length=2048)]
            | Annotated[list[TokenId], Field(min_length=1, max_length=2048)]
            | Annotated[list[Annotated[list[TokenId], Field(min_length=1)]], Field(min_length=1, max_length=2048)])
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] = "float"
    input_type: Literal["document", "query"] = "document"
    user: str | None = None



class SearchRequest(_Request):
    """``POST /v1/collections/{name}/search``: ``LocalDocs.search`` on one collection.

    Attributes:
        query: the search text.
        k: results (1-50), best first.
        mode: ``hybrid`` (default: dense and BM25 scores fused by a convex combination,
            :func:`gpt4all_rag.localdocs.retrieval.convex_score_fusion`; scores in [0, 1]),
            ``dense`` (cosine similarity) or ``keyword`` (BM25).
    """

    query: str = Field(min_length=1)
    k: int = Field(default=5, ge=1, le=50)
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"


class ErrorBody(BaseModel):
    """OpenAI's error object."""

    message: str
    type: str
    param: str | None
    code: str


class ErrorResponse(BaseModel):
    """Every error the server answers: ``{"error": {...}}`` (OpenAI's shape)."""

    error: ErrorBody
