"""From a chat session or a raw prompt to the tokens the model evaluates.

:class:`PromptBuilder` renders a session's history with its Jinja template, tokenizes it so
that message text never turns into control tokens, and leaves out the oldest turns of a
conversation that outgrew the context window.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from .. import _native, errors
from .templates import ChatTemplate, MessageType

__all__ = ["ChatSession", "LOCALDOCS_PROMPT_KEY", "PromptBuilder"]

logger = logging.getLogger("gpt4all_rag")


@dataclass
class ChatSession:
    """State of an open ``chat_session()``: its compiled template, the message history and,
    when LocalDocs is attached, the retrieval settings."""

    template: ChatTemplate
    history: list[MessageType] = field(default_factory=list)
    localdocs: list[Any] = field(default_factory=list)  # LocalDocs collections searched each turn
    localdocs_k: int = 3
    localdocs_template: str | None = None
    #: Further template variables (``tools``, ``enable_thinking``, ...).
    template_vars: dict[str, Any] = field(default_factory=dict)


#: History key holding the user message as the model saw it (with retrieved context).
LOCALDOCS_PROMPT_KEY = "localdocs_prompt"


class PromptBuilder:
    """Prompt rendering and tokenization for one loaded chat model.

    Args:
        model: the loaded model (its tokenizer and context size are used).
        special_tokens: ``bos_token``, ``eos_token``, ... as the template sees them.
        add_bos: whether the model's tokenizer adds a BOS token.
    """

    def __init__(self, model: _native.NativeModel, special_tokens: dict[str, str],
                 add_bos: bool) -> None:
        self.model = model
        self.special_tokens = special_tokens
        self.add_bos = add_bos
        # A turn re-renders the whole history (and again for each turn dropped to fit): each
        # message is checked for special-token text once, not on every render.
        self._has_special_text = functools.lru_cache(maxsize=1024)(self._tokens_change_when_special)

    def _tokens_change_when_special(self, content: str) -> bool:
        return self.model.tokenize(content, add_special=False, parse_special=True) \
            != self.model.tokenize(content, add_special=False, parse_special=False)

    def prompt_tokens(self, prompt: str, session: ChatSession | None) -> tuple[list[int], int]:
        """The tokens of a raw ``prompt`` (no session) or of ``session``'s history, whose last
        message is the new user turn; returns ``(tokens, messages dropped to fit)``.

        A conversation longer than the context window (less 4 tokens for the reply to start)
        leaves out its oldest turns, then the system message, from the model's view (the
        history keeps them); a warning is logged.

        Raises:
            ContextOverflowError: the prompt or the newest message alone does not fit.
            InvalidParameterError: an empty raw prompt for a model without BOS token.
            ChatTemplateError: the template fails or renders nothing.
        """
        n_ctx = self.model.n_ctx
        limit = n_ctx - 4
        if session is None:
            tokens = self.tokenize(prompt)
            if len(tokens) > limit:
                raise errors.ContextOverflowError(
                    f"Your message was too long and could not be processed ({len(tokens)} > {limit}).")
            if not tokens:
                raise errors.InvalidParameterError("the prompt is empty and the model adds no BOS token")
            return tokens, 0
        history = session.history
        last = self.chat_tokens(session, history[-1:])
        if len(last) > limit:
            raise errors.ContextOverflowError(
                f"Your message was too long and could not be processed ({len(last)} > {limit}).")
        system = history[:1] if history and history[0].get("role") == "system" else []
        rest = history[len(system):]
        dropped = 0
        while True:
            tokens = self.chat_tokens(session, system + rest)
            if len(tokens) <= limit or len(rest) <= 1:
                break
            # Drop the oldest turn: a user message and the replies that follow it.
            cut = 1
            while cut < len(rest) - 1 and rest[cut].get("role") != "user":
                cut += 1
            rest = rest[cut:]
            dropped += cut
        if len(tokens) > limit and system:
            tokens = self.chat_tokens(session, rest)
            dropped += 1
        if len(tokens) > limit:
            raise errors.ContextOverflowError(
                f"Your message was too long and could not be processed ({len(tokens)} > {limit}).")
        if dropped:
            logger.warning("the conversation outgrew the %d-token context: %d oldest message(s) "
                           "left out of the prompt", n_ctx, dropped)
        return tokens, dropped

    def chat_tokens(self, session: ChatSession, messages: list[MessageType]) -> list[int]:
        """Render ``messages`` with the session's template and tokenize the prompt.

        The template's own text is tokenized with special-token parsing (that is how
        ``<|im_start|>`` and friends become control tokens), the text of the messages without
        it: a message (or a retrieved document) that contains ``<|im_end|>`` stays text and
        cannot end its turn or forge another role's. Only when a message's tokens change under
        special parsing is the prompt tokenized in pieces; to find where that message is, the
        template is rendered once more with a marker in its place. A template that rewrites
        message text other than by trimming it cannot be followed that way: the prompt is then
        tokenized whole, as llama.cpp and transformers do, and a warning is logged.
        """
        # The model sees a LocalDocs turn with its retrieved context; the history keeps both.
        shown = [{"role": m["role"], "content": m.get(LOCALDOCS_PROMPT_KEY, m["content"])}
                 if LOCALDOCS_PROMPT_KEY in m else m for m in messages]
        text = self.render(session, shown)
        model = self.model
        literal = [i for i, m in enumerate(shown)
                   if isinstance(c := m.get("content"), str) and c and self._has_special_text(c)]
        if not literal:
            return self.tokenize(text)
        spans = self._content_spans(session, shown, literal, text)
        if spans is None:
            logger.warning("a message contains special-token text and the chat template rewrites "
                           "messages: the prompt is tokenized whole, that text as control tokens")
            return self.tokenize(text)
        tokens: list[int] = []
        pos = 0
        for start, end in spans:
            if start > pos or pos == 0:  # at 0, even an empty head brings the BOS token
                head = text[pos:start]
                tokens += self.tokenize(head) if pos == 0 else \
                    model.tokenize(head, add_special=False, parse_special=True)
            tokens += model.tokenize(text[start:end], add_special=False, parse_special=False)
            pos = end
        if pos < len(text):
            tokens += model.tokenize(text[pos:], add_special=False, parse_special=True)
        return tokens

    def _content_spans(self, session: ChatSession, shown: list[MessageType], literal: list[int],
                       text: str) -> list[tuple[int, int]] | None:
        """Character spans of the contents of ``shown[i]`` (i in ``literal``) in ``text``, in
        order, or None when the template does not copy them verbatim (or trimmed)."""
        marks = {i: f"\ue000{i}\ue001" for i in literal}
        if any(m in text for m in marks.values()):
            return None
        masked = [dict(m, content=marks[i]) if i in marks else m for i, m in enumerate(shown)]
        pieces = re.split("(\ue000\\d+\ue001)", self.render(session, masked))
        for transform in (lambda c: c, str.strip):
            spans: list[tuple[int, int]] = []
            out: list[str] = []
            pos = 0
            for piece in pieces:
                mark = re.fullmatch("\ue000(\\d+)\ue001", piece)
                if mark:
                    piece = transform(str(shown[int(mark[1])]["content"]))
                    if piece:
                        spans.append((pos, pos + len(piece)))
                out.append(piece)
                pos += len(piece)
            if "".join(out) == text:
                return spans
        return None

    def render(self, session: ChatSession, messages: list[MessageType]) -> str:
        text = session.template.render(messages, add_generation_prompt=True,
                                       special_tokens=self.special_tokens, **session.template_vars)
        if not text:
            raise errors.ChatTemplateError("the chat template rendered an empty prompt")
        return text

    def tokenize(self, text: str) -> list[int]:
        """Tokens of ``text`` with special-token parsing, BOS added unless ``text`` starts with it."""
        bos = self.special_tokens.get("bos_token")
        add_special = not (self.add_bos and bos and text.startswith(bos))
        return self.model.tokenize(text, add_special=add_special, parse_special=True)
