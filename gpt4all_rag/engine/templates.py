"""Chat templates: Jinja2 rendered in an immutable sandbox.

Templates follow the Hugging Face ``chat_template`` convention that GGUF files store under
``tokenizer.chat_template``: the template receives ``messages`` (a list of ``{"role", "content"}``
dicts), ``add_generation_prompt`` and the model's special tokens (``bos_token``, ``eos_token``,
...), and may call ``raise_exception(msg)`` and ``strftime_now(fmt)``. As in ``transformers``,
blocks are trimmed (``trim_blocks`` and ``lstrip_blocks``) and loop controls are enabled.

The environment is :class:`jinja2.sandbox.ImmutableSandboxedEnvironment`: templates cannot
reach Python internals (``__class__``, ``__subclasses__`` ...) nor mutate the messages they are
given. Every failure, syntax or runtime, surfaces as :class:`~gpt4all_rag.errors.ChatTemplateError`.

A template comes inside a GGUF file downloaded from anywhere, so rendering is also bounded
(:class:`RenderLimits`): in time (:data:`RENDER_TIMEOUT_S` by default) and in the size of what
it produces (:data:`RENDER_MAX_CHARS` plus twice the characters of the messages and other
variables given to it). The clock is checked at every loop iteration, call, intercepted
operator and output chunk; sizes are checked for the output, for the results of ``*``, ``**``
and ``+``, for call and filter arguments and results, and for values stored in a
``namespace()``. Integer arguments of calls and filters (a width, a count) may not exceed the
size limit either, so ``"x"|center(10**9)`` or ``"x".ljust(10**9)`` fail before allocating.
"""

from __future__ import annotations

import contextvars
import datetime
import functools
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import Namespace

from ..errors import ChatTemplateError

__all__ = ["ChatTemplate", "MessageType", "RENDER_MAX_CHARS", "RENDER_TIMEOUT_S", "RenderLimits"]

#: Default wall-clock limit of one render, in seconds. Real chat templates take milliseconds.
RENDER_TIMEOUT_S = 2.0
#: Default base size limit of one render's output (and of any value it builds), in characters;
#: twice the characters of the variables passed in are added to it.
RENDER_MAX_CHARS = 1_000_000


@dataclass(frozen=True)
class RenderLimits:
    """Bounds of one render.

    Attributes:
        timeout_s: wall-clock seconds before the render fails (> 0).
        max_chars: characters the output, or any string or list built while rendering, may
            reach; also the largest integer argument a call or filter may get.
    """

    timeout_s: float = RENDER_TIMEOUT_S
    max_chars: int = RENDER_MAX_CHARS


class _Budget:
    """The running render's limits, checked by the environment's hooks."""

    __slots__ = ("deadline", "max_chars", "timeout_s", "ticks")

    def __init__(self, limits: RenderLimits, max_chars: int) -> None:
        self.timeout_s = limits.timeout_s
        self.deadline = time.monotonic() + limits.timeout_s
        self.max_chars = max_chars
        self.ticks = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise ChatTemplateError(
                f"the chat template ran longer than {self.timeout_s:g} s and was stopped "
                "(a hostile or broken template); pass another chat_template")

    def check_size(self, value: Any, what: str) -> Any:
        if isinstance(value, (str, list, tuple, dict)) and len(value) > self.max_chars:
            raise ChatTemplateError(
                f"the chat template built a {what} of {len(value):,} items, more than the "
                f"{self.max_chars:,} allowed; pass another chat_template")
        return value

    def check_args(self, args: Iterable[Any]) -> None:
        for a in args:
            if isinstance(a, int) and not isinstance(a, bool) and abs(a) > self.max_chars:
                raise ChatTemplateError(
                    f"the chat template passed the integer {a} to a call, more than the "
                    f"{self.max_chars:,} allowed; pass another chat_template")
            self.check_size(a, "call argument")

    def check_format(self, fmt: Any) -> None:
        """A ``%``/``format`` string whose width or precision exceeds the size limit (e.g.
        ``"%0999999999d"``) would allocate that much before any result could be checked."""
        if isinstance(fmt, str):
            for run in re.findall(r"\d{7,}", fmt):
                if int(run) > self.max_chars:
                    raise ChatTemplateError(
                        f"the chat template formats with a width of {int(run):,}, more than the "
                        f"{self.max_chars:,} allowed; pass another chat_template")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("g4r_template_budget",
                                                                         default=None)


def _budget() -> _Budget:
    b = _BUDGET.get()
    if b is None:  # rendered outside ChatTemplate.render: use the defaults
        b = _Budget(RenderLimits(), RENDER_MAX_CHARS)
        _BUDGET.set(b)
    return b

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


class _BoundedNamespace(Namespace):
    """``namespace()`` whose stored values are size-checked (a loop doubling a string in a
    namespace would otherwise grow without bound)."""

    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, _budget().check_size(value, "value"))


class _LoopBudget(Extension):
    """Gives every ``{% for %}`` loop's iterable to :meth:`iterate` (see ``_parse``)."""

    identifier = "gpt4all_rag.engine.templates.loop_budget"

    def iterate(self, iterable: Any) -> Iterator[Any]:
        budget = _budget()
        for item in iterable:
            budget.ticks += 1
            if budget.ticks & 255 == 0:
                budget.tick()
            yield item


def _bounded_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)  # keeps jinja_pass_arg (pass_context / pass_environment)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.tick()
        if name == "format":
            budget.check_format(next((a for a in args if isinstance(a, str)), None))
        budget.check_args(args)
        budget.check_args(kwargs.values())
        return budget.check_size(fn(*args, **kwargs), "filter result")

    return wrapper


class _StrictSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, but reading an unsafe attribute raises instead of rendering "",
    and every loop, call, filter and operator that could run long or build a large value is
    checked against the render's budget (see the module docstring)."""

    intercepted_binops = frozenset(["*", "**", "+", "%"])

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} is unsafe")

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        # Jinja has no hook on iteration: wrap each loop's iterable in a call to the budget.
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            func = nodes.ExtensionAttribute(_LoopBudget.identifier, "iterate", lineno=loop.lineno)
            loop.iter = nodes.Call(func, [loop.iter], [], None, None, lineno=loop.lineno)
        return tree

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any,  # noqa: N805
             **kwargs: Any) -> Any:
        budget = _budget()
        budget.tick()
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        if isinstance(getattr(method, "__self__", None), str) and \
                getattr(method, "__name__", "") in ("format", "format_map"):
            budget.check_format(method.__self__)
        budget.check_args(args)
        budget.check_args(kwargs.values())
        return budget.check_size(super().call(__context, __obj, *args, **kwargs), "call result")

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any,
                   right: Any) -> Any:
        budget = _budget()
        budget.tick()
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) \
                        and len(seq) * n > budget.max_chars:
                    raise ChatTemplateError(
                        f"the chat template multiplied a sequence into {len(seq) * n:,} items, "
                        f"more than the {budget.max_chars:,} allowed; pass another chat_template")
        elif operator == "%":
            budget.check_format(left)
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) \
                and abs(left) > 1 and right > 0 and abs(left).bit_length() * right > 4096:
            raise ChatTemplateError(
                f"the chat template computed {left} ** {right}, an integer of more than 4096 "
                "bits; pass another chat_template")
        return budget.check_size(super().call_binop(context, operator, left, right), "value")


def _make_env() -> ImmutableSandboxedEnvironment:
    env = _StrictSandbox(
        trim_blocks=True, lstrip_blocks=True,
        extensions=["jinja2.ext.loopcontrols", _LoopBudget],
        undefined=jinja2.Undefined, autoescape=False,
    )
    env.filters["tojson"] = _tojson
    env.filters = {name: _bounded_filter(name, fn) for name, fn in env.filters.items()}
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["namespace"] = _BoundedNamespace
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

    def render(self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True,
               special_tokens: Mapping[str, str] | None = None,
               limits: RenderLimits = RenderLimits(), **extra: Any) -> str:
        """Render a conversation.

        Args:
            messages: ``[{"role": "system"|"user"|"assistant", "content": str}, ...]``.
            add_generation_prompt: append the header that starts the assistant's turn.
            special_tokens: ``bos_token``, ``eos_token``, ... made available to the template.
            limits: time and size bounds; the size limit grows by twice the characters of
                ``messages`` and ``extra`` (as JSON), so long conversations always fit.
            **extra: further template variables.

        Returns:
            The prompt text, with special tokens as text.

        Raises:
            ChatTemplateError: the template called ``raise_exception``, tried to escape the
                sandbox, failed while rendering, ran longer than ``limits.timeout_s`` or
                produced (or built) more than the size limit.
        """
        variables: dict[str, Any] = dict(special_tokens or {})
        variables.update(extra)
        given = sum(len(json.dumps(v, ensure_ascii=False, default=str)) for v in (messages, extra))
        budget = _Budget(limits, limits.max_chars + 2 * given)
        token = _BUDGET.set(budget)
        try:
            out: list[str] = []
            size = 0
            for chunk in self._template.generate(
                    messages=[dict(m) for m in messages],
                    add_generation_prompt=add_generation_prompt, **variables):
                size += len(chunk)
                if size > budget.max_chars:
                    raise ChatTemplateError(
                        f"the chat template rendered more than {budget.max_chars:,} characters "
                        "and was stopped; pass another chat_template")
                budget.tick()
                out.append(chunk)
            return "".join(out)
        except ChatTemplateError:
            raise
        except _TemplateRaised as exc:
            raise ChatTemplateError(f"the chat template rejected the conversation: {exc}") from None
        except SecurityError as exc:
            raise ChatTemplateError(f"the chat template tried an unsafe operation: {exc}") from None
        except (jinja2.TemplateError, TypeError, ValueError, KeyError, IndexError,
                AttributeError, ZeroDivisionError, OverflowError, RecursionError) as exc:
            raise ChatTemplateError(
                f"the chat template failed while rendering: {type(exc).__name__}: {exc}") from None
        except MemoryError:
            raise ChatTemplateError("the chat template ran out of memory while rendering; pass "
                                    "another chat_template") from None
        finally:
            _BUDGET.reset(token)
