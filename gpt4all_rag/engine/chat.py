"""Chat formats: from OpenAI-style messages to a plan, and from the model's text to a reply.

:meth:`gpt4all_rag.engine.Llama.create_chat_completion` (the call under every front: chat
sessions, LangChain, LlamaIndex, the CLI and the server) is made of this module's parts:

1. the messages, tools and tool choice are checked and normalised (:func:`prepare`);
2. llama.cpp's chat layer (``g4r_chat_apply``, ``common/chat.cpp``) finds the model family's
   chat format for the template: whether it renders tools, how it marks reasoning and tool
   calls, and the parser that reads them back;
3. the prompt is rendered by the template in the sandbox (:mod:`~gpt4all_rag.engine.templates`, with
   ``tools`` and ``enable_thinking`` as template variables, as in transformers) and tokenized
   so that no message text becomes a control token (:class:`~gpt4all_rag.engine.prompting.PromptBuilder`);
4. tokens are generated with the KV cache's prefix reused (:class:`ChatText` carries the raw
   text), and the reply is parsed into content, reasoning and tool calls (``g4r_chat_parse``,
   :func:`read_reply`), whole or as stream chunks (:func:`chunks`).

Models whose template has no tool format (SmolLM2's ChatML) get tools described in the system
message and a grammar that forces a JSON call ``{"name": ..., "arguments": {...}}`` (or, with
``tool_choice="auto"``, either such a call or text that does not start with ``{``).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Mapping, Sequence

from .. import errors

from . import native as _native
from .native_model import NativeModel
from .generation import GenerationStats
from .sampling import SamplingParams
from .types import (ChatCompletion, ChatCompletionChunk, ChatCompletionMessage, TokenLogprob,
                    ToolCall, Usage)

__all__ = ["ChatText", "Plan", "Reply", "chunks", "continuing", "finish_reason",
           "is_reply_start", "normalize_messages", "plan", "prepare", "read_reply", "split_reply_start", "tool_call_schema"]

logger = logging.getLogger("gpt4all_rag")

ROLES = ("system", "developer", "user", "assistant", "tool")


# -- messages ---------------------------------------------------------------------------------
def _text(content: Any, where: str) -> str:
    """Message content as text: a string, None, or a list of OpenAI text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise errors.InvalidParameterError(
                    f"{where}: content part of type {kind!r} is not supported (text only)")
        return "".join(parts)
    raise errors.InvalidParameterError(f"{where}: content must be a string or a list of text parts")


def normalize_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check OpenAI-style chat messages and bring them to one shape.

    Each message is ``{"role", "content"}`` with role ``system``, ``developer`` (treated as
    ``system``), ``user``, ``assistant`` (optionally with ``tool_calls``:
    ``[{"id", "type": "function", "function": {"name", "arguments": JSON text or object}}]``)
    or ``tool`` (with ``tool_call_id``; ``name`` optional). Content is a string, None, or a
    list of ``{"type": "text", "text"}`` parts; it may be empty (the seed's chat sessions send
    an empty system message and may send an empty prompt).

    Returns:
        New dicts: content as a string, tool-call arguments as JSON text.

    Raises:
        InvalidParameterError: not a non-empty list of such messages (the message names the
            offending index).
    """
    if not isinstance(messages, (list, tuple)) or not messages:
        raise errors.InvalidParameterError("messages must be a non-empty list of chat messages")
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, Mapping):
            raise errors.InvalidParameterError(f"{where} must be a dict, got {type(m).__name__}")
        role = m.get("role")
        if role not in ROLES:
            raise errors.InvalidParameterError(f"{where}: role must be one of {ROLES}, got {role!r}")
        msg: dict[str, Any] = {"role": "system" if role == "developer" else role,
                               "content": _text(m.get("content"), where)}
        if role == "assistant" and m.get("tool_calls"):
            calls = []
            for j, call in enumerate(m["tool_calls"]):
                fn = call.get("function") if isinstance(call, Mapping) else None
                if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
                    raise errors.InvalidParameterError(
                        f"{where}.tool_calls[{j}] must be {{'type': 'function', 'function': "
                        "{'name': ..., 'arguments': ...}}")
                args = fn.get("arguments", "{}")
                if not isinstance(args, str):
                    args = json.dumps(args, ensure_ascii=False)
                calls.append({"id": str(call.get("id") or _call_id()), "type": "function",
                              "function": {"name": fn["name"], "arguments": args}})
            msg["tool_calls"] = calls
        if role == "tool":
            msg["tool_call_id"] = str(m.get("tool_call_id") or "")
            if m.get("name"):
                msg["name"] = str(m["name"])
        out.append(msg)
    return out


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _arguments_object(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# -- tools ------------------------------------------------------------------------------------
def _check_tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, (list, tuple)):
        raise errors.InvalidParameterError("tools must be a list of OpenAI function tools")
    for i, t in enumerate(tools):
        fn = t.get("function") if isinstance(t, Mapping) else None
        if not isinstance(t, Mapping) or t.get("type", "function") != "function" \
                or not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise errors.InvalidParameterError(
                f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ..., "
                "'parameters': {...}}}}")
    return [dict(t) for t in tools]


def _resolve_tool_choice(choice: Any, tools: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """``("auto" | "required" | "none", the tools the model may call)``."""
    if choice is None or choice == "auto":
        return ("auto" if tools else "none"), tools
    if choice == "required" and not tools:
        raise errors.InvalidParameterError("tool_choice 'required' needs at least one tool")
    if choice in ("required", "none"):
        return choice, tools if choice == "required" else []
    name = None
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), Mapping) else None
    if not isinstance(name, str):
        raise errors.InvalidParameterError(
            f"tool_choice must be 'auto', 'required', 'none' or {{'type': 'function', 'function': "
            f"{{'name': ...}}}}, got {choice!r}")
    chosen = [t for t in tools if t["function"]["name"] == name]
    if not chosen:
        raise errors.InvalidParameterError(f"tool_choice names {name!r}, which is not among the tools")
    return "required", chosen


def tool_call_schema(tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON schema of one call ``{"name", "arguments"}`` to any of ``tools``.

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


def _tools_instruction(tools: Sequence[Mapping[str, Any]], *, required: bool) -> str:
    lines = [json.dumps({"name": t["function"]["name"],
                         "description": t["function"].get("description", ""),
                         "parameters": t["function"].get("parameters", {})}, ensure_ascii=False)
             for t in tools]
    head = ("You can call these tools. To call one, reply with only a JSON object "
            '{"name": <tool name>, "arguments": <object of arguments>}.')
    if not required:
        head += " If no tool is needed, answer in plain text instead."
    return head + "\nTools:\n" + "\n".join(lines)


_ROOT_RULE = re.compile(r"^root ::=", re.MULTILINE)


def _json_grammar(schema: Mapping[str, Any]) -> str:
    from .grammar import json_schema_to_gbnf

    return json_schema_to_gbnf(dict(schema))


def _fallback_tool_grammar(tools: Sequence[Mapping[str, Any]], *, required: bool) -> str:
    grammar = _json_grammar(tool_call_schema(tools))
    if required:
        return grammar
    # Either a tool call or free text that does not start with "{".
    grammar = _ROOT_RULE.sub("g4r-call ::=", grammar)
    return (grammar + "\ng4r-text ::= [^{ \\t\\n] .*\n"
            "root ::= [ \\t\\n]* (g4r-call | g4r-text)\n")


def _response_format(fmt: Any) -> tuple[str | None, str | None]:
    """``(grammar, system instruction)`` of an OpenAI ``response_format``."""
    if fmt is None:
        return None, None
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind == "text":
        return None, None
    if kind == "json_object":
        return _json_grammar({"type": "object"}), "Reply with only a JSON object."
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise errors.InvalidParameterError(
                "response_format json_schema needs {'json_schema': {'name': ..., 'schema': {...}}}")
        return _json_grammar(schema), ("Reply with only a JSON object that follows this JSON "
                                       "schema:\n" + json.dumps(schema, ensure_ascii=False))
    raise errors.InvalidParameterError(
        f"response_format type must be 'text', 'json_object' or 'json_schema', got {fmt!r}")


# -- planning ---------------------------------------------------------------------------------
@dataclass
class Plan:
    """How one request is rendered, constrained and read back."""

    messages: list[dict[str, Any]]
    variables: dict[str, Any]
    grammar: str | None
    stops: tuple[str, ...]
    parser: bytes | None  # llama.cpp's chat-format parser (g4r_chat_parse's JSON), or None
    fallback_tools: list[str] = field(default_factory=list)  # tool names of the JSON fallback
    fallback_required: bool = False
    triggers: tuple[tuple[str, ...], tuple[int, ...]] = ((), ())  # a lazy grammar's triggers


def _with_system(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    if messages and messages[0]["role"] == "system":
        return [dict(messages[0], content=messages[0]["content"] + "\n\n" + text)] + messages[1:]
    return [{"role": "system", "content": text}] + messages


def plan(model: NativeModel, source: str, messages: list[dict[str, Any]],
         tools: list[dict[str, Any]], tool_choice: str, response_format: Any,
         enable_thinking: bool | None, params: SamplingParams) -> Plan:
    """How ``messages`` (normalised, see :func:`prepare`) are rendered by the template
    ``source``, constrained and read back (the chat format llama.cpp finds for it)."""
    request: dict[str, Any] = {"messages": messages, "tool_choice": tool_choice}
    if tools and tool_choice != "none":
        request["tools"] = tools
    if enable_thinking is not None:
        request["enable_thinking"] = enable_thinking
    override = None if source == model.chat_template() else source
    try:
        info = model.chat_apply(request, chat_template=override)
    except errors.InvalidParameterError as exc:
        # llama.cpp's Jinja reads fewer templates than Python's: without its chat format the
        # reply is plain content (tools then use the JSON fallback).
        logger.warning("llama.cpp cannot read this chat template (%s): no native tool calls "
                       "or reasoning parsing", exc)
        info = {}
    caps = info.get("caps", {})
    template_has_tools = bool(caps.get("supports_tool_calls")) and bool(caps.get("supports_tools"))
    native_tools = bool(request.get("tools")) and template_has_tools
    grammar, instruction = _response_format(response_format)
    if params.grammar is not None:
        grammar = params.grammar
    variables: dict[str, Any] = {}
    if enable_thinking is not None:
        variables["enable_thinking"] = enable_thinking
    shown = messages
    fallback: list[str] = []
    required = False
    triggers: tuple[tuple[str, ...], tuple[int, ...]] = ((), ())
    if template_has_tools:
        # Templates read tool-call arguments as objects (transformers' convention).
        shown = [dict(m, tool_calls=[{**c, "function": {**c["function"], "arguments":
                 _arguments_object(c["function"]["arguments"])}} for c in m["tool_calls"]])
                 if m.get("tool_calls") else m for m in messages]
        if native_tools and grammar is None and info.get("grammar"):
            # llama.cpp's grammar of the family's call format: eager for "required"; lazy for
            # "auto", where it constrains a call only once the model starts one.
            grammar = info["grammar"]
            if info.get("grammar_lazy"):
                triggers = (tuple(info.get("trigger_patterns", ())), tuple(info.get("trigger_tokens", ())))
        if native_tools:
            variables["tools"] = tools
    else:
        # The template has no tool format: calls in the history are shown as the JSON the
        # model is asked to write, and tool results as tool (or user) turns.
        if request.get("tools"):
            required = tool_choice == "required"
            fallback = [t["function"]["name"] for t in tools]
            instruction = _tools_instruction(tools, required=required)
            grammar = _fallback_tool_grammar(tools, required=required)
        knows_tool_role = "'tool'" in source or '"tool"' in source
        shown = []
        for m in messages:
            if m.get("tool_calls"):
                calls = [json.dumps({"name": c["function"]["name"],
                                     "arguments": _arguments_object(c["function"]["arguments"])},
                                    ensure_ascii=False) for c in m["tool_calls"]]
                m = {"role": "assistant", "content": "\n".join(filter(None, [m["content"], *calls]))}
            elif m["role"] == "tool" and not knows_tool_role:
                m = {"role": "user", "content": f"Tool result: {m['content']}"}
            shown.append(m)
    if instruction:
        shown = _with_system(shown, instruction)
    parse = native_tools or (info.get("supports_thinking") and not fallback)
    return Plan(messages=shown, variables=variables, grammar=grammar,
                 stops=params.stop + tuple(s for s in info.get("additional_stops", []) if s),
                 parser=json.dumps({k: info[k] for k in ("format_id", "parser", "generation_prompt")
                                    }).encode() if parse else None, fallback_tools=fallback,
                 fallback_required=required, triggers=triggers)


def is_reply_start(message: Mapping[str, Any]) -> bool:
    """Whether ``message`` can be the start of a reply to continue: an assistant's, with text
    and no tool calls."""
    return message.get("role") == "assistant" and bool(message.get("content")) and not message.get("tool_calls")


def split_reply_start(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """``(the messages before the last, its text)``: the last message is the start of the
    assistant's reply that ``continue_final_message`` continues.

    Raises:
        InvalidParameterError: the last message is not one (:func:`is_reply_start`), or no
            message comes before it.
    """
    last = messages[-1] if messages else None
    if last is None or not is_reply_start(last):
        raise errors.InvalidParameterError(
            "continue_final_message needs a last message from the assistant with text and no tool calls")
    if len(messages) < 2:
        raise errors.InvalidParameterError("continue_final_message needs a message before the assistant's")
    return messages[:-1], last["content"]


def continuing(plan: Plan) -> Plan:
    """``plan`` for a reply that goes on from text already written (``continue_final_message``):
    its content is read as it comes (no reasoning parsed out of it), tool calls still where a
    lazy grammar waits for one; no grammar may force the reply's form from its start
    (``response_format``, ``grammar``, ``tool_choice="required"``, tools of a template without
    a tool format).

    Raises:
        InvalidParameterError: a grammar forces the reply's form from its start.
    """
    lazy = any(plan.triggers)
    if plan.grammar is not None and not lazy:
        raise errors.InvalidParameterError(
            "continue_final_message cannot be combined with a reply form forced from its start "
            "(response_format, grammar, tool_choice 'required', or tools of a template without a tool format)")
    return replace(plan, parser=plan.parser if lazy else None)


# -- reading the reply ------------------------------------------------------------------------
@dataclass
class Reply:
    """A reply read back: its content, reasoning and tool calls."""

    content: str
    reasoning: str | None
    calls: list[ToolCall]
    cut: bool = False  # the last call was cut off before its end (its arguments are partial)


def read_reply(plan: Plan, text: str, *, partial: bool) -> Reply:
    if plan.parser is not None:
        try:
            r = _native.chat_parse(plan.parser, text, partial=partial)
        except errors.GrammarError:
            return Reply(text, None, [])
        calls = [ToolCall(c.get("id") or _call_id(), c["name"], c["arguments"])
                 for c in r["tool_calls"] if c.get("name")]
        return Reply(r["content"], r["reasoning_content"] or None, calls)
    if plan.fallback_tools and not partial and (plan.fallback_required or text.lstrip().startswith("{")):
        try:
            obj = json.loads(text.strip(), strict=False)
        except json.JSONDecodeError:
            # Cut off (max_tokens, a stop sequence) inside the call: a call marked cut, with
            # its name once written ("" before) and its arguments so far, not valid JSON, as
            # OpenAI returns one cut by its length limit; finish_reason says why it ended
            # (never "tool_calls").
            name = re.search(r'"name"\s*:\s*"([^"]+)"', text)
            arguments = re.search(r'"arguments"\s*:\s*', text[name.end():]) if name else None
            partial = text[name.end() + arguments.end():].strip() if name and arguments else ""
            called = name[1] if name and name[1] in plan.fallback_tools else ""
            return Reply("", None, [ToolCall(_call_id(), called, partial)], cut=True)
        if isinstance(obj, dict) and obj.get("name") in plan.fallback_tools:
            args = obj.get("arguments", {})
            return Reply("", None, [ToolCall(_call_id(), obj["name"],
                                              json.dumps(args, ensure_ascii=False))])
    return Reply(text, None, [])


def finish_reason(stats_reason: str | None, reply: Reply) -> str:
    """OpenAI's ``finish_reason``: ``length`` when the token limit ended the reply (also inside
    a tool call, whose arguments are then cut, as OpenAI reports it), else ``tool_calls`` when
    it has calls and none was cut (by a stop sequence), else ``stop``."""
    if stats_reason == "length":
        return "length"
    return "tool_calls" if reply.calls and not reply.cut else "stop"


# -- the call ---------------------------------------------------------------------------------
def prepare(messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None,
            tool_choice: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """Check a request's messages, tools and tool choice: ``(messages normalised, the tools the
    model may call, "auto" | "required" | "none")``.

    Raises:
        InvalidParameterError: malformed messages, tools or tool_choice.
    """
    msgs = normalize_messages(messages)
    choice, callable_tools = _resolve_tool_choice(tool_choice, _check_tools(tools))
    return msgs, callable_tools, choice


class ChatText:
    """A running chat completion as the model writes it: iterating yields the reply's raw text
    pieces (reasoning and tool-call markup included, as the model wrote them); closing stops
    generation. :attr:`completion` reads the text so far back into a
    :class:`~gpt4all_rag.engine.types.ChatCompletion` (content, reasoning and tool calls apart).

    Args:
        pieces: ``(text, log-probabilities recorded since the previous piece)`` of the held
            sequence's generation.
        plan: how the reply is read back.
        stats: the generation's counters (filled as it runs).
        model_name: the ``model`` field of what is returned.
        logprobs: whether log-probabilities are reported.
    """

    def __init__(self, pieces: Iterator[tuple[str, list[TokenLogprob]]], plan: Plan,
                 stats: GenerationStats, model_name: str, logprobs: bool) -> None:
        self.plan, self.stats, self.model_name = plan, stats, model_name
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.logprobs = logprobs
        self.text = ""
        self.recorded: list[TokenLogprob] = []
        self.new: list[TokenLogprob] = []  # recorded with the latest piece
        self._pieces = pieces

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        text, self.new = next(self._pieces)
        self.text += text
        self.recorded += self.new
        return text

    def close(self) -> None:
        """Stop generating (the sequence is given back); idempotent."""
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()

    def usage(self) -> Usage:
        return self.stats.usage()

    @property
    def completion(self) -> ChatCompletion:
        """The reply so far, read back (after the last piece: the whole reply)."""
        reply = read_reply(self.plan, self.text, partial=False)
        return ChatCompletion(
            self.id, self.created, self.model_name,
            ChatCompletionMessage(reply.content if reply.content or not reply.calls else None,
                                  reply.reasoning, reply.calls),
            finish_reason(self.stats.finish_reason, reply), self.usage(),
            self.recorded if self.logprobs else None, self.stats.stop_sequence)


def chunks(run: ChatText) -> Iterator[ChatCompletionChunk]:
    """The chunks of a streamed chat completion (OpenAI's ``chat.completion.chunk``): the role
    first, then content and reasoning deltas as the reply is read back, the last with the tool
    calls (whole), ``finish_reason`` and usage. Closing the iterator stops generation."""
    def chunk(delta: dict[str, Any], **kw: Any) -> ChatCompletionChunk:
        return ChatCompletionChunk(run.id, run.created, run.model_name, delta, **kw)

    def advance(reply: Reply, delta: dict[str, Any]) -> None:
        nonlocal sent_content, sent_reasoning
        if reply.content.startswith(sent_content) and len(reply.content) > len(sent_content):
            delta["content"] = reply.content[len(sent_content):]
            sent_content = reply.content
        reasoning = reply.reasoning or ""
        if reasoning.startswith(sent_reasoning) and len(reasoning) > len(sent_reasoning):
            delta["reasoning_content"] = reasoning[len(sent_reasoning):]
            sent_reasoning = reasoning

    plan = run.plan
    sent_content, sent_reasoning = "", ""
    held: list[TokenLogprob] = []
    try:
        yield chunk({"role": "assistant", "content": ""})
        for _ in run:
            held += run.new
            if plan.fallback_tools and (plan.fallback_required or run.text.lstrip().startswith("{")):
                continue  # a JSON tool call: sent whole at the end
            delta: dict[str, Any] = {}
            advance(read_reply(plan, run.text, partial=True), delta)
            if delta:
                yield chunk(delta, logprobs=held if run.logprobs else None)
                held = []
        reply = read_reply(plan, run.text, partial=False)
        delta = {}
        advance(reply, delta)
        if reply.calls:
            delta["tool_calls"] = [dict(c.to_dict(), index=i) for i, c in enumerate(reply.calls)]
        yield chunk(delta, finish_reason=finish_reason(run.stats.finish_reason, reply),
                    usage=run.usage(), logprobs=held if run.logprobs else None,
                    stop_sequence=run.stats.stop_sequence)
    finally:
        run.close()
