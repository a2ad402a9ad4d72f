"""LangChain messages to the OpenAI-style messages of gpt4all-rag's chat core.

Private module. How a conversation reaches the model (see :class:`~.ChatGPT4All`):

* All system messages are merged, in order, into one leading system message: most GGUF chat
  templates accept a single system message, and only at the start.
* Consecutive user messages (or assistant messages without tool calls) are merged into one,
  separated by a blank line: several templates (Mistral, Llama 2, Gemma) reject roles that do
  not alternate.
* An assistant message's tool calls and a tool result go down as OpenAI ``tool_calls`` and
  ``tool`` messages; the chat core renders them in the model's own format (or, for a template
  without one, as JSON text and user turns).
* Text content blocks are joined by newlines; tool-use and reasoning blocks are skipped (the
  tool calls carry the same data); images, audio and files raise ``ValueError``.

The core renders the template and tokenizes message text without special-token parsing, so
no message (nor a document retrieved into one) can become a control token.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import InvalidToolCall, ToolCall

__all__: list[str] = []

_SKIPPED_BLOCKS = frozenset({"tool_use", "tool_call", "tool_call_chunk", "reasoning",
                             "thinking", "redacted_thinking", "invalid_tool_call",
                             "server_tool_call", "server_tool_result"})


def content_text(content: str | list[Any]) -> str:
    """The text of a message's content (a string or a list of content blocks).

    Raises:
        ValueError: a block that is not text (image, audio, file ...): GPT4All models read
            text only.
    """
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
            continue
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind not in _SKIPPED_BLOCKS:
            raise ValueError(
                f"content block of type {kind!r} is not supported: GPT4All chat models take "
                "text only")
    return "\n".join(p for p in parts if p)


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """Map LangChain messages to OpenAI chat messages for ``GPT4All.create_chat_completion``.

    Raises:
        ValueError: an unsupported message type or content block.
    """
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        msg = _openai_message(message)
        if msg["role"] == "system":
            if msg["content"]:
                system.append(msg["content"])
            continue
        last = turns[-1] if turns else None
        if last is not None and last["role"] == msg["role"] and msg["role"] in ("user", "assistant") \
                and not last.get("tool_calls") and not msg.get("tool_calls"):
            last["content"] = "\n\n".join(t for t in (last["content"], msg["content"]) if t)
        else:
            turns.append(msg)
    if system:
        turns.insert(0, {"role": "system", "content": "\n\n".join(system)})
    return turns


def _openai_message(message: BaseMessage) -> dict[str, Any]:
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": content_text(message.content)}
    if isinstance(message, HumanMessage):
        return {"role": "user", "content": content_text(message.content)}
    if isinstance(message, AIMessage):
        out: dict[str, Any] = {"role": "assistant", "content": content_text(message.content)}
        if message.tool_calls:
            out["tool_calls"] = [
                {"id": c.get("id") or new_call_id(), "type": "function",
                 "function": {"name": c["name"], "arguments": json.dumps(c["args"], ensure_ascii=False)}}
                for c in message.tool_calls]
        return out
    if isinstance(message, (ToolMessage, FunctionMessage)):
        text = content_text(message.content)
        if getattr(message, "status", "success") == "error":
            text = f"Error: {text}"
        out = {"role": "tool", "content": text, "tool_call_id": getattr(message, "tool_call_id", "") or ""}
        if message.name:
            out["name"] = message.name
        return out
    if isinstance(message, ChatMessage):
        role = message.role if message.role in ("system", "developer", "user", "assistant", "tool") else "user"
        return {"role": role, "content": content_text(message.content)}
    raise ValueError(f"unsupported message type {type(message).__name__} for ChatGPT4All")


# -- tools ------------------------------------------------------------------------------------
def new_call_id() -> str:
    """A fresh tool-call id."""
    return f"call_{uuid.uuid4().hex[:24]}"


def to_langchain_tool_calls(calls: Sequence[Any]) -> tuple[list[ToolCall], list[InvalidToolCall]]:
    """The core's :class:`gpt4all_rag.engine.types.ToolCall` list as LangChain tool calls;
    a call whose arguments are not a JSON object (e.g. cut off by ``max_tokens``) is invalid."""
    valid: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for c in calls:
        try:
            args = json.loads(c.arguments, strict=False)
        except json.JSONDecodeError as exc:
            invalid.append(InvalidToolCall(name=c.name or None, args=c.arguments, id=c.id,
                                           type="invalid_tool_call",
                                           error=f"the arguments are not complete JSON ({exc}); if "
                                           "generation stopped at max_tokens, raise max_tokens"))
            continue
        if not isinstance(args, dict):
            invalid.append(InvalidToolCall(name=c.name, args=c.arguments, id=c.id, type="invalid_tool_call",
                                           error="the arguments are not a JSON object"))
            continue
        valid.append(ToolCall(name=c.name, args=args, id=c.id, type="tool_call"))
    return valid, invalid
