"""OpenAI's Responses API on the chat core: ``POST /v1/responses``, ``GET`` and ``DELETE
/v1/responses/{id}``, with the built-in ``file_search`` tool over LocalDocs collections.

Request fields (after OpenAI's reference) and how they map onto
:meth:`GPT4All.create_chat_completion`:

* ``input``: a string (one user message) or items: messages (``role`` user / assistant /
  system / developer; ``content`` a string or ``input_text`` / ``output_text`` parts),
  ``function_call`` and ``function_call_output`` items (an assistant's call and its result);
  ``reasoning`` and ``file_search_call`` items are accepted and skipped. ``instructions`` is a
  system message first (not carried to a later response, as OpenAI does).
* ``previous_response_id``: the stored conversation of that response (its input and output)
  comes before ``input``. Responses are stored unless ``store`` is false, in memory, the
  :data:`STORED_RESPONSES` most recent ones, until the server stops.
* ``tools``: ``function`` tools (called in the model's native format) and ``file_search``
  (``vector_store_ids``: LocalDocs collection names; ``max_num_results``). ``tool_choice``
  ``auto`` / ``none`` / ``required`` / a function / ``{"type": "file_search"}``.
* ``file_search`` runs the same retrieval as chat completions' ``localdocs``
  (:func:`.serving.retrieve`) on the last user text, before the model answers (unless
  ``tool_choice`` is ``none``); the output then starts with a ``file_search_call`` item (its
  ``results`` when ``include`` has ``file_search_call.results``) and the message's text carries
  ``file_citation`` annotations: the excerpts the answer cites as ``[n]``, else every file
  found (at the end of the text).
* ``max_output_tokens`` (within ``--max-tokens-limit``), ``temperature``, ``top_p``,
  ``text.format`` (``text``, ``json_object``, ``json_schema``), ``reasoning`` (``effort``
  ``none`` switches reasoning off on templates that switch it, any other effort on), ``stream``,
  ``metadata``, ``user``, ``parallel_tool_calls``; extension: ``grammar`` (GBNF).

The response has ``output`` items: ``file_search_call``, ``reasoning`` (``reasoning_text``
content), ``message`` (``output_text`` with annotations) and ``function_call``; ``status``
``completed``, or ``incomplete`` with ``incomplete_details.reason`` ``max_output_tokens``;
``usage`` in input / output tokens. A stream sends OpenAI's events in order, each with its
``sequence_number``: ``response.created``, ``response.in_progress``, per item
``response.output_item.added`` ... ``response.output_item.done`` (with
``response.file_search_call.*``, ``response.reasoning_text.delta/done``,
``response.content_part.added/done`` around ``response.output_text.delta/done``,
``response.function_call_arguments.delta/done``), then ``response.completed``.

``truncation``: ``disabled`` (default: an over-long conversation is 400
``context_length_exceeded``) or ``auto`` (the oldest turns, then the instructions, leave the
model's view until it fits: the chat sessions' policy, :meth:`PromptBuilder.fit
<gpt4all_rag.engine.prompting.PromptBuilder.fit>`).

Not implemented (refused with 400 unless at their neutral value): built-in tools other than
``file_search`` (web search, code interpreter, computer use, MCP), images and files in
``input``, ``background``, ``prompt`` templates, ``conversation`` objects, ``top_logprobs``;
reasoning summaries are not produced.
"""

from __future__ import annotations

import collections
import copy
import os
import re
import threading
import time
import uuid
from pathlib import Path as FilePath
from typing import Annotated, Any, AsyncIterator, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import Field, StrictBool, ValidationInfo, field_validator

from ..engine.sampling import SamplingParams, json_bounds
from ..engine.types import ChatCompletionChunk
from .metrics import Metrics
from .pool import ApiError, ModelPool, ServerConfig
from .schemas import CollectionName, Grammar, LocalDocsOptions, ModelName, _Request
from .vector_stores import file_id_of
from .guards import TextRoute
from .serving import RESPONSES, chat_stream, complete, retrieve, tool_calls, unless_client_leaves

__all__ = ["ResponseRequest", "ResponseStore", "STORED_RESPONSES", "responses_router"]

#: Responses kept for ``previous_response_id`` and ``GET`` (least recently stored dropped).
STORED_RESPONSES = 1000


class InputText(_Request):
    type: Literal["input_text", "output_text"]
    text: str = Field(min_length=1)


class MessageItem(_Request):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: Annotated[str, Field(min_length=1)] | Annotated[list[InputText], Field(min_length=1)]


class FunctionCallItem(_Request):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str = "{}"


class FunctionCallOutputItem(_Request):
    type: Literal["function_call_output"]
    call_id: str
    output: str


class SkippedItem(_Request):
    """Items that carry nothing the model reads again (OpenAI sends them back in ``input``)."""

    type: Literal["reasoning", "file_search_call"]


InputItem = MessageItem | FunctionCallItem | FunctionCallOutputItem | SkippedItem


#: An input item the model reads (not a skipped one): a list must hold one.
_READ_ITEM = {"not": {"type": "object", "required": ["type"],
                      "properties": {"type": {"enum": ["reasoning", "file_search_call"]}}}}


class FunctionToolDef(_Request):
    type: Literal["function"]
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


class FileSearchToolDef(_Request):
    type: Literal["file_search"]
    vector_store_ids: list[CollectionName] = Field(min_length=1, max_length=8)
    max_num_results: int = Field(default=5, ge=1, le=50)


ToolDef = Annotated[FunctionToolDef | FileSearchToolDef, Field(discriminator="type")]


class ToolChoiceFunction(_Request):
    type: Literal["function"]
    name: str


class ToolChoiceFileSearch(_Request):
    type: Literal["file_search"]


class TextFormat(_Request):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: StrictBool | None = None


class TextOptions(_Request):
    format: TextFormat = TextFormat()


class Reasoning(_Request):
    effort: str | None = None


class ResponseRequest(_Request):
    """``POST /v1/responses``."""

    model: ModelName | None = None
    input: Annotated[str, Field(min_length=1)] | Annotated[list[InputItem], Field(
        min_length=1, json_schema_extra={"contains": _READ_ITEM})]
    instructions: str | None = None
    previous_response_id: str | None = None
    tools: list[ToolDef] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceFunction | ToolChoiceFileSearch | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, **json_bounds("temp"))
    top_p: float | None = Field(default=None, **json_bounds("top_p"))
    text: TextOptions | None = None
    reasoning: Reasoning | None = None
    stream: StrictBool = False
    store: StrictBool = True
    include: list[str] | None = None
    metadata: dict[str, str] | None = None
    parallel_tool_calls: StrictBool | None = None
    user: str | None = None
    grammar: Grammar | None = None  # extension, as in chat completions
    # Not implemented: accepted at their neutral value only (the validator says why).
    background: StrictBool = Field(False, json_schema_extra={"enum": [False]})
    truncation: Literal["auto", "disabled"] | None = Field(
        None, description="auto: the oldest turns leave the model's view until the conversation fits")
    conversation: None = Field(None, description="not supported (use previous_response_id)")
    prompt: None = Field(None, description="prompt templates are not supported")
    top_logprobs: int | None = Field(None, json_schema_extra={"minimum": 0, "maximum": 0})

    @field_validator("background", "conversation", "prompt", "top_logprobs", mode="before")
    @classmethod
    def _not_implemented(cls, value: Any, info: ValidationInfo) -> Any:
        neutral = {"background": (False,), "top_logprobs": (0,)}
        if value is not None and value not in neutral.get(info.field_name, ()):
            raise ValueError(f"{info.field_name} {value!r} is not supported here"
                             + (": use previous_response_id" if info.field_name == "conversation" else ""))
        return value

    @field_validator("input")
    @classmethod
    def _something_to_read(cls, value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(item, SkippedItem) for item in value):
            raise ValueError("input needs a message or function call item, not only reasoning "
                             "or file_search_call items")
        return value


class ResponseStore:
    """The stored responses: ``id`` -> (response object, the conversation through it as
    chat-core messages), at most ``capacity``, least recently stored dropped first. Thread
    safe."""

    def __init__(self, capacity: int = STORED_RESPONSES) -> None:
        self.capacity = capacity
        self._items: collections.OrderedDict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = \
            collections.OrderedDict()
        self._lock = threading.Lock()

    def put(self, response: dict[str, Any], conversation: list[dict[str, Any]]) -> None:
        with self._lock:
            self._items[response["id"]] = (response, conversation)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def get(self, response_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        with self._lock:
            found = self._items.get(response_id)
        if found is None:
            raise ApiError(404, f"no stored response {response_id!r} (responses are kept in memory, "
                                f"the {self.capacity} most recent, until the server stops)",
                           param="response_id", code="response_not_found")
        return found

    def delete(self, response_id: str) -> None:
        self.get(response_id)
        with self._lock:
            self._items.pop(response_id, None)


def _text(content: str | list[InputText]) -> str:
    return content if isinstance(content, str) else "".join(p.text for p in content)


def _messages(req: ResponseRequest, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat-core conversation of a request: instructions, the stored history (a copy: the
    stored one is never changed), the input. A ``function_call`` item the history's last
    reply already holds (a client sending back the call with its output) is not added twice."""
    messages: list[dict[str, Any]] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    messages += copy.deepcopy(history)
    if isinstance(req.input, str):
        return messages + [{"role": "user", "content": req.input}]
    for item in req.input:
        if isinstance(item, MessageItem):
            messages.append({"role": "system" if item.role == "developer" else item.role,
                             "content": _text(item.content)})
        elif isinstance(item, FunctionCallItem):
            call = {"id": item.call_id, "type": "function",
                    "function": {"name": item.name, "arguments": item.arguments}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls") is not None \
                    and not last.get("content"):
                if all(c["id"] != item.call_id for c in last["tool_calls"]):
                    last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif isinstance(item, FunctionCallOutputItem):
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": item.output})
    return messages


def _file_search(req: ResponseRequest) -> FileSearchToolDef | None:
    if req.tool_choice == "none":
        return None
    found = [t for t in req.tools or [] if isinstance(t, FileSearchToolDef)]
    if len(found) > 1:
        raise ApiError(400, "at most one file_search tool", param="tools")
    return found[0] if found else None


def _chat_options(req: ResponseRequest, config: ServerConfig) -> tuple[SamplingParams, dict[str, Any]]:
    """The request's sampling parameters and the engine's other keyword arguments."""
    tools = [{"type": "function", "function": {"name": t.name, "description": t.description or "",
                                               "parameters": t.parameters or {"type": "object", "properties": {}}}}
             for t in req.tools or [] if isinstance(t, FunctionToolDef)]
    choice: Any = None
    if isinstance(req.tool_choice, ToolChoiceFunction):
        choice = {"type": "function", "function": {"name": req.tool_choice.name}}
    elif isinstance(req.tool_choice, str):
        choice = req.tool_choice if tools else None
    fmt = req.text.format if req.text is not None else None
    response_format: dict[str, Any] | None = None
    if fmt is not None and fmt.type == "json_object":
        response_format = {"type": "json_object"}
    elif fmt is not None and fmt.type == "json_schema":
        if fmt.schema_ is None:
            raise ApiError(400, "text.format json_schema needs a schema", param="text.format.schema")
        response_format = {"type": "json_schema", "json_schema": {"name": fmt.name or "response",
                                                                  "schema": fmt.schema_}}
    thinking = None if req.reasoning is None or req.reasoning.effort is None else req.reasoning.effort != "none"
    params = SamplingParams.from_options(max_tokens=config.max_tokens(req.max_output_tokens),
                                         temperature=req.temperature, top_p=req.top_p,
                                         grammar=req.grammar)
    options = {"tools": tools or None, "tool_choice": choice, "response_format": response_format,
               "enable_thinking": thinking, "truncation": req.truncation}
    return params, {k: v for k, v in options.items() if v is not None}


def _annotations(text: str, references: list[dict[str, Any]], files: FilePath) -> list[dict[str, Any]]:
    """``file_citation`` annotations: the excerpts cited as ``[n]`` at their place, else every
    file found, at the end of the text."""
    by_index = {r["index"]: r for r in references}
    cited = [(m.end(), by_index[int(m.group(1))]) for m in re.finditer(r"\[(\d+)\]", text)
             if int(m.group(1)) in by_index]
    if not cited:
        seen: dict[str, dict[str, Any]] = {}
        for r in references:
            seen.setdefault(r["path"], r)
        cited = [(len(text), r) for r in seen.values()]
    return [{"type": "file_citation", "index": at, "file_id": file_id_of(r["path"], files),
             "filename": os.path.basename(r["path"])} for at, r in cited]


class _Build:
    """One response being made: its ids, its output items, and the stored conversation."""

    def __init__(self, req: ResponseRequest, model: str, files: FilePath) -> None:
        self.req, self.model, self.files = req, model, files
        self.id = f"resp_{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.output: list[dict[str, Any]] = []

    def search_item(self, query: str | None, references: list[dict[str, Any]]) -> dict[str, Any]:
        include = "file_search_call.results" in (self.req.include or [])
        results = [{"file_id": file_id_of(r["path"], self.files), "filename": os.path.basename(r["path"]),
                    "score": r["score"], "text": r["text"],
                    "attributes": {"path": r["path"], "citation": r["citation"]}} for r in references]
        return {"type": "file_search_call", "id": f"fs_{uuid.uuid4().hex[:24]}", "status": "completed",
                "queries": [query] if query else [], "results": results if include else None}

    def body(self, status: str, usage: Any = None, finish: str | None = None) -> dict[str, Any]:
        req = self.req
        incomplete = status == "completed" and finish == "length"
        return {
            "id": self.id, "object": "response", "created_at": self.created,
            "status": "incomplete" if incomplete else status, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": req.instructions, "max_output_tokens": req.max_output_tokens,
            "model": self.model, "output": self.output,
            "parallel_tool_calls": req.parallel_tool_calls if req.parallel_tool_calls is not None else True,
            "previous_response_id": req.previous_response_id, "reasoning": {"effort": None, "summary": None}
            if req.reasoning is None else {"effort": req.reasoning.effort, "summary": None},
            "store": req.store, "temperature": req.temperature, "top_p": req.top_p,
            "text": {"format": (req.text.format.model_dump(by_alias=True, exclude_none=True)
                                if req.text is not None else {"type": "text"})},
            "tool_choice": req.tool_choice if isinstance(req.tool_choice, str) or req.tool_choice is None
            else req.tool_choice.model_dump(), "tools": [t.model_dump() for t in req.tools or []],
            "truncation": req.truncation or "disabled", "user": req.user, "metadata": req.metadata or {},
            "usage": None if usage is None else {
                "input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens,
                "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                "input_tokens_details": {"cached_tokens": usage.cached_tokens},
                "output_tokens_details": {"reasoning_tokens": 0}},
        }


def _reply_items(reasoning: str | None, text: str | None, calls: list[Any],
                 references: list[dict[str, Any]] | None, files: FilePath) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if reasoning:
        items.append({"type": "reasoning", "id": f"rs_{uuid.uuid4().hex[:24]}", "summary": [],
                      "content": [{"type": "reasoning_text", "text": reasoning}]})
    if text or not calls:
        items.append({"type": "message", "id": f"msg_{uuid.uuid4().hex[:24]}", "status": "completed",
                      "role": "assistant", "content": [{
                          "type": "output_text", "text": text or "", "logprobs": [],
                          "annotations": _annotations(text or "", references, files) if references else []}]})
    for call in calls:
        items.append({"type": "function_call", "id": f"fc_{uuid.uuid4().hex[:24]}", "call_id": call.id,
                      "name": call.name, "arguments": call.arguments, "status": "completed"})
    return items


def _conversation(messages: list[dict[str, Any]], req: ResponseRequest, items: list[dict[str, Any]],
                  ) -> list[dict[str, Any]]:
    """What a later ``previous_response_id`` continues: this request's messages (without its
    instructions) and the reply."""
    kept = messages[1:] if req.instructions else list(messages)
    for item in items:
        if item["type"] == "message":
            kept.append({"role": "assistant", "content": item["content"][0]["text"]})
        elif item["type"] == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            if kept and kept[-1]["role"] == "assistant" and "tool_calls" in kept[-1]:
                kept[-1]["tool_calls"].append(call)
            else:
                kept.append({"role": "assistant", "content": None, "tool_calls": [call]})
    return kept


def responses_router(pool: ModelPool, config: ServerConfig, metrics: Metrics,
                     responses: dict[int | str, Any]) -> APIRouter:
    """The routes of the Responses API on ``pool`` (``responses``: their documented statuses)."""
    router = APIRouter(route_class=TextRoute)
    store = ResponseStore()

    async def prepare(req: ResponseRequest, stop: threading.Event,
                      ) -> tuple[list[dict[str, Any]], str | None, list[dict[str, Any]] | None]:
        """The conversation with any file_search context, the query, and the references."""
        history = store.get(req.previous_response_id)[1] if req.previous_response_id else []
        messages = _messages(req, history)
        search = _file_search(req)
        if search is None:
            return messages, None, None
        options = LocalDocsOptions(collections=search.vector_store_ids, k=search.max_num_results)
        with_context, references = await retrieve(pool, options, messages, stop, metrics.search)
        question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), None)
        return with_context, question if references else None, references or []

    @router.post("/v1/responses", responses=responses)
    async def create_response(req: ResponseRequest, request: Request) -> Any:
        filename = pool.resolve(req.model)
        params, options = _chat_options(req, config)

        def finish(build: _Build, messages: list[dict[str, Any]], usage: Any, reason: str | None) -> dict[str, Any]:
            body = build.body("completed", usage, reason)
            if req.store:
                store.put(body, _conversation(messages, req, build.output))
            return body

        async def answer(stop: threading.Event) -> JSONResponse:
            messages, query, references = await prepare(req, stop)
            build = _Build(req, filename, config.files_directory)
            if references is not None:
                build.output.append(build.search_item(query, references))
            out = await complete(pool, filename, messages, params, options, stop, metrics)
            build.output += _reply_items(out.message.reasoning_content, out.message.content,
                                         out.message.tool_calls, references, config.files_directory)
            return JSONResponse(finish(build, messages, out.usage, out.finish_reason))

        async def stream(stop: threading.Event) -> Any:
            messages, query, references = await prepare(req, stop)
            build = _Build(req, filename, config.files_directory)

            async def render(chunks: AsyncIterator[ChatCompletionChunk]) -> AsyncIterator[dict[str, Any]]:
                seq = iter(range(1 << 62))

                def event(kind: str, **fields: Any) -> dict[str, Any]:
                    return {"type": kind, "sequence_number": next(seq), **fields}

                yield event("response.created", response=build.body("in_progress"))
                yield event("response.in_progress", response=build.body("in_progress"))
                if references is not None:
                    item = build.search_item(query, references)
                    at = len(build.output)
                    yield event("response.output_item.added", output_index=at, item={**item, "status": "in_progress"})
                    for phase in ("in_progress", "searching", "completed"):
                        yield event(f"response.file_search_call.{phase}", output_index=at, item_id=item["id"])
                    build.output.append(item)
                    yield event("response.output_item.done", output_index=at, item=item)
                open_kind: str | None = None
                texts = {"reasoning": "", "message": ""}
                ids = {"reasoning": f"rs_{uuid.uuid4().hex[:24]}", "message": f"msg_{uuid.uuid4().hex[:24]}"}
                last: ChatCompletionChunk | None = None

                def close(kind: str) -> list[dict[str, Any]]:
                    at = len(build.output)
                    if kind == "reasoning":
                        part = {"type": "reasoning_text", "text": texts[kind]}
                        item = {"type": "reasoning", "id": ids[kind], "summary": [], "content": [part]}
                        done = [event("response.reasoning_text.done", item_id=ids[kind], output_index=at,
                                      content_index=0, text=texts[kind])]
                    else:
                        part = {"type": "output_text", "text": texts[kind], "logprobs": [],
                                "annotations": _annotations(texts[kind], references, config.files_directory)
                                if references else []}
                        item = {"type": "message", "id": ids[kind], "status": "completed", "role": "assistant",
                                "content": [part]}
                        done = [event("response.output_text.done", item_id=ids[kind], output_index=at,
                                      content_index=0, text=texts[kind], logprobs=[]),
                                event("response.content_part.done", item_id=ids[kind], output_index=at,
                                      content_index=0, part=part)]
                    build.output.append(item)
                    return [*done, event("response.output_item.done", output_index=at, item=item)]

                def open_(kind: str) -> list[dict[str, Any]]:
                    at = len(build.output)
                    if kind == "reasoning":
                        return [event("response.output_item.added", output_index=at, item={
                            "type": "reasoning", "id": ids[kind], "summary": [], "content": []})]
                    return [event("response.output_item.added", output_index=at, item={
                                "type": "message", "id": ids[kind], "status": "in_progress", "role": "assistant",
                                "content": []}),
                            event("response.content_part.added", item_id=ids[kind], output_index=at,
                                  content_index=0, part={"type": "output_text", "text": "", "annotations": [],
                                                         "logprobs": []})]

                async for chunk in chunks:
                    last = chunk
                    for key, kind in (("reasoning_content", "reasoning"), ("content", "message")):
                        piece = chunk.delta.get(key)
                        if not piece:
                            continue
                        if open_kind != kind:
                            if open_kind is not None:
                                for e in close(open_kind):
                                    yield e
                            open_kind = kind
                            for e in open_(kind):
                                yield e
                        texts[kind] += piece
                        name = "response.reasoning_text.delta" if kind == "reasoning" else "response.output_text.delta"
                        extra = {} if kind == "reasoning" else {"logprobs": []}
                        yield event(name, item_id=ids[kind], output_index=len(build.output), content_index=0,
                                    delta=piece, **extra)
                calls = tool_calls(last)
                if open_kind is None and not calls:  # an empty answer is still a message
                    open_kind = "message"
                    for e in open_("message"):
                        yield e
                if open_kind is not None:
                    for e in close(open_kind):
                        yield e
                for call in calls:
                    at = len(build.output)
                    item = {"type": "function_call", "id": f"fc_{uuid.uuid4().hex[:24]}", "call_id": call.id,
                            "name": call.name, "arguments": "", "status": "in_progress"}
                    yield event("response.output_item.added", output_index=at, item=item)
                    yield event("response.function_call_arguments.delta", item_id=item["id"], output_index=at,
                                delta=call.arguments)
                    yield event("response.function_call_arguments.done", item_id=item["id"], output_index=at,
                                arguments=call.arguments)
                    item = {**item, "arguments": call.arguments, "status": "completed"}
                    build.output.append(item)
                    yield event("response.output_item.done", output_index=at, item=item)
                usage = last.usage if last is not None else None
                body = finish(build, messages, usage, last.finish_reason if last is not None else None)
                kind = "response.incomplete" if body["status"] == "incomplete" else "response.completed"
                yield event(kind, response=body)

            return await chat_stream(pool, filename, messages, params, options, stop, metrics, render, RESPONSES)

        return await unless_client_leaves(request, stream if req.stream else answer)

    @router.get("/v1/responses/{response_id}", responses=responses)
    async def get_response(response_id: Annotated[str, Path(max_length=200)]) -> dict[str, Any]:
        return store.get(response_id)[0]

    @router.delete("/v1/responses/{response_id}", responses=responses)
    async def delete_response(response_id: Annotated[str, Path(max_length=200)]) -> dict[str, Any]:
        store.delete(response_id)
        return {"id": response_id, "object": "response.deleted", "deleted": True}

    return router
