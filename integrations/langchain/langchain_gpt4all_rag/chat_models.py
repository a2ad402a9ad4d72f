"""``ChatGPT4All``: a LangChain chat model on a local GGUF model through gpt4all-rag."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import InputTokenDetails, UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.base import OutputParserLike
from langchain_core.output_parsers.openai_tools import (
    JsonOutputKeyToolsParser,
    PydanticToolsParser,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import Field

from gpt4all_rag import GPT4All
from gpt4all_rag.engine.sampling import SamplingParams
from gpt4all_rag.engine.types import ChatCompletion, ChatCompletionChunk, Usage

from . import _messages
from ._common import PROVIDER, GPT4AllParams, identifying_params, ls_params, pump, run_blocking

__all__ = ["ChatGPT4All"]

_ToolChoice = Literal["auto", "any", "required", "none"]


@dataclass
class _Call:
    """One call of the chat core, prepared: the model, its messages and keyword arguments."""

    model: GPT4All
    model_name: str
    messages: list[dict[str, Any]]
    params: SamplingParams
    kwargs: dict[str, Any] = field(default_factory=dict)

    def run(self, *, stream: bool) -> Any:
        return self.model.engine.create_chat_completion(self.messages, self.params, stream=stream,
                                                        **self.kwargs)


class ChatGPT4All(GPT4AllParams, BaseChatModel):
    """Chat model on a local GGUF model, run in-process by gpt4all-rag's llama.cpp backend.

    Messages are rendered with the model's own chat template (the GGUF's
    ``tokenizer.chat_template``, or the catalogue's; ``chat_template`` overrides both) and the
    prompt is generated from outside a GPT4All chat session, so one instance can serve any
    number of independent conversations; the engine's prompt cache still makes a conversation
    that grows turn by turn cheap (only the new tokens are evaluated, see
    ``usage_metadata["input_token_details"]["cache_read"]``). How messages map onto the
    template (several system messages, tool results ...) is described in
    :mod:`langchain_gpt4all_rag._messages`. A conversation longer than ``n_ctx`` raises
    :class:`gpt4all_rag.ContextOverflowError` (a ``ValueError``); trim it first, e.g. with
    ``langchain_core.messages.trim_messages``.

    Setup: ``pip install langchain-gpt4all-rag``; models are GGUF files (see gpt4all-rag).

    Example:
        .. code-block:: python

            from langchain_gpt4all_rag import ChatGPT4All

            llm = ChatGPT4All(model="SmolLM2-135M-Instruct.Q4_1.gguf", model_path="models",
                              temperature=0, max_tokens=64)
            llm.invoke("Name three colours.").content
            for chunk in llm.stream("Count to five."):
                print(chunk.content, end="")

    Fields:
        model: model file name (found in ``model_path``) or path to a GGUF file.
        model_path: directory of the model (None: ``~/.cache/gpt4all``).
        allow_download: download a missing catalogue model (default True).
        n_ctx: context window in tokens (default 2048, the SDK's).
        n_threads: CPU threads (None: a default from the CPU count).
        device: ``"cpu"`` (default), ``"gpu"``, ``"cuda"``, ``"vulkan"``, ``"metal"`` ...
        n_parallel: calls the loaded model serves at once, decoded together (default 1;
            ``batch``/``abatch`` of n prompts run concurrently with n_parallel >= n, each call
            holding a KV cache of ``n_ctx`` tokens).
        temp (alias ``temperature``), top_k, top_p, min_p, repeat_penalty, repeat_last_n,
            seed, max_tokens, n_batch: sampling parameters; None (the default of each) leaves
            the engine's default. Meaning, ranges and defaults are documented once, in
            :mod:`gpt4all_rag.engine.sampling`, and checked there when a call is made.
        stop: stop sequences (honoured during generation; a call's ``stop`` replaces them).
        streaming: make ``invoke`` stream internally, so callbacks see every token.
        chat_template: a Jinja chat template that replaces the model's.
        timeout, max_retries, api_key: accepted for LangChain's standard parameters, no effect.

    Per-call keyword arguments (``invoke(..., temperature=0)``, ``bind(...)``): any sampling
    field, ``stop``, ``grammar`` (a GBNF grammar the reply must follow) and ``model`` (another
    model file; loaded on first use and kept loaded by this instance).

    Streaming is real: tokens are yielded as the engine produces them; the last chunk has
    ``chunk_position="last"`` and carries ``usage_metadata`` and ``response_metadata``
    (``model_name``, ``model_provider``, ``finish_reason``: ``"stop"``, ``"length"``).

    Tools and structured output use grammar-constrained sampling: the reply is forced to be
    valid JSON of the given schema, even from a small model (the *content* is only as good as
    the model). ``bind_tools`` supports one call per reply.

    Thread safety: an instance may be shared by threads; the loaded model serves
    ``n_parallel`` calls at once (decoded together) and queues the rest in arrival order.
    Async methods run the engine in a worker thread and never block the event loop.

    Weights are loaded on the first call, not in the constructor. Instances with the same
    ``model`` and load options (``model_path``, ``allow_download``, ``n_ctx``, ``n_threads``,
    ``device``) share one loaded model while any of them holds it (LangChain code often builds
    a model object per request); ``close()`` drops this instance's hold. ``get_num_tokens``
    counts with the model's own tokenizer.

    Raises (on calls):
        gpt4all_rag.ModelNotFoundError: the model file does not exist (a FileNotFoundError).
        gpt4all_rag.ModelLoadError: the file is not a loadable GGUF model (a ValueError).
        gpt4all_rag.ChatTemplateError: the model has no chat template and none was given, or
            the template rejected the conversation (a ValueError).
        gpt4all_rag.ContextOverflowError: the conversation does not fit into n_ctx (a ValueError).
        gpt4all_rag.errors.ConcurrentUseError: this thread calls the model while it still
            consumes its own stream from it.
        ValueError: an unsupported message, content block or keyword argument.
    """

    model_config = GPT4AllParams.model_config  # BaseChatModel/BaseLLM would relax `extra`

    chat_template: str | None = Field(
        default=None, description="Jinja chat template replacing the model's own.")
    logprobs: bool = Field(
        default=False, description="Report the generated tokens' log-probabilities in "
        "response_metadata['logprobs'] (OpenAI's shape: {'content': [...]}).")
    top_logprobs: int | None = Field(
        default=None, ge=0, le=20, description="Alternatives per token with logprobs (0-20).")

    # -- LangChain plumbing -----------------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "gpt4all-rag-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return identifying_params(self)

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return ls_params(self, "chat", stop, kwargs)

    # -- preparing a call -------------------------------------------------------------------
    def _prepare(self, messages: Sequence[BaseMessage], stop: list[str] | None,
                 kwargs: dict[str, Any]) -> _Call:
        kwargs = dict(kwargs)
        model_name = self._model_name(kwargs)
        params = self._sampling(stop, kwargs)
        call_kwargs: dict[str, Any] = {}
        tools: list[dict[str, Any]] | None = kwargs.pop("tools", None)
        tool_choice = kwargs.pop("tool_choice", None)
        has_schema = "json_schema" in kwargs
        schema = kwargs.pop("json_schema", None)
        logprobs = kwargs.pop("logprobs", self.logprobs)
        top_logprobs = kwargs.pop("top_logprobs", self.top_logprobs)
        self._check_no_kwargs(kwargs)
        call_kwargs.update(logprobs=bool(logprobs), top_logprobs=top_logprobs,
                           chat_template=self.chat_template)
        if tools and tool_choice != "none":
            call_kwargs["tools"] = tools
            call_kwargs["tool_choice"] = (
                "auto" if tool_choice in (None, "auto") else "required"
                if tool_choice in ("any", "required") else
                {"type": "function", "function": {"name": tool_choice}})
        elif has_schema:
            call_kwargs["response_format"] = (
                {"type": "json_object"} if schema is None else
                {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}})
        engine = self._engine(model_name)
        return _Call(engine.model, model_name, _messages.to_openai_messages(messages), params, call_kwargs)

    # -- results ----------------------------------------------------------------------------
    def _metadata(self, call: _Call, usage: Usage, finish_reason: str | None,
                  logprobs: list[Any] | None) -> tuple[UsageMetadata, dict[str, Any]]:
        meta: dict[str, Any] = {"model_name": call.model_name, "model_provider": PROVIDER,
                                "finish_reason": finish_reason}
        if logprobs is not None:
            meta["logprobs"] = {"content": [t.to_dict() for t in logprobs]}
        return UsageMetadata(
            input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            input_token_details=InputTokenDetails(cache_read=usage.cached_tokens)), meta

    def _message(self, call: _Call, completion: ChatCompletion) -> AIMessage:
        usage, meta = self._metadata(call, completion.usage, completion.finish_reason,
                                     completion.logprobs)
        reply = completion.message
        tool_calls, invalid = _messages.to_langchain_tool_calls(reply.tool_calls)
        extra = {"reasoning_content": reply.reasoning_content} if reply.reasoning_content else {}
        return AIMessage(content=reply.content or "", tool_calls=tool_calls,
                         invalid_tool_calls=invalid, additional_kwargs=extra,
                         usage_metadata=usage, response_metadata=meta)

    def _chunk(self, call: _Call, chunk: ChatCompletionChunk) -> ChatGenerationChunk | None:
        delta = chunk.delta
        extra = {"reasoning_content": delta["reasoning_content"]} \
            if delta.get("reasoning_content") else {}
        calls = [tool_call_chunk(name=c["function"]["name"], args=c["function"]["arguments"],
                                 id=c["id"], index=c["index"]) for c in delta.get("tool_calls", [])]
        if chunk.finish_reason is None:
            if not delta.get("content") and not extra:
                return None
            return ChatGenerationChunk(message=AIMessageChunk(
                content=delta.get("content", ""), additional_kwargs=extra))
        assert chunk.usage is not None  # the last chunk always carries it
        usage, meta = self._metadata(call, chunk.usage, chunk.finish_reason, None)
        message = AIMessageChunk(content=delta.get("content", ""), additional_kwargs=extra,
                                 tool_call_chunks=calls, usage_metadata=usage,
                                 response_metadata=meta, chunk_position="last")
        return ChatGenerationChunk(message=message,
                                   generation_info={"finish_reason": chunk.finish_reason})

    # -- generation -------------------------------------------------------------------------
    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None,
                  **kwargs: Any) -> ChatResult:
        call = self._prepare(messages, stop, kwargs)
        return ChatResult(generations=[ChatGeneration(message=self._message(call, call.run(stream=False)))])

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None,
                         **kwargs: Any) -> ChatResult:
        return await run_blocking(lambda: self._generate(messages, stop, None, **kwargs))

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        call = self._prepare(messages, stop, kwargs)
        stream = call.run(stream=True)
        try:
            for item in stream:
                chunk = self._chunk(call, item)
                if chunk is None:
                    continue
                if run_manager is not None and chunk.text:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        finally:
            stream.close()

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        call = await run_blocking(lambda: self._prepare(messages, stop, kwargs))
        items = pump(lambda: call.run(stream=True))
        try:
            async for item in items:
                chunk = self._chunk(call, item)
                if chunk is None:
                    continue
                if run_manager is not None and chunk.text:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        finally:
            await items.aclose()

    # -- tools and structured output --------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: dict[str, Any] | str | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; the model's reply is either text or one grammar-constrained tool call.

        Args:
            tools: LangChain tools, functions, pydantic models, TypedDicts or OpenAI tool
                dicts (anything ``convert_to_openai_tool`` accepts).
            tool_choice: ``None``/``"auto"``: the model chooses between text and a call;
                ``"any"``/``"required"``/``True``: it must call one of the tools; a tool name
                (or ``{"type": "function", "function": {"name": ...}}``): it must call that
                tool; ``"none"``/``False``: no tool call.
            **kwargs: further arguments bound to the model.

        Returns:
            A runnable whose ``AIMessage`` has ``tool_calls`` (one at most) or text content.
            A call that could not be completed (``max_tokens`` reached inside the JSON) is
            reported in ``invalid_tool_calls``.

        Raises:
            ValueError: ``tool_choice`` names a tool that is not bound.
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        choice = _normalise_tool_choice(tool_choice)
        if choice not in (None, "auto", "any", "required", "none"):
            names = [t["function"]["name"] for t in formatted]
            if choice not in names:
                raise ValueError(f"tool_choice {choice!r} is not one of the bound tools {names}")
        return super().bind(tools=formatted, tool_choice=choice, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """A runnable whose output follows ``schema``, enforced by a grammar while sampling.

        Args:
            schema: a pydantic model (v2 or v1), a TypedDict, a JSON schema dict or an OpenAI
                tool/function dict.
            include_raw: return ``{"raw": AIMessage, "parsed": ..., "parsing_error": ...}``
                instead of raising on a parsing error.
            method: ``"json_schema"`` (default): the reply is a JSON object of the schema;
                ``"function_calling"``: a forced tool call whose arguments follow the schema;
                ``"json_mode"``: any JSON object (the schema only parses the result).
            strict: accepted for compatibility; the grammar is always strict.
            **kwargs: not supported.

        Returns:
            A runnable producing a pydantic instance (pydantic schema) or a dict.

        Raises:
            ValueError: unknown method or extra keyword arguments.
            gpt4all_rag.errors.GrammarError: the schema uses a construct the converter cannot
                express (on the first call).

        A reply cut off by ``max_tokens`` is not valid JSON: the parser then raises
        ``OutputParserException`` (or reports it in ``parsing_error``); give the model enough
        ``max_tokens`` for the object.
        """
        if kwargs:
            raise ValueError(f"unsupported arguments: {sorted(kwargs)}")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        fmt = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        parser: OutputParserLike[Any]
        if method == "function_calling":
            name = convert_to_openai_tool(schema)["function"]["name"]
            llm = self.bind_tools([schema], tool_choice=name, ls_structured_output_format=fmt)
            if is_pydantic:
                parser = PydanticToolsParser(tools=[schema],  # type: ignore[list-item]
                                             first_tool_only=True)
            else:
                parser = JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
        elif method in ("json_schema", "json_mode"):
            json_schema = convert_to_json_schema(schema) if method == "json_schema" else None
            llm = self.bind(json_schema=json_schema, ls_structured_output_format=fmt)
            if is_pydantic:
                parser = PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
            else:
                parser = JsonOutputParser()
        else:
            raise ValueError(f"unknown method {method!r}: use 'json_schema', "
                             "'function_calling' or 'json_mode'")
        if not include_raw:
            return llm | parser
        parse = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser,
                                           parsing_error=lambda _: None)
        no_parse = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parse.with_fallbacks([no_parse],
                                                           exception_key="parsing_error")


def _normalise_tool_choice(choice: dict[str, Any] | str | bool | None) -> str | None:
    if choice is True:
        return "any"
    if choice is False:
        return "none"
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        if not isinstance(name, str):
            raise ValueError(f"cannot read a tool name from tool_choice {choice!r}")
        return name
    if choice is not None and not isinstance(choice, str):
        raise TypeError(f"tool_choice must be a string, dict, bool or None, got {choice!r}")
    return choice
