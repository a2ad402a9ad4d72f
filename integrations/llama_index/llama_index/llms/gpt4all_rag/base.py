"""``GPT4AllRag``: a LlamaIndex LLM on a local GGUF model, through gpt4all-rag's ``GPT4All``.

Chat messages go down to gpt4all-rag's chat core (``GPT4All.create_chat_completion``), which
renders them with the model's own chat template (the catalogue's, else the GGUF's
``tokenizer.chat_template``, else one passed as ``chat_template``) and never lets message
text become a control token. Tools are rendered and parsed in the model's own format (a JSON
call forced by a grammar for templates without one), so ``FunctionAgent`` works with it.
Streaming is the engine's token stream; async methods run the engine in a worker thread so
the event loop is never blocked; structured prediction constrains generation with a GBNF
grammar converted from the output class's JSON schema.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from llama_index.core.base.llms.generic_utils import (
    messages_to_prompt as generic_messages_to_prompt,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection, default_completion_to_prompt
from llama_index.core.prompts import BasePromptTemplate
from llama_index.core.types import Model
from pydantic import AliasChoices, model_validator
from typing_extensions import Self

from gpt4all_rag import GPT4All, errors
from gpt4all_rag.aio import iterate_in_thread
from gpt4all_rag.engine.types import ChatCompletion
from gpt4all_rag.gpt4all import DEFAULT_N_CTX
from gpt4all_rag.lazy import Lazy
from gpt4all_rag.engine.sampling import ALIASES, DEFAULTS, FIELDS, SamplingParams
from gpt4all_rag.engine.templates import ChatTemplate

from . import _messages, _structured

__all__ = ["GPT4AllRag"]

#: Parameters a call (``complete``, ``chat``, their streaming and async forms) may override:
#: the chat core's sampling schema (gpt4all_rag.engine.sampling) with its aliases, and for chat
#: ``tools``, ``tool_choice``, ``logprobs``, ``top_logprobs``.
CALL_PARAMETERS = frozenset(FIELDS) | frozenset(ALIASES) | frozenset(
    {"tools", "tool_choice", "logprobs", "top_logprobs"})
_SAMPLING = tuple(f for f in FIELDS if f not in ("stop", "grammar"))  # the fields set here
R = TypeVar("R")
_SYSTEM_ROLES = (MessageRole.SYSTEM, MessageRole.DEVELOPER)


class GPT4AllRag(FunctionCallingLLM):
    """A local GGUF chat model for LlamaIndex, on gpt4all-rag's llama.cpp backend.

    The model is loaded on first use (building the object is cheap), or an already loaded
    :class:`gpt4all_rag.GPT4All` can be passed as ``model``. Chat renders the messages with
    the model's own chat template; ``complete`` wraps the prompt as one user message unless
    ``formatted=True`` (raw text completion) or a ``completion_to_prompt`` is given.

    Sampling parameters (``temp``, ``top_k``, ``top_p``, ``min_p``, ``repeat_penalty``,
    ``repeat_last_n``, ``seed``, ``max_tokens``, ``n_batch``) mean what
    :mod:`gpt4all_rag.engine.sampling` documents; None leaves its default. Each call may
    override them and ``max_tokens``, ``n_batch``, ``stop`` and ``grammar`` as keyword
    arguments (``llm.complete("...", max_tokens=32, stop=["\\n"])``); ``temperature`` is
    accepted for ``temp``. Any other keyword raises
    :class:`~gpt4all_rag.errors.InvalidParameterError`.

    Responses carry the engine's counters in ``raw``: ``{"usage": {"prompt_tokens",
    "completion_tokens", "total_tokens"}, "finish_reason": "stop"|"length"|...}`` (LlamaIndex's
    ``TokenCountingHandler`` reads them). A stream's last chunk has an empty ``delta`` and
    carries them.

    Thread safety: calls may come from several threads and asyncio tasks; the model serves
    ``n_parallel`` of them at once (decoded together) and queues the rest in arrival order.

    Example:
        >>> from llama_index.llms.gpt4all_rag import GPT4AllRag
        >>> llm = GPT4AllRag("SmolLM2-135M-Instruct.Q4_1.gguf", model_path="~/models")
        >>> llm.complete("Name a primary colour.", max_tokens=16).text  # doctest: +SKIP

    Every generation method (they load the model on first use) raises gpt4all-rag's errors:

    Raises:
        ModelNotFoundError: (a FileNotFoundError) the model file or ``model_path`` is missing.
        ModelLoadError: (a ValueError) the file is not a loadable GGUF model.
        ChatTemplateError: (a ValueError) no chat template is available, or it failed.
        ContextOverflowError: (a ValueError) the prompt does not fit into ``n_ctx``.
        InvalidParameterError: (a ValueError) an unknown or out-of-range call parameter.
        UnsupportedOperationError: (a ValueError) an embedding model, or a message with
            images, audio, video or documents.
        ModelClosedError: the LLM was closed.
    """

    model_name: str = Field(description="Model file name (or catalogue name, or absolute path).")
    model_path: str | None = Field(
        default=None,
        description="Directory holding the model; None means GPT4All's default "
                    "(~/.cache/gpt4all or $GPT4ALL_MODEL_PATH).")
    allow_download: bool = Field(
        default=True, description="Allow downloading a catalogue model that is not present.")
    n_ctx: int = Field(default=DEFAULT_N_CTX, gt=0, description="Context window in tokens.")
    n_threads: int | None = Field(default=None, gt=0, description="CPU threads; None: automatic.")
    device: str | None = Field(default=None, description="'cpu' (None), 'gpu', 'cuda', ...")
    ngl: int = Field(default=100, ge=-1, description="Layers offloaded to a GPU device.")
    n_parallel: int = Field(
        default=1, ge=1, le=64, description="Calls the model serves at once, decoded together "
                                            "(asyncio.gather of n achat calls runs concurrently "
                                            "with n_parallel >= n); each holds n_ctx of KV cache.")
    # Sampling fields: None (the default of each) leaves the engine's default; meaning, ranges
    # and defaults live in gpt4all_rag.engine.sampling alone, which checks them on each call.
    max_tokens: int | None = Field(default=None, description="Maximum tokens generated per call.")
    temp: float | None = Field(default=None, validation_alias=AliasChoices("temp", "temperature"),
                               description="Temperature; 0 is greedy (deterministic).")
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    repeat_last_n: int | None = None
    n_batch: int | None = Field(
        default=None, description="Prompt tokens per evaluation batch; None: the context's batch "
                                  "size, the fastest.")
    seed: int | None = Field(default=None, description="Sampling seed; None: fresh per call.")
    logprobs: bool = Field(
        default=False, description="Report the generated tokens' log-probabilities in "
                                   "ChatResponse.logprobs.")
    top_logprobs: int = Field(default=0, ge=0, le=20, description="Alternatives per token (0-20).")
    stop: list[str] = Field(
        default_factory=list, description="Stop sequences applied to every call.")
    chat_template: str | None = Field(
        default=None,
        description="A Jinja chat template overriding the catalogue's and the GGUF's.")

    _client: Lazy[GPT4All] = PrivateAttr()

    def __init__(self, model_name: str | None = None, *, model: GPT4All | None = None,
                 **kwargs: Any) -> None:
        """Configure the LLM; the model itself is loaded on first use.

        Args:
            model_name: the model file (``.gguf`` appended when missing), a catalogue name,
                or an absolute path. May be omitted when ``model`` is given.
            model: an already loaded ``GPT4All`` to use instead of loading one; the caller
                keeps ownership (``close()`` does not free it).
            **kwargs: the fields documented on the class, and LlamaIndex's ``LLM`` fields
                (``system_prompt``, ``callback_manager``, ``messages_to_prompt``,
                ``completion_to_prompt``, ``pydantic_program_mode``, ``output_parser``).

        Raises:
            pydantic.ValidationError: (a ValueError) a field out of range, or neither
                ``model_name`` nor ``model`` given.
            InvalidParameterError: (a ValueError) ``model`` is not a ``GPT4All``.
        """
        if model is not None and not isinstance(model, GPT4All):
            raise errors.InvalidParameterError(
                f"model must be a gpt4all_rag.GPT4All, got {type(model).__name__}")
        if model_name is None and model is not None:
            model_name = Path(model.config["path"]).name
        if model_name is not None:
            kwargs["model_name"] = os.fspath(model_name)
        if kwargs.get("model_path") is not None:
            kwargs["model_path"] = os.path.expanduser(os.fspath(kwargs["model_path"]))
        super().__init__(**kwargs)
        self._client = Lazy(self._load, free=GPT4All.close,
                            what=f"this GPT4AllRag ({self.model_name})")
        if model is not None:
            self._client.set(model)

    @classmethod
    def class_name(cls) -> str:
        return "GPT4AllRag"

    # -- model lifetime -------------------------------------------------------------------
    @property
    def client(self) -> GPT4All:
        """The underlying ``GPT4All``, loaded on first access (thread-safe).

        Raises:
            ModelNotFoundError, ModelLoadError, DownloadError: as ``GPT4All()``.
            ModelClosedError: :meth:`close` was called.
        """
        return self._client.get()

    def _load(self) -> GPT4All:
        return GPT4All(self.model_name, model_path=self.model_path, allow_download=self.allow_download,
                       n_threads=self.n_threads, device=self.device, n_ctx=self.n_ctx, ngl=self.ngl,
                       n_parallel=self.n_parallel)

    @property
    def is_loaded(self) -> bool:
        """Whether the model weights are in memory."""
        return self._client.loaded

    def close(self) -> None:
        """Free the model (unless it was passed in as ``model``). Idempotent.

        Any later call raises :class:`~gpt4all_rag.errors.ModelClosedError`.
        """
        self._client.close()

    # -- metadata ---------------------------------------------------------------------------
    @property
    def metadata(self) -> LLMMetadata:
        """Context window (the loaded model's ``n_ctx``, else the configured one), etc."""
        client = self._client.peek()
        return LLMMetadata(
            context_window=self.n_ctx if client is None else client.engine.n_ctx,
            num_output=DEFAULTS.max_tokens if self.max_tokens is None else self.max_tokens,
            is_chat_model=True,
            is_function_calling_model=True,
            model_name=self.model_name,
            system_role=MessageRole.SYSTEM,
        )

    # -- prompts ----------------------------------------------------------------------------
    def _chat_template(self, client: GPT4All) -> ChatTemplate:
        """The template the engine's chat calls use: ours, the catalogue's, the GGUF's."""
        return client.engine.template(client.engine.chat_template_source(self.chat_template))

    def format_messages(self, messages: Sequence[ChatMessage]) -> str:
        """Render messages into the prompt text the model sees (with special tokens as text).

        ``system_prompt``, when set, is added as a first system message unless the messages
        start with one. A custom ``messages_to_prompt`` replaces the chat template.

        Args:
            messages: the conversation; roles ``developer`` -> ``system`` and ``chatbot`` /
                ``model`` -> ``assistant`` are mapped, other roles are passed to the template.

        Returns:
            The prompt, ending with the header of the assistant's turn.

        Raises:
            ChatTemplateError: no template, or the template rejected the conversation.
            UnsupportedOperationError: a message holds an image, audio, video or document.
        """
        messages = list(messages)
        if self.system_prompt and not (messages and messages[0].role in _SYSTEM_ROLES):
            messages.insert(0, ChatMessage(role=MessageRole.SYSTEM, content=self.system_prompt))
        custom = self.messages_to_prompt
        if custom is not None and custom is not generic_messages_to_prompt:
            return custom(messages)
        client = self.client
        return self._chat_template(client).render(
            _messages.template_messages(messages), add_generation_prompt=True,
            special_tokens=client.engine.special_tokens)

    def _completion_prompt(self, prompt: str, formatted: bool) -> str:
        if formatted:
            return prompt
        custom = self.completion_to_prompt
        if custom is not None and custom is not default_completion_to_prompt:
            return custom(prompt)
        return self.format_messages([ChatMessage(role=MessageRole.USER, content=prompt)])

    @model_validator(mode="after")
    def _check_sampling(self) -> Self:
        """The sampling fields are checked by the schema when the LLM is built, too."""
        SamplingParams.from_options(**{k: v for k in _SAMPLING if (v := getattr(self, k)) is not None})
        return self

    def _parameters(self, kwargs: dict[str, Any]) -> SamplingParams:
        """This call's :class:`~gpt4all_rag.engine.sampling.SamplingParams`: the fields that
        are set, overridden by ``kwargs`` (aliases resolved, and checked, by the schema), with
        ``stop`` appended to the fields'.

        Raises:
            InvalidParameterError: an unknown parameter or a bad value.
        """
        unknown = sorted(set(kwargs) - CALL_PARAMETERS)
        if unknown:
            raise errors.InvalidParameterError(
                f"unknown generation parameter(s) {unknown}; accepted: {sorted(CALL_PARAMETERS)}")
        overrides = {k: v for k, v in kwargs.items()
                     if k not in ("stop", "tools", "tool_choice", "logprobs", "top_logprobs")}
        named = {ALIASES.get(k, k) for k in overrides}
        fields = {k: v for k in _SAMPLING if (v := getattr(self, k)) is not None and k not in named}
        stop = kwargs.get("stop")
        extra = [stop] if isinstance(stop, str) else list(stop or [])
        return SamplingParams.from_options(**fields, **overrides, stop=list(self.stop) + extra)

    def _chat_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The engine's ``create_chat_completion`` keyword arguments of one chat call, but the
        sampling parameters (:meth:`_parameters`)."""
        return dict(chat_template=self.chat_template, tools=kwargs.get("tools"),
                    tool_choice=kwargs.get("tool_choice"),
                    logprobs=bool(kwargs.get("logprobs", self.logprobs)),
                    top_logprobs=kwargs.get("top_logprobs", self.top_logprobs))

    def _uses_core(self) -> bool:
        custom = self.messages_to_prompt
        return custom is None or custom is generic_messages_to_prompt

    def _messages(self, messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
        messages = list(messages)
        if self.system_prompt and not (messages and messages[0].role in _SYSTEM_ROLES):
            messages.insert(0, ChatMessage(role=MessageRole.SYSTEM, content=self.system_prompt))
        return _messages.openai_messages(messages)

    # -- generation -------------------------------------------------------------------------
    def _usage(self, client: GPT4All) -> dict[str, Any]:
        stats = client.engine.stats
        return _messages.raw(stats.usage().to_dict(), stats.finish_reason)

    def _generate(self, prompt: str, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        params = self._parameters(kwargs)
        client = self.client
        text = client.engine.create_completion(prompt, params)
        assert isinstance(text, str)
        return text, self._usage(client)

    def _stream(self, prompt: str, kwargs: dict[str, Any],
                make: Callable[[str, str, Any], R]) -> Generator[R, None, None]:
        """Start generating now (so that errors raise here); chunks are ``make(text, delta,
        raw)``, the last one with an empty delta and the usage. Closing the returned generator
        closes the engine's stream, which stops generation and frees the model."""
        params = self._parameters(kwargs)
        client = self.client
        pieces = client.engine.create_completion(prompt, params, stream=True)
        assert not isinstance(pieces, str)

        def gen() -> Generator[R, None, None]:
            text = ""
            try:
                for piece in pieces:
                    text += piece
                    yield make(text, piece, None)
            finally:
                pieces.close()  # type: ignore[attr-defined]
            yield make(text, "", self._usage(client))

        return gen()

    def _wraps_as_chat(self, formatted: bool) -> bool:
        """Whether ``complete`` sends the prompt to the chat core as one user message."""
        custom = self.completion_to_prompt
        return not formatted and (custom is None or custom is default_completion_to_prompt) \
            and self._uses_core()

    def _complete(self, prompt: str, formatted: bool, kwargs: dict[str, Any]) -> CompletionResponse:
        if self._wraps_as_chat(formatted):
            r = self._chat([ChatMessage(role=MessageRole.USER, content=prompt)], kwargs)
            return CompletionResponse(text=r.message.content or "", raw=r.raw, logprobs=r.logprobs)
        text, raw = self._generate(self._completion_prompt(prompt, formatted), kwargs)
        return CompletionResponse(text=text, raw=raw)

    def _stream_complete(self, prompt: str, formatted: bool,
                         kwargs: dict[str, Any]) -> CompletionResponseGen:
        if self._wraps_as_chat(formatted):
            chats = self._stream_chat([ChatMessage(role=MessageRole.USER, content=prompt)], kwargs)
            return (CompletionResponse(text=r.message.content or "", delta=r.delta, raw=r.raw)
                    for r in chats)
        return self._stream(self._completion_prompt(prompt, formatted), kwargs,
                            lambda t, d, r: CompletionResponse(text=t, delta=d, raw=r))

    def _chat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse:
        if not self._uses_core():  # the caller's own messages_to_prompt: raw text completion
            text, raw = self._generate(self.format_messages(messages), kwargs)
            return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), raw=raw)
        params, options = self._parameters(kwargs), self._chat_options(kwargs)
        completion = self.client.engine.create_chat_completion(self._messages(messages), params, **options)
        assert isinstance(completion, ChatCompletion)
        return ChatResponse(message=_messages.assistant_message(completion.message.content or "",
                                                       completion.message.reasoning_content,
                                                       [c.to_dict() for c in completion.message.tool_calls]),
                            raw=_messages.raw(completion.usage.to_dict(), completion.finish_reason),
                            logprobs=_messages.logprobs(completion.logprobs))

    def _stream_chat(self, messages: Sequence[ChatMessage],
                     kwargs: dict[str, Any]) -> ChatResponseGen:
        if not self._uses_core():
            return self._stream(self.format_messages(messages), kwargs, lambda t, d, r: ChatResponse(
                message=ChatMessage(role=MessageRole.ASSISTANT, content=t), delta=d, raw=r))
        params, options = self._parameters(kwargs), self._chat_options(kwargs)
        chunks = self.client.engine.create_chat_completion(self._messages(messages), params,
                                                           stream=True, **options)

        def gen() -> Generator[ChatResponse, None, None]:
            text, reasoning, calls = "", "", []
            try:
                for chunk in chunks:
                    delta = chunk.delta.get("content") or ""
                    text += delta
                    reasoning += chunk.delta.get("reasoning_content") or ""
                    calls += chunk.delta.get("tool_calls", [])
                    if chunk.finish_reason is None and not delta:
                        continue
                    raw = None if chunk.usage is None else _messages.raw(chunk.usage.to_dict(), chunk.finish_reason)
                    yield ChatResponse(message=_messages.assistant_message(text, reasoning or None, calls),
                                       delta=delta, raw=raw, logprobs=_messages.logprobs(chunk.logprobs))
            finally:
                chunks.close()

        return gen()

    # -- tools: LlamaIndex's FunctionCallingLLM -------------------------------------------
    def _prepare_chat_with_tools(self, tools: Sequence[Any], user_msg: str | ChatMessage | None = None,
                                 chat_history: list[ChatMessage] | None = None,
                                 verbose: bool = False, allow_parallel_tool_calls: bool = False,
                                 tool_required: bool = False, **kwargs: Any) -> dict[str, Any]:
        """The ``chat`` arguments for a call with ``tools`` (LlamaIndex ``BaseTool`` objects,
        given to the model as OpenAI function tools)."""
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
        if user_msg is not None:
            messages.append(user_msg)
        specs = [{"type": "function", "function": {
            "name": t.metadata.name, "description": t.metadata.description,
            "parameters": t.metadata.get_parameters_dict()}} for t in tools]
        return {"messages": messages, "tools": specs or None,
                "tool_choice": "required" if tool_required else "auto", **kwargs}

    def get_tool_calls_from_response(self, response: ChatResponse, error_on_no_tool_call: bool = True,
                                     **kwargs: Any) -> list[ToolSelection]:
        """The tool calls of a ``chat`` response as LlamaIndex ``ToolSelection`` objects.

        Raises:
            ValueError: no tool call and ``error_on_no_tool_call``.
        """
        calls = response.message.additional_kwargs.get("tool_calls") or []
        if not calls and error_on_no_tool_call:
            raise ValueError(f"expected at least one tool call, got {len(calls)}")
        out = []
        for c in calls:
            try:
                args = json.loads(c["function"]["arguments"])
            except json.JSONDecodeError:
                args = {}
            out.append(ToolSelection(tool_id=c["id"], tool_name=c["function"]["name"],
                                     tool_kwargs=args if isinstance(args, dict) else {}))
        return out

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Complete a prompt.

        Args:
            prompt: the user's request, or (``formatted=True``) the exact text to continue.
            formatted: True sends ``prompt`` to the model as it is (raw completion).
            **kwargs: call parameters, see the class docstring.

        Returns:
            The whole text, with the engine's counters in ``raw``.
        """
        return self._complete(prompt, formatted, kwargs)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False,
                        **kwargs: Any) -> CompletionResponseGen:
        """Stream a completion token by token (see :meth:`complete`).

        Closing the generator early stops generation and frees the model.
        """
        return self._stream_complete(prompt, formatted, kwargs)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer a conversation, rendered with the model's chat template.

        Args:
            messages: the conversation, see :meth:`format_messages`.
            **kwargs: call parameters, see the class docstring.

        Returns:
            The assistant's message, with the engine's counters in ``raw``.
        """
        return self._chat(messages, kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream the assistant's answer token by token (see :meth:`chat`)."""
        return self._stream_chat(messages, kwargs)

    # -- async: the engine runs in a worker thread ----------------------------------------
    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False,
                        **kwargs: Any) -> CompletionResponse:
        """:meth:`complete` in a worker thread; the event loop keeps running."""
        return await asyncio.to_thread(self._complete, prompt, formatted, kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """:meth:`chat` in a worker thread; the event loop keeps running."""
        return await asyncio.to_thread(self._chat, messages, kwargs)

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False,
                               **kwargs: Any) -> CompletionResponseAsyncGen:
        """:meth:`stream_complete` pumped from a worker thread.

        The model is loaded and the parameters checked before the stream is returned;
        leaving the ``async for`` early stops generation.
        """
        await asyncio.to_thread(self._prepare, kwargs)
        return iterate_in_thread(lambda: self._stream_complete(prompt, formatted, kwargs))

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage],
                           **kwargs: Any) -> ChatResponseAsyncGen:
        """:meth:`stream_chat` pumped from a worker thread (see :meth:`astream_complete`)."""
        await asyncio.to_thread(self._prepare, kwargs)
        return iterate_in_thread(lambda: self._stream_chat(messages, kwargs))

    def _prepare(self, kwargs: dict[str, Any]) -> None:
        self._parameters(kwargs)
        _ = self.client

    # -- structured prediction through a JSON-schema grammar ------------------------------
    def structured_predict(self, output_cls: type[Model], prompt: BasePromptTemplate,
                           llm_kwargs: dict[str, Any] | None = None, **prompt_args: Any) -> Model:
        """Generate an instance of ``output_cls`` under a grammar made from its JSON schema.

        The output class's schema (``model_json_schema()``) is converted to GBNF by
        :func:`gpt4all_rag.engine.grammar.json_schema_to_gbnf` (llama.cpp's converter), so the model
        can only emit JSON of that shape; the schema is also shown to the model.

        Args:
            output_cls: a pydantic model class.
            prompt: the prompt template; ``prompt_args`` fill it.
            llm_kwargs: call parameters (see the class docstring); ``grammar`` is set here.
            **prompt_args: template variables.

        Returns:
            The validated instance.

        Raises:
            GrammarError: (a ValueError) the schema cannot be converted.
            StructuredOutputError: (a ValueError) the output was cut by ``max_tokens`` or does
                not validate.
        """
        messages, call = _structured.request(self, output_cls, prompt, llm_kwargs, prompt_args)
        with _structured.events(output_cls, prompt, prompt_args) as done:
            response = self.chat(messages, **call)
            return done(_structured.parse(output_cls, response))

    async def astructured_predict(self, output_cls: type[Model], prompt: BasePromptTemplate,
                                  llm_kwargs: dict[str, Any] | None = None,
                                  **prompt_args: Any) -> Model:
        """:meth:`structured_predict` with generation in a worker thread."""
        messages, call = _structured.request(self, output_cls, prompt, llm_kwargs, prompt_args)
        with _structured.events(output_cls, prompt, prompt_args) as done:
            response = await self.achat(messages, **call)
            return done(_structured.parse(output_cls, response))

    def stream_structured_predict(self, output_cls: type[Model], prompt: BasePromptTemplate,
                                  llm_kwargs: dict[str, Any] | None = None,
                                  **prompt_args: Any) -> Generator[Any, None, None]:
        """Stream partial objects while the constrained JSON is generated.

        Yields:
            Partial objects (LlamaIndex's ``FlexibleModel`` while fields are missing), the
            last one a validated ``output_cls`` instance.

        Raises:
            GrammarError, StructuredOutputError: as :meth:`structured_predict`, the latter
                when the stream ends.
        """
        messages, call = _structured.request(self, output_cls, prompt, llm_kwargs, prompt_args)
        stream = self.stream_chat(messages, **call)
        return _structured.stream(output_cls, prompt, prompt_args, stream)

    async def astream_structured_predict(
            self, output_cls: type[Model], prompt: BasePromptTemplate,
            llm_kwargs: dict[str, Any] | None = None,
            **prompt_args: Any) -> AsyncGenerator[Any, None]:
        """:meth:`stream_structured_predict` pumped from a worker thread."""
        messages, call = _structured.request(self, output_cls, prompt, llm_kwargs, prompt_args)
        await asyncio.to_thread(self._prepare, call)
        return iterate_in_thread(lambda: _structured.stream(
            output_cls, prompt, prompt_args, self._stream_chat(messages, call)))
