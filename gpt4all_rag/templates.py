"""Chat templates: Jinja2 rendered in an immutable sandbox.

Templates follow the Hugging Face ``chat_template`` convention that GGUF files store under
``tokenizer.chat_template``: the template receives ``messages`` (a list of ``{"role", "content"}``
dicts), ``add_generation_prompt`` and the model's special tokens (``bos_token``, ``eos_token``,
...), and may call ``raise_exception(msg)`` and ``strftime_now(fmt)``. As in ``transformers``,
blocks are trimmed (``trim_blocks`` and ``lstrip_blocks``) and loop controls are enabled.

The environment is :class:`jinja2.sandbox.ImmutableSandboxedEnvironment`: templates cannot
reach Python internals (``__class__``, ``__subclasses__`` ...) nor mutate the messages they are
given. Every failure, syntax or runtime, surfaces as :class:`~gpt4all_rag.errors.ChatTemplateError`.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Mapping, Sequence

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from .errors import ChatTemplateError

__all__ = ["ChatTemplate", "MessageType"]

MessageType = dict[str, str]


class _TemplateRaised(Exception):
    """Raised by ``raise_exception()`` inside a template."""


def _raise_exception(message: str) -> None:
    raise _TemplateRaised(message)


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


def _tojson(value: Any, indent: int | None = None, **_: Any) -> str:
    # transformers' tojson keeps non-ASCII characters as they are.
    return json.dumps(value, ensure_ascii=False, indent=indent)


class _StrictSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, but reading an unsafe attribute raises instead of rendering ""."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} is unsafe")


def _make_env() -> ImmutableSandboxedEnvironment:
    env = _StrictSandbox(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"],
        undefined=jinja2.Undefined, autoescape=False,
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


_ENV = _make_env()


class ChatTemplate:
    """A compiled chat template.

    Args:
        source: the Jinja source (e.g. a GGUF's ``tokenizer.chat_template``).

    Raises:
        ChatTemplateError: ``source`` is empty, not a string, or not valid Jinja.
    """

    def __init__(self, source: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise ChatTemplateError(f"a chat template must be a non-empty Jinja string, got {source!r}")
        if "{{" not in source and "{%" not in source:
            raise ChatTemplateError(
                "this looks like an old-style prompt template (with {0} or %1 placeholders), not "
                "a Jinja chat template; pass a Jinja template such as the model's "
                "tokenizer.chat_template")
        self.source = source
        try:
            self._template = _ENV.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ChatTemplateError(f"malformed chat template (line {exc.lineno}): {exc.message}") from exc

    def render(self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True,
               special_tokens: Mapping[str, str] | None = None, **extra: Any) -> str:
        """Render a conversation.

        Args:
            messages: ``[{"role": "system"|"user"|"assistant", "content": str}, ...]``.
            add_generation_prompt: append the header that starts the assistant's turn.
            special_tokens: ``bos_token``, ``eos_token``, ... made available to the template.
            **extra: further template variables.

        Returns:
            The prompt text, with special tokens as text.

        Raises:
            ChatTemplateError: the template called ``raise_exception``, tried to escape the
                sandbox, or failed while rendering.
        """
        variables: dict[str, Any] = dict(special_tokens or {})
        variables.update(extra)
        try:
            return self._template.render(
                messages=[dict(m) for m in messages], add_generation_prompt=add_generation_prompt,
                **variables)
        except _TemplateRaised as exc:
            raise ChatTemplateError(f"the chat template rejected the conversation: {exc}") from None
        except SecurityError as exc:
            raise ChatTemplateError(f"the chat template tried an unsafe operation: {exc}") from None
        except (jinja2.TemplateError, TypeError, ValueError, KeyError, IndexError,
                AttributeError, ZeroDivisionError, OverflowError, RecursionError) as exc:
            raise ChatTemplateError(
                f"the chat template failed while rendering: {type(exc).__name__}: {exc}") from None
