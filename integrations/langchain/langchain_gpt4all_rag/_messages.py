"""LangChain messages to chat-template messages, and the tool-call protocol of the chat model.

Private module. How a conversation reaches the model (see :class:`~.ChatGPT4All`):

* All system messages are merged, in order, into one leading system message: most GGUF chat
  templates accept a single system message, and only at the start.
* Consecutive user messages (or assistant messages) are merged into one, separated by a blank
  line: several templates (Mistral, Llama 2, Gemma) reject roles that do not alternate.
* A tool result becomes a ``tool`` message when the template knows that role, else a user
  message that says which tool and call it answers.
* An assistant message with tool calls is rendered as its text followed by one JSON object
  ``{"name": ..., "arguments": {...}}`` per call: the format the model is asked to produce.
* Text content blocks are joined by newlines; tool-use and reasoning blocks are skipped (the
  tool calls carry the same data); images, audio and files raise ``ValueError``.
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


def tool_call_text(name: str, args: Any) -> str:
    """The JSON text of one tool call, as the model is asked to write it."""
    return json.dumps({"name": name, "arguments": args}, ensure_ascii=False)


def template_knows_tool_role(source: str) -> bool:
    """Whether a chat template handles messages with role ``tool`` (it names that role)."""
    return "'tool'" in source or '"tool"' in source


def to_template_messages(messages: Sequence[BaseMessage], *, tool_role: bool,
                         extra_system: str | None = None) -> list[dict[str, str]]:
    """Map LangChain messages to ``[{"role", "content"}]`` for a chat template.

    Args:
        messages: the conversation.
        tool_role: the template knows the ``tool`` role (else tool results become user turns).
        extra_system: instructions appended to the system message (tools, JSON schema).

    Raises:
        ValueError: an unsupported message type or content block.
    """
    system: list[str] = []
    turns: list[dict[str, str]] = []
    for message in messages:
        role, text = _role_and_text(message, tool_role)
        if role == "system":
            if text:
                system.append(text)
            continue
        if turns and turns[-1]["role"] == role and role in ("user", "assistant"):
            turns[-1]["content"] = "\n\n".join(t for t in (turns[-1]["content"], text) if t)
        else:
            turns.append({"role": role, "content": text})
    if extra_system:
        system.append(extra_system)
    if system:
        turns.insert(0, {"role": "system", "content": "\n\n".join(system)})
    return turns


def _role_and_text(message: BaseMessage, tool_role: bool) -> tuple[str, str]:
    if isinstance(message, SystemMessage):
        return "system", content_text(message.content)
    if isinstance(message, HumanMessage):
        return "user", content_text(message.content)
    if isinstance(message, AIMessage):
        text = content_text(message.content)
        calls = [tool_call_text(c["name"], c["args"]) for c in message.tool_calls]
        return "assistant", "\n".join(t for t in (text, *calls) if t)
    if isinstance(message, (ToolMessage, FunctionMessage)):
        text = content_text(message.content)
        if tool_role:
            return "tool", text
        name = message.name or "the tool"
        call_id = getattr(message, "tool_call_id", None)
        failed = getattr(message, "status", "success") == "error"
        head = f"{'Error from' if failed else 'Result of'} {name}"
        if call_id:
            head += f" (call {call_id})"
        return "user", f"{head}: {text}"
    if isinstance(message, ChatMessage):
        role = message.role if message.role in ("system", "user", "assistant") else "user"
        if message.role == "tool" and tool_role:
            role = "tool"
        return role, content_text(message.content)
    raise ValueError(f"unsupported message type {type(message).__name__} for ChatGPT4All")


# -- tools ------------------------------------------------------------------------------------
def tools_instruction(tools: Sequence[dict[str, Any]], *, required: bool) -> str:
    """System instructions that describe the bound tools and the call format."""
    lines = [json.dumps({"name": t["function"]["name"],
                         "description": t["function"].get("description", ""),
                         "parameters": t["function"].get("parameters", {})},
                        ensure_ascii=False) for t in tools]
    head = ("You can call these tools. To call one, reply with only a JSON object "
            '{"name": <tool name>, "arguments": <object of arguments>}.')
    if not required:
        head += " If no tool is needed, answer in plain text instead."
    return head + "\nTools:\n" + "\n".join(lines)


def schema_instruction(schema: dict[str, Any] | None) -> str:
    """System instructions for structured output."""
    if schema is None:
        return "Reply with only a JSON object."
    return ("Reply with only a JSON object that follows this JSON schema:\n"
            + json.dumps(schema, ensure_ascii=False))


def tool_call_schema(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The JSON schema of one call to any of ``tools`` (OpenAI tool dicts).

    ``$defs`` of the tools' parameter schemas are hoisted to the root, where their local
    ``$ref`` pointers (``#/$defs/...``) resolve.
    """
    defs: dict[str, Any] = {}
    options: list[dict[str, Any]] = []
    for t in tools:
        fn = t["function"]
        params = dict(fn.get("parameters") or {"type": "object", "properties": {}})
        defs.update(params.pop("$defs", {}) or {})
        params.pop("definitions", None)
        if not params.get("properties") and params.get("type", "object") == "object":
            params = {"type": "object", "properties": {}, "additionalProperties": False}
        options.append({"type": "object",
                        "properties": {"name": {"const": fn["name"]}, "arguments": params},
                        "required": ["name", "arguments"], "additionalProperties": False})
    schema: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
    if defs:
        schema = {**schema, "$defs": defs}
    return schema


def new_call_id() -> str:
    """A fresh tool-call id."""
    return f"call_{uuid.uuid4().hex[:24]}"


def parse_tool_call(text: str, tool_names: Sequence[str], call_id: str,
                    ) -> tuple[ToolCall | None, InvalidToolCall | None]:
    """Parse the model's JSON tool call.

    Returns:
        ``(tool_call, None)`` for a complete call to a bound tool, else ``(None, invalid)``
        with an error message (e.g. generation stopped at ``max_tokens`` mid-object).
    """
    raw = text.strip()
    try:
        obj = json.loads(raw, strict=False)
    except json.JSONDecodeError as exc:
        return None, InvalidToolCall(name=None, args=raw, id=call_id, type="invalid_tool_call",
                                     error=f"the tool call is not complete JSON ({exc}); if "
                                     "generation stopped at max_tokens, raise max_tokens")
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None, InvalidToolCall(name=None, args=raw, id=call_id, type="invalid_tool_call",
                                     error='expected {"name": ..., "arguments": {...}}')
    name, args = obj["name"], obj.get("arguments", {})
    if name not in tool_names or not isinstance(args, dict):
        return None, InvalidToolCall(name=name, args=raw, id=call_id, type="invalid_tool_call",
                                     error=f"unknown tool {name!r} or arguments not an object")
    return ToolCall(name=name, args=args, id=call_id, type="tool_call"), None
