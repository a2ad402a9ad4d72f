"""Structured prediction for ``GPT4AllRag``: JSON-schema grammars, parsing, partial objects.

The output class's JSON schema becomes a GBNF grammar (llama.cpp's converter, through
:func:`gpt4all_rag.engine.grammar.json_schema_to_gbnf`), so sampling can only produce JSON of that
shape; the schema is also put in the prompt so the model knows what the fields mean.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import llama_index.core.instrumentation as instrument
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole, TextBlock
from llama_index.core.bridge.pydantic import ValidationError
from llama_index.core.instrumentation.events.llm import (
    LLMStructuredPredictEndEvent,
    LLMStructuredPredictInProgressEvent,
    LLMStructuredPredictStartEvent,
)
from llama_index.core.llms.llm import LLM
from llama_index.core.prompts import BasePromptTemplate

from gpt4all_rag import errors

__all__ = ["StructuredOutputError"]

dispatcher = instrument.get_dispatcher(__name__)
M = TypeVar("M")

SCHEMA_INSTRUCTION = "Answer with a JSON object that follows this JSON schema:\n{schema}"


class StructuredOutputError(errors.GPT4AllRagError, ValueError):
    """Constrained generation did not produce a valid object (cut by ``max_tokens``, or the
    JSON does not validate against the output class)."""


def request(llm: LLM, output_cls: type[Any], prompt: BasePromptTemplate,
            llm_kwargs: dict[str, Any] | None,
            prompt_args: dict[str, Any]) -> tuple[list[ChatMessage], dict[str, Any]]:
    """The messages (with the schema instruction) and call parameters (with the grammar)."""
    from gpt4all_rag.engine.grammar import json_schema_to_gbnf

    schema = output_cls.model_json_schema()
    call = dict(llm_kwargs or {})
    if "grammar" in call:
        raise errors.InvalidParameterError(
            "structured prediction sets the grammar from output_cls; do not pass grammar")
    call["grammar"] = json_schema_to_gbnf(schema)
    messages = llm._get_messages(prompt, **prompt_args)
    instruction = SCHEMA_INSTRUCTION.format(schema=json.dumps(schema, ensure_ascii=False))
    if messages and messages[-1].role == MessageRole.USER:
        last = messages[-1]
        messages[-1] = ChatMessage(role=MessageRole.USER,
                                   blocks=[*last.blocks, TextBlock(text="\n\n" + instruction)])
    else:
        messages.append(ChatMessage(role=MessageRole.USER, content=instruction))
    return messages, call


def parse(output_cls: type[M], response: ChatResponse) -> M:
    """Validate the generated JSON as ``output_cls``.

    Raises:
        StructuredOutputError: the output was cut by ``max_tokens`` or does not validate.
    """
    text = response.message.content or ""
    raw = response.raw if isinstance(response.raw, dict) else {}
    if raw.get("finish_reason") == "length":
        used = raw.get("usage", {}).get("completion_tokens")
        raise StructuredOutputError(
            f"the JSON for {output_cls.__name__} was cut after {used} tokens (max_tokens or the "
            f"context window); raise max_tokens. Output so far: {text[:200]!r}")
    try:
        return output_cls.model_validate_json(text)  # type: ignore[attr-defined]
    except ValidationError as exc:
        raise StructuredOutputError(
            f"the output does not validate as {output_cls.__name__}: {exc}; output: "
            f"{text[:200]!r}") from exc


@contextmanager
def events(output_cls: type[Any], prompt: BasePromptTemplate,
           prompt_args: dict[str, Any]) -> Iterator[Callable[[M], M]]:
    """Emit LlamaIndex's structured-prediction start event; ``done(result)`` emits the end."""
    dispatcher.event(LLMStructuredPredictStartEvent(
        output_cls=output_cls, template=prompt, template_args=prompt_args))

    def done(result: M) -> M:
        dispatcher.event(LLMStructuredPredictEndEvent(output=result))
        return result

    yield done


def stream(output_cls: type[Any], prompt: BasePromptTemplate, prompt_args: dict[str, Any],
           chat_stream: Iterator[ChatResponse]) -> Generator[Any, None, None]:
    """Partial objects each time the JSON so far parses to a new value, then the validated one.

    Raises:
        StructuredOutputError: when the stream ends with invalid or cut JSON.
    """
    from llama_index.core.program.utils import process_streaming_objects

    dispatcher.event(LLMStructuredPredictStartEvent(
        output_cls=output_cls, template=prompt, template_args=prompt_args))
    current: list[Any] | None = None
    last: ChatResponse | None = None
    try:
        for response in chat_stream:
            last = response
            if not response.delta:
                continue
            obj: Any = process_streaming_objects(response, output_cls, cur_objects=current)
            changed = current is None or obj.model_dump() != current[0].model_dump()
            current = [obj]
            if changed:  # most tokens (quotes, braces, digits of a number) change nothing
                dispatcher.event(LLMStructuredPredictInProgressEvent(output=obj))
                yield obj
    finally:
        close = getattr(chat_stream, "close", None)
        if close is not None:
            close()
    if last is None:
        raise StructuredOutputError(f"the model produced no output for {output_cls.__name__}")
    result = parse(output_cls, last)
    dispatcher.event(LLMStructuredPredictEndEvent(output=result))
    yield result
