"""LlamaIndex's messages and the engine's results, mapped onto each other (``GPT4AllRag``'s
private helpers): OpenAI-style messages for the chat core, chat template messages, the
assistant's reply, log-probabilities and ``raw`` counters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import (AudioBlock, ChatMessage, DocumentBlock, ImageBlock,
                                              LogProb, MessageRole, TextBlock, VideoBlock)

from gpt4all_rag import errors
from gpt4all_rag.engine.types import TokenLogprob

_ROLES = {"developer": "system", "chatbot": "assistant", "model": "assistant"}
_MEDIA_BLOCKS = (ImageBlock, AudioBlock, VideoBlock, DocumentBlock)


def raw(usage: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {"usage": usage, "finish_reason": finish_reason}


def assistant_message(text: str, reasoning: str | None, calls: list[dict[str, Any]]) -> ChatMessage:
    extra: dict[str, Any] = {}
    if calls:
        extra["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
    if reasoning:
        extra["reasoning_content"] = reasoning
    return ChatMessage(role=MessageRole.ASSISTANT, content=text, additional_kwargs=extra)


def logprobs(tokens: list[TokenLogprob] | None) -> list[list[LogProb]] | None:
    """One list per generated token: the token itself, then its top alternatives."""
    if tokens is None:
        return None
    return [[LogProb(token=t.token, logprob=t.logprob, bytes=t.bytes)]
            + [LogProb(token=a.token, logprob=a.logprob, bytes=a.bytes) for a in t.top_logprobs]
            for t in tokens]


def openai_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """LlamaIndex messages as OpenAI chat messages for the chat core (tool calls and results
    as ``tool_calls`` and ``tool`` messages)."""
    out: list[dict[str, Any]] = []
    for m, base in zip(messages, template_messages(messages)):
        msg: dict[str, Any] = dict(base)
        calls = m.additional_kwargs.get("tool_calls")
        if msg["role"] == "assistant" and calls:
            msg["tool_calls"] = [c if isinstance(c, dict) else c.model_dump() for c in calls]
        if msg["role"] == "tool":
            msg["tool_call_id"] = m.additional_kwargs.get("tool_call_id", "")
            if m.additional_kwargs.get("name"):
                msg["name"] = m.additional_kwargs["name"]
        out.append(msg)
    return out


def template_messages(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """LlamaIndex messages as the ``{"role", "content"}`` dicts chat templates expect."""
    out: list[dict[str, str]] = []
    for m in messages:
        media = [type(b).__name__ for b in m.blocks if isinstance(b, _MEDIA_BLOCKS)]
        if media:
            raise errors.UnsupportedOperationError(
                f"GPT4AllRag handles text only; a {m.role.value} message holds {', '.join(media)}")
        role = m.role.value if isinstance(m.role, MessageRole) else str(m.role)
        text = "\n".join(b.text for b in m.blocks if isinstance(b, TextBlock))
        out.append({"role": _ROLES.get(role, role), "content": text})
    return out

