"""From chat messages or a raw prompt to the tokens the model evaluates.

:class:`PromptBuilder` renders messages with a Jinja chat template, tokenizes the prompt so
that message text never turns into control tokens, and (``truncation="auto"``) leaves out the
oldest turns of a conversation that outgrew the context window.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
from typing import Any, Literal

from .. import errors

from .native_model import NativeModel
from .templates import ChatTemplate, MessageType

__all__ = ["PromptBuilder", "REPLY_RESERVE", "TRUNCATION"]

logger = logging.getLogger("gpt4all_rag")

#: What to do with a chat prompt longer than the window (see :meth:`PromptBuilder.fit`).
Truncation = Literal["auto", "disabled"]
TRUNCATION: tuple[str, ...] = ("auto", "disabled")


#: Tokens a prompt leaves free at least: a prompt may take ``n_ctx - REPLY_RESERVE`` tokens, so
#: that the reply can start (the seed's limit, ``n_ctx - 4``).
REPLY_RESERVE = 4


class PromptBuilder:
    """Prompt rendering and tokenization for one loaded chat model.

    Args:
        model: the loaded model (its tokenizer and context size are used).
        special_tokens: ``bos_token``, ``eos_token``, ... as the template sees them.
        add_bos: whether the model's tokenizer adds a BOS token.
    """

    def __init__(self, model: NativeModel, special_tokens: dict[str, str],
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

    @property
    def limit(self) -> int:
        """The most tokens a prompt may take: ``n_ctx - REPLY_RESERVE``."""
        return self.model.n_ctx - REPLY_RESERVE

    def raw_tokens(self, prompt: str) -> list[int]:
        """The tokens of a raw prompt (special-token text parsed, BOS as the model wants).

        Raises:
            ContextOverflowError: the prompt takes more than :attr:`limit` tokens (the seed's
                "Your message was too long" error).
            InvalidParameterError: an empty prompt for a model without BOS token.
        """
        tokens = self.tokenize(prompt)
        if len(tokens) > self.limit:
            raise errors.ContextOverflowError(
                f"Your message was too long and could not be processed ({len(tokens)} > {self.limit}).")
        if not tokens:
            raise errors.InvalidParameterError("the prompt is empty and the model adds no BOS token")
        return tokens

    def fit(self, template: ChatTemplate, messages: list[MessageType], variables: dict[str, Any],
            truncation: Truncation) -> tuple[list[int], int]:
        """The tokens of ``messages`` rendered by ``template``, fitted to :attr:`limit`; returns
        ``(tokens, messages left out)``.

        With ``truncation="disabled"`` a prompt over the limit is an error. With ``"auto"`` (the
        chat sessions' policy, OpenAI's Responses API's name) the oldest turns (a user message
        and the replies after it), then the system message, are left out of the model's view
        until the prompt fits; the newest message is always kept, and a warning is logged.

        Raises:
            ContextOverflowError: the prompt does not fit (with ``"auto"``: the newest message
                alone does not).
            ChatTemplateError: the template fails or renders nothing.
        """
        limit = self.limit
        if truncation == "disabled":
            tokens = self.chat_tokens(template, messages, variables)
            if len(tokens) > limit:
                raise errors.ContextOverflowError(
                    f"the messages take {len(tokens)} tokens, more than the context window allows "
                    f"({limit} of {self.model.n_ctx}); shorten them or load the model with a larger n_ctx")
            return tokens, 0
        last = self.chat_tokens(template, messages[-1:], variables)
        if len(last) > limit:
            raise errors.ContextOverflowError(
                f"Your message was too long and could not be processed ({len(last)} > {limit}).")
        system = messages[:1] if messages and messages[0].get("role") == "system" else []
        rest = messages[len(system):]
        dropped = 0
        while True:
            tokens = self.chat_tokens(template, system + rest, variables)
            if len(tokens) <= limit or len(rest) <= 1:
                break
            cut = 1  # the oldest turn: a user message and the replies that follow it
            while cut < len(rest) - 1 and rest[cut].get("role") != "user":
                cut += 1
            rest = rest[cut:]
            dropped += cut
        if len(tokens) > limit and system:
            tokens = self.chat_tokens(template, rest, variables)
            dropped += 1
        if len(tokens) > limit:
            raise errors.ContextOverflowError(
                f"Your message was too long and could not be processed ({len(tokens)} > {limit}).")
        if dropped:
            logger.warning("the conversation outgrew the %d-token context: %d oldest message(s) "
                           "left out of the prompt", self.model.n_ctx, dropped)
        return tokens, dropped

    def prompt(self, template: ChatTemplate, messages: list[MessageType], variables: dict[str, Any],
               truncation: Truncation | None, reply_start: str | None = None) -> tuple[list[int], int]:
        """The prompt's tokens and the messages left out: :meth:`fit` (``truncation`` None: the
        whole prompt, however long, :meth:`chat_tokens`), then ``reply_start``, the start of
        the reply the model continues, as text (never control tokens).

        Raises:
            ContextOverflowError, ChatTemplateError: as :meth:`fit`.
        """
        if truncation is None:
            tokens, dropped = self.chat_tokens(template, messages, variables), 0
        else:
            tokens, dropped = self.fit(template, messages, variables, truncation)
        if reply_start:
            tokens = tokens + self.model.tokenize(reply_start, add_special=False, parse_special=False)
            if truncation is not None and len(tokens) > self.limit:
                raise errors.ContextOverflowError(
                    f"the messages take {len(tokens)} tokens, more than the context window allows "
                    f"({self.limit} of {self.model.n_ctx}); shorten them or load the model with a larger n_ctx")
        return tokens, dropped

    def chat_tokens(self, template: ChatTemplate, messages: list[MessageType],
                    variables: dict[str, Any]) -> list[int]:
        """Render ``messages`` with ``template`` (and the template ``variables``) and tokenize
        the prompt.

        The template's own text is tokenized with special-token parsing (that is how
        ``<|im_start|>`` and friends become control tokens), the text of the messages without
        it: a message (or a retrieved document) that contains ``<|im_end|>`` stays text and
        cannot end its turn or forge another role's. The same holds for the other text fields
        a template renders from a message: ``name``, ``tool_call_id``, ``reasoning_content``,
        a tool call's name and its arguments as text (:meth:`_literal_fields`). Only when a
        field's tokens change under special parsing is the prompt tokenized in pieces; to find
        where that field is, the template is rendered once more with a marker in its place. A
        template that rewrites such text other than by trimming it cannot be followed that way:
        the prompt is then tokenized whole, as llama.cpp and transformers do, and a warning is
        logged. Tool definitions (``tools``) and arguments given as objects are rendered by the
        template's ``tojson`` and are not covered.
        """
        shown = messages
        text = self.render(template, shown, variables)
        model = self.model
        literal = self._literal_fields(shown)
        if not literal:
            return self.tokenize(text)
        spans = self._literal_spans(template, shown, variables, literal, text)
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

    def _literal_fields(self, shown: list[MessageType]) -> list[tuple[int, tuple[Any, ...]]]:
        """Where the messages hold text with special-token text in it: ``(message index, path
        of keys)`` of each such string field (the content, ``name``, ``tool_call_id``,
        ``reasoning_content``, a tool call's name or arguments as text)."""
        found: list[tuple[int, tuple[Any, ...]]] = []
        for i, m in enumerate(shown):
            paths: list[tuple[Any, ...]] = [(key,) for key in _TEXT_FIELDS]
            calls = m.get("tool_calls")
            if isinstance(calls, list):
                paths += [("tool_calls", j, "function", key) for j in range(len(calls)) for key in ("name", "arguments")]
            for path in paths:
                value = _get(m, path)
                if isinstance(value, str) and value and self._has_special_text(value):
                    found.append((i, path))
        return found

    def _literal_spans(self, template: ChatTemplate, shown: list[MessageType], variables: dict[str, Any],
                       literal: list[tuple[int, tuple[Any, ...]]], text: str) -> list[tuple[int, int]] | None:
        """Character spans in ``text`` of the fields ``literal`` names, in order, or None when
        the template does not copy them verbatim (or trimmed).

        Each field is rendered once more as a marker of private-use characters and a random
        nonce, which no message can forge (a message holding a marker of its own cannot turn
        the check off)."""
        nonce = secrets.token_hex(8)
        marks = {f"\ue000{nonce}:{n}\ue001": field for n, field in enumerate(literal)}
        masked = list(shown)
        for mark, (i, path) in marks.items():
            masked[i] = _with(masked[i], path, mark)
        pieces = re.split(f"(\ue000{nonce}:\\d+\ue001)", self.render(template, masked, variables))
        for transform in (lambda c: c, str.strip):
            spans: list[tuple[int, int]] = []
            out: list[str] = []
            pos = 0
            for piece in pieces:
                if piece in marks:
                    i, path = marks[piece]
                    piece = transform(str(_get(shown[i], path)))
                    if piece:
                        spans.append((pos, pos + len(piece)))
                out.append(piece)
                pos += len(piece)
            if "".join(out) == text:
                return spans
        return None

    def render(self, template: ChatTemplate, messages: list[MessageType],
               variables: dict[str, Any]) -> str:
        text = template.render(messages, add_generation_prompt=True,
                               special_tokens=self.special_tokens, **variables)
        if not text:
            raise errors.ChatTemplateError("the chat template rendered an empty prompt")
        return text

    def tokenize(self, text: str) -> list[int]:
        """Tokens of ``text`` with special-token parsing, BOS added unless ``text`` starts with it."""
        bos = self.special_tokens.get("bos_token")
        add_special = not (self.add_bos and bos and text.startswith(bos))
        return self.model.tokenize(text, add_special=add_special, parse_special=True)


#: The string fields of a message a template may render besides tool calls.
_TEXT_FIELDS = ("content", "name", "tool_call_id", "reasoning_content")


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            return None
    return node


def _with(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``node`` with ``value`` at ``path`` (the containers along it copied)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy: Any = list(node) if isinstance(node, list) else dict(node)
    copy[head] = _with(node[head], rest, value)
    return copy
