"""Anthropic's Messages API (``POST /v1/messages``, ``POST /v1/messages/count_tokens``) on the
chat core, after Anthropic's API reference, so that the ``anthropic`` SDK and the tools built on
it (Claude Code and other agents) can use local models and LocalDocs.

Request fields and how they map onto :meth:`GPT4All.create_chat_completion`:

* ``system`` (a string or text blocks) -> a system message; ``messages`` with ``text``,
  ``tool_use`` (assistant), ``tool_result`` (user; ``is_error`` prefixes ``Error: ``) and
  ``thinking`` (assistant; kept as the message's reasoning) blocks -> OpenAI-style messages
  (a ``tool_result`` is a ``tool`` message answering its ``tool_use_id``).
* ``tools`` (``name``, ``description``, ``input_schema``) -> function tools, called in the
  model's native format; ``tool_choice`` ``auto`` / ``any`` / ``tool`` / ``none`` -> ``auto``,
  ``required``, that function, ``none``; ``disable_parallel_tool_use`` keeps the first call.
* A last ``assistant`` message with text is the start of the reply ("prefill"): the model
  continues it in the same turn and the reply's content is the continuation
  (``continue_final_message`` of the chat core; not with a reply form forced from its start:
  ``grammar``, ``tool_choice`` ``any``/``tool``, 400).
* ``thinking`` ``enabled`` / ``disabled`` -> ``enable_thinking`` for templates that switch
  reasoning (Qwen3, ...); reasoning comes back as a ``thinking`` block (empty ``signature``:
  nothing is signed here). ``budget_tokens`` is accepted and not enforced.
* ``max_tokens`` (required, within ``--max-tokens-limit``), ``stop_sequences``,
  ``temperature`` (0-1), ``top_p``, ``top_k``; ``metadata.user_id`` is accepted and unused.
* Extensions: ``localdocs`` as in chat completions, the excerpts' references coming back as
  a top-level ``references`` list (in a stream, in ``message_start``'s message); ``grammar``
  (GBNF) as in chat completions.

The reply is a ``message``: content blocks (``thinking``, ``text``, ``tool_use``),
``stop_reason`` ``end_turn`` / ``max_tokens`` / ``stop_sequence`` (with ``stop_sequence``) /
``tool_use``, and ``usage`` (``input_tokens``, ``output_tokens``). A stream is Anthropic's event
sequence: ``message_start``, per block ``content_block_start`` / ``content_block_delta``
(``thinking_delta``, ``text_delta``, ``input_json_delta``) / ``content_block_stop``,
``message_delta`` (``stop_reason``, ``usage``), ``message_stop``. Errors are Anthropic's
``{"type": "error", "error": {"type", "message"}}``, a busy server its 529 ``overloaded_error``.

Not implemented: image, document, search-result and server-tool content blocks (400),
prompt caching (``cache_control`` is ignored), ``service_tier``, ``container``, MCP servers,
citations in the reply (see ``references``).
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Annotated, Any, AsyncIterator, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictBool

from ..engine.chat import is_reply_start
from ..engine.sampling import SamplingParams, json_bounds
from ..engine.types import ChatCompletion, ChatCompletionChunk
from .guards import TextRoute
from .metrics import Metrics
from .pool import ModelPool, ServerConfig
from .schemas import Grammar, LocalDocsOptions, ModelName, _Request
from .serving import ANTHROPIC, chat_stream, complete, in_thread, retrieve, tool_calls, unless_client_leaves

__all__ = ["AnthropicErrorResponse", "CountTokensRequest", "MessagesRequest", "messages_router", "to_chat"]


class AnthropicErrorBody(BaseModel):
    type: str
    message: str


class AnthropicErrorResponse(BaseModel):
    """Every error of this API: ``{"type": "error", "error": {"type", "message"}}``."""

    type: Literal["error"]
    error: AnthropicErrorBody


class TextBlock(_Request):
    type: Literal["text"]
    text: str = Field(min_length=1)  # Anthropic refuses empty text blocks


class ToolUseBlock(_Request):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(_Request):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[TextBlock] = ""
    is_error: StrictBool = False


class ThinkingBlock(_Request):
    type: Literal["thinking"]
    thinking: str
    signature: str = ""


class RedactedThinkingBlock(_Request):
    type: Literal["redacted_thinking"]
    data: str


UserBlock = Annotated[TextBlock | ToolResultBlock, Field(discriminator="type")]
AssistantBlock = Annotated[TextBlock | ToolUseBlock | ThinkingBlock | RedactedThinkingBlock,
                           Field(discriminator="type")]


class UserMessage(_Request):
    role: Literal["user"]
    content: Annotated[str, Field(min_length=1)] | Annotated[list[UserBlock], Field(min_length=1)]


class AssistantMessage(_Request):
    role: Literal["assistant"]
    content: str | list[AssistantBlock]


MessageParam = Annotated[UserMessage | AssistantMessage, Field(discriminator="role")]


class Tool(_Request):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    input_schema: dict[str, Any]


class ToolChoiceAuto(_Request):
    type: Literal["auto"]
    disable_parallel_tool_use: StrictBool = False


class ToolChoiceAny(_Request):
    type: Literal["any"]
    disable_parallel_tool_use: StrictBool = False


class ToolChoiceTool(_Request):
    type: Literal["tool"]
    name: str
    disable_parallel_tool_use: StrictBool = False


class ToolChoiceNone(_Request):
    type: Literal["none"]


ToolChoice = Annotated[ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone,
                       Field(discriminator="type")]


class ThinkingEnabled(_Request):
    type: Literal["enabled"]
    budget_tokens: int = Field(ge=1024, description="accepted, not enforced")


class ThinkingDisabled(_Request):
    type: Literal["disabled"]


Thinking = Annotated[ThinkingEnabled | ThinkingDisabled, Field(discriminator="type")]


class Metadata(_Request):
    user_id: str | None = None


class CountTokensRequest(_Request):
    """``POST /v1/messages/count_tokens``: the prompt tokens a message request would take."""

    model: ModelName | None = None
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = Field(default=None, description="a tool named here must be one of tools")
    thinking: Thinking | None = None


class MessagesRequest(CountTokensRequest):
    """``POST /v1/messages``."""

    max_tokens: int = Field(ge=1)
    stop_sequences: list[Annotated[str, Field(min_length=1)]] | None = None
    stream: StrictBool = False
    temperature: float | None = Field(default=None, ge=0, le=1)  # Anthropic's range
    top_p: float | None = Field(default=None, **json_bounds("top_p"))
    top_k: int | None = Field(default=None, **json_bounds("top_k"))
    metadata: Metadata | None = None
    localdocs: LocalDocsOptions | None = None
    grammar: Grammar | None = None


def _text(content: str | list[TextBlock]) -> str:
    return content if isinstance(content, str) else "\n".join(b.text for b in content)


def to_chat(req: CountTokensRequest) -> dict[str, Any]:
    """The chat core's arguments (``messages``, ``tools``, ``tool_choice``,
    ``enable_thinking``, ``continue_final_message``) of an Anthropic request: a last assistant
    message with text is the start of the reply, which the model continues."""
    messages: list[dict[str, Any]] = []
    if req.system:
        messages.append({"role": "system", "content": _text(req.system)})
    for m in req.messages:
        if isinstance(m.content, str):
            messages.append({"role": m.role, "content": m.content})
            continue
        if isinstance(m, UserMessage):
            texts: list[str] = []
            for block in m.content:
                if isinstance(block, ToolResultBlock):
                    result = _text(block.content)
                    messages.append({"role": "tool", "tool_call_id": block.tool_use_id,
                                     "content": f"Error: {result}" if block.is_error else result})
                else:
                    texts.append(block.text)
            if texts:
                messages.append({"role": "user", "content": "\n".join(texts)})
            continue
        reply: dict[str, Any] = {"role": "assistant", "content": "\n".join(
            b.text for b in m.content if isinstance(b, TextBlock)) or None}
        thinking = "".join(b.thinking for b in m.content if isinstance(b, ThinkingBlock))
        if thinking:
            reply["reasoning_content"] = thinking
        calls = [{"id": b.id, "type": "function", "function": {"name": b.name, "arguments": json.dumps(b.input)}}
                 for b in m.content if isinstance(b, ToolUseBlock)]
        if calls:
            reply["tool_calls"] = calls
        messages.append(reply)
    tools = [{"type": "function", "function": {"name": t.name, "description": t.description or "",
                                               "parameters": t.input_schema}} for t in req.tools or []]
    choice: Any = None
    if isinstance(req.tool_choice, ToolChoiceAny):
        choice = "required"
    elif isinstance(req.tool_choice, ToolChoiceTool):
        choice = {"type": "function", "function": {"name": req.tool_choice.name}}
    elif isinstance(req.tool_choice, (ToolChoiceAuto, ToolChoiceNone)):
        choice = req.tool_choice.type
    thinking = None if req.thinking is None else isinstance(req.thinking, ThinkingEnabled)
    prefill = bool(messages) and is_reply_start(messages[-1])
    return {"messages": messages, "tools": tools or None, "tool_choice": choice,
            "enable_thinking": thinking, "continue_final_message": prefill}


def _stop_reason(finish_reason: str | None, stop_sequence: str | None, asked: list[str]) -> tuple[str, str | None]:
    """Anthropic's ``stop_reason`` and ``stop_sequence`` of the chat core's finish."""
    if finish_reason == "tool_calls":
        return "tool_use", None
    if finish_reason == "length":
        return "max_tokens", None
    if stop_sequence is not None and stop_sequence in asked:
        return "stop_sequence", stop_sequence
    return "end_turn", None


def _tool_use(call: Any) -> dict[str, Any]:
    try:
        arguments = json.loads(call.arguments)
    except json.JSONDecodeError:
        arguments = {"arguments": call.arguments}
    return {"type": "tool_use", "id": call.id, "name": call.name,
            "input": arguments if isinstance(arguments, dict) else {"arguments": arguments}}


def _single_call(req: MessagesRequest) -> bool:
    return bool(req.tool_choice is not None and getattr(req.tool_choice, "disable_parallel_tool_use", False))


def _message(req: MessagesRequest, out: ChatCompletion, references: list[dict[str, Any]] | None) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if out.message.reasoning_content:
        content.append({"type": "thinking", "thinking": out.message.reasoning_content, "signature": ""})
    if out.message.content:
        content.append({"type": "text", "text": out.message.content})
    calls = out.message.tool_calls[:1] if _single_call(req) else out.message.tool_calls
    content += [_tool_use(c) for c in calls]
    reason, sequence = _stop_reason(out.finish_reason, out.stop_sequence, req.stop_sequences or [])
    body = {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
            "model": out.model, "content": content, "stop_reason": reason, "stop_sequence": sequence,
            "usage": {"input_tokens": out.usage.prompt_tokens, "output_tokens": out.usage.completion_tokens}}
    if references is not None:
        body["references"] = references
    return body


async def _events(req: MessagesRequest, filename: str, input_tokens: list[int],
                  references: list[dict[str, Any]] | None,
                  chunks: AsyncIterator[ChatCompletionChunk]) -> AsyncIterator[dict[str, Any]]:
    """Anthropic's stream events of the chat core's chunks: one content block per kind of
    delta, in the order they come (thinking, then text), tool calls as whole blocks at the end."""
    start: dict[str, Any] = {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
                             "model": filename, "content": [], "stop_reason": None, "stop_sequence": None,
                             "usage": {"input_tokens": input_tokens[0], "output_tokens": 0}}
    if references is not None:
        start["references"] = references
    yield {"type": "message_start", "message": start}
    index, open_kind = -1, None
    last: ChatCompletionChunk | None = None
    for_kind = {"reasoning_content": ("thinking", "thinking_delta", "thinking"),
                "content": ("text", "text_delta", "text")}
    async for chunk in chunks:
        last = chunk
        for key, (kind, delta_type, field) in for_kind.items():
            piece = chunk.delta.get(key)
            if not piece:
                continue
            if open_kind != kind:
                if open_kind is not None:
                    yield {"type": "content_block_stop", "index": index}
                index, open_kind = index + 1, kind
                block: dict[str, Any] = {"type": kind, field: ""}
                if kind == "thinking":
                    block["signature"] = ""
                yield {"type": "content_block_start", "index": index, "content_block": block}
            yield {"type": "content_block_delta", "index": index, "delta": {"type": delta_type, field: piece}}
    if open_kind == "thinking":
        yield {"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": ""}}
    if open_kind is not None:
        yield {"type": "content_block_stop", "index": index}
    calls = tool_calls(last)
    for call in calls[:1] if _single_call(req) else calls:
        index += 1
        block = _tool_use(call)
        yield {"type": "content_block_start", "index": index,
               "content_block": {**block, "input": {}}}
        yield {"type": "content_block_delta", "index": index,
               "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}}
        yield {"type": "content_block_stop", "index": index}
    finish = last.finish_reason if last is not None else None
    reason, sequence = _stop_reason(finish, last.stop_sequence if last is not None else None,
                                    req.stop_sequences or [])
    output = last.usage.completion_tokens if last is not None and last.usage is not None else 0
    yield {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence},
           "usage": {"output_tokens": output}}
    yield {"type": "message_stop"}


def _prompt_tokens(model: Any, chat: dict[str, Any]) -> list[int]:
    """The prompt tokens of :func:`to_chat`'s arguments, as the chat core renders them."""
    return model.engine.chat_prompt_tokens(chat["messages"], tools=chat["tools"],
                                           tool_choice=chat["tool_choice"], enable_thinking=chat["enable_thinking"],
                                           continue_final_message=chat["continue_final_message"])


def messages_router(pool: ModelPool, config: ServerConfig, metrics: Metrics,
                    responses: dict[int | str, Any]) -> APIRouter:
    """The routes of Anthropic's Messages API on ``pool`` (``responses``: their documented
    statuses)."""
    router = APIRouter(route_class=TextRoute)

    async def prepare(req: MessagesRequest, stop: threading.Event,
                      ) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
        chat = to_chat(req)
        messages, references = await retrieve(pool, req.localdocs, chat["messages"], stop, metrics.search)
        return {**chat, "messages": messages}, references

    @router.post("/v1/messages", responses=responses)
    async def create_message(req: MessagesRequest, request: Request) -> Any:
        filename = pool.resolve(req.model)
        params = SamplingParams.from_options(
            max_tokens=config.max_tokens(req.max_tokens), temperature=req.temperature,
            top_p=req.top_p, top_k=req.top_k, stop=req.stop_sequences, grammar=req.grammar)

        async def answer(stop: threading.Event) -> JSONResponse:
            chat, references = await prepare(req, stop)
            messages = chat.pop("messages")
            out = await complete(pool, filename, messages, params, chat, stop, metrics)
            return JSONResponse(_message(req, out, references))

        async def stream(stop: threading.Event) -> Any:
            chat, references = await prepare(req, stop)
            input_tokens: list[int] = []

            def count(model: Any) -> None:
                input_tokens.append(len(_prompt_tokens(model, chat)))

            def render(chunks: AsyncIterator[ChatCompletionChunk]) -> AsyncIterator[dict[str, Any]]:
                return _events(req, filename, input_tokens, references, chunks)

            options = {k: v for k, v in chat.items() if k != "messages"}
            return await chat_stream(pool, filename, chat["messages"], params, options, stop, metrics, render,
                                     ANTHROPIC, before=count)

        return await unless_client_leaves(request, stream if req.stream else answer)

    @router.post("/v1/messages/count_tokens", responses=responses)
    async def count_tokens(req: CountTokensRequest) -> dict[str, int]:
        filename = pool.resolve(req.model)
        chat = to_chat(req)
        async with pool.lease(filename) as model:
            tokens = await in_thread(threading.Event(), lambda: _prompt_tokens(model, chat))
        return {"input_tokens": len(tokens)}

    return router
