"""The state of ``GPT4All.chat_session()``: the history the seed's chat sessions keep.

A session is history on top of the engine: each ``generate()`` appends the user's message, runs
one stateless chat completion of the whole history (``Llama.chat_text`` with
``truncation="auto"``) and appends the reply (:meth:`ChatSession.answer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .engine.templates import MessageType
from .engine.types import ChatCompletion

__all__ = ["ChatSession", "LOCALDOCS_PROMPT_KEY"]

#: History key holding the user message as the model saw it (with retrieved context).
LOCALDOCS_PROMPT_KEY = "localdocs_prompt"


@dataclass
class ChatSession:
    """State of an open ``chat_session()``: its chat template's source, the message history
    and, when LocalDocs is attached, the retrieval settings."""

    template_source: str
    history: list[MessageType] = field(default_factory=list)
    localdocs: list[Any] = field(default_factory=list)  # LocalDocs collections searched each turn
    localdocs_k: int = 3
    localdocs_template: str | None = None

    def shown(self) -> list[dict[str, Any]]:
        """The history as the model sees it: a LocalDocs turn with its retrieved context."""
        return [dict(m, content=m[LOCALDOCS_PROMPT_KEY]) if LOCALDOCS_PROMPT_KEY in m else m
                for m in self.history]

    def drop_unanswered_turn(self) -> None:
        """After a failed turn, remove its user message so the history stays as it was."""
        if self.history and self.history[-1]["role"] == "user":
            self.history.pop()

    def answer(self, completion: ChatCompletion) -> None:
        """Append the reply: its content, and apart from it its reasoning and tool calls."""
        message = completion.message
        reply: dict[str, Any] = {"role": "assistant", "content": message.content or ""}
        if message.reasoning_content:
            reply["reasoning_content"] = message.reasoning_content
        if message.tool_calls:
            reply["tool_calls"] = [c.to_dict() for c in message.tool_calls]
        self.history.append(reply)  # type: ignore[arg-type]
