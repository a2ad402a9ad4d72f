"""The engine: one loaded model and everything that runs on it.

:class:`Llama` is what llama-cpp-python's ``Llama`` and llama.cpp's server context are: it owns
the native model, its parallel sequences and their admission (:mod:`.sequences`), the prompt
builder (:mod:`.prompting`), compiled chat templates (:mod:`.templates`), chat formats
(:mod:`.chat`) and the per-thread counters of the latest call. Every front sits on it:
``GPT4All`` (the seed's SDK: raw completions and chat sessions), ``Embed4All``, the LangChain
and LlamaIndex adapters, the CLI and the server. None of them reaches below it.

Every call takes its sampling parameters as one :class:`~.sampling.SamplingParams` (the fronts
build it; its fields' meaning, ranges and defaults are documented there).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterator, Mapping, Sequence

from typing_extensions import Self

from .. import errors

from . import native as _native
from .native_model import NativeModel
from . import chat, generation
from .native import native_device
from .generation import GenerationStats
from .prompting import TRUNCATION, PromptBuilder, Truncation
from .sampling import DEFAULTS, SamplingParams, check_number
from .sequences import SequencePool
from .templates import ChatTemplate
from .types import ChatCompletion, ChatCompletionChunk, LogLikelihood, TokenLogprob

__all__ = ["DEFAULT_N_CTX", "Llama"]

#: The default context window of a loaded model, in tokens (the seed's ``n_ctx``).
DEFAULT_N_CTX = 2048

Callback = Callable[[int, str], bool]


class Llama:
    """One loaded GGUF model: completions, chat completions, scoring and tokenization.

    Args:
        model_path: the GGUF file.
        n_ctx: context window in tokens (> 0), per sequence.
        n_parallel: generations served at once (1..64), decoded together (continuous
            batching); each has the whole ``n_ctx`` window (rounded up to a multiple of 256
            tokens when > 1), so the KV cache takes ``n_parallel`` times the memory.
        n_threads: CPU threads (> 0); None picks a default from the CPU count.
        device: a GPT4All device string (:func:`native_device`): None or ``"cpu"`` for the
            CPU, ``"gpu"`` for the first GPU, ``"cuda:NAME"``, a device name, ...
        n_gpu_layers: layers offloaded to a GPU device (-1: all).
        flash_attention: None lets the native library choose (see ``GPT4All``), or force it.
        encoder: an embedding model's graph, ``"g4r"`` (default: the library's own BERT
            encoder where it covers the model, see :class:`~.native_model.NativeModel`) or
            ``"llama.cpp"``.
        max_waiting: callers that may wait for a busy model (>= 0); one more gets
            :class:`~gpt4all_rag.errors.ModelBusyError` at once.
        wait_timeout: seconds a caller waits at most for a busy model (None: no limit).
        chat_template: the chat template to use when a call passes none (a catalogue's); None
            means the GGUF's ``tokenizer.chat_template``.
        chat: False for a model known not to chat (the catalogue says so): chat calls then
            raise :class:`~gpt4all_rag.errors.ChatTemplateError` without a template of their own.

    Raises:
        InvalidParameterError: (a ValueError) an argument out of range.
        ModelNotFoundError, ModelLoadError: the file is missing or not a loadable model.

    Thread safety: every method may be called from any thread; ``n_parallel`` generations run
    at once and further callers wait in arrival order (see :mod:`.sequences`). :attr:`stats`
    and :attr:`last_logprobs` are per thread. :meth:`close` waits for other threads' calls.
    """

    def __init__(self, model_path: str | os.PathLike[str], *, n_ctx: int = DEFAULT_N_CTX,
                 n_parallel: int = 1, n_threads: int | None = None, device: str | None = None,
                 n_gpu_layers: int = 100, flash_attention: bool | None = None,
                 max_waiting: int = 64, wait_timeout: float | None = None,
                 chat_template: str | None = None, chat: bool = True, encoder: str = "g4r") -> None:
        device = self.check_arguments(
            n_ctx=n_ctx, n_parallel=n_parallel, n_threads=n_threads, device=device,
            n_gpu_layers=n_gpu_layers, flash_attention=flash_attention, max_waiting=max_waiting,
            wait_timeout=wait_timeout, chat_template=chat_template, encoder=encoder)
        self.path = Path(model_path)
        #: The native model (the binding's handle, ``gpt4all_rag.engine.native``).
        self.model = NativeModel(os.fspath(model_path), n_ctx=n_ctx, n_gpu_layers=n_gpu_layers,
                                         device=device, n_threads=n_threads,
                                         flash_attention=flash_attention, n_seq=n_parallel,
                                         encoder=encoder)
        self._pool = SequencePool(self.model, max_waiting=max_waiting, wait_timeout=wait_timeout)
        self._chat_template, self._chat = chat_template, chat
        self.special_tokens = self._special_tokens()
        self._prompts = PromptBuilder(self.model, self.special_tokens,
                                      bool(self.model.info(_native.PROP_ADD_BOS)))
        self._templates: dict[str, ChatTemplate] = {}
        self._local = threading.local()  # this thread's latest call: stats, logprobs
        self._latest: tuple[GenerationStats, list[TokenLogprob]] = (GenerationStats(), [])

    @staticmethod
    def check_arguments(*, n_ctx: int = DEFAULT_N_CTX, n_parallel: int = 1, n_threads: int | None = None,
                        device: str | None = None, n_gpu_layers: int = 100,
                        flash_attention: bool | None = None, max_waiting: int = 64,
                        wait_timeout: float | None = None, chat_template: str | None = None,
                        encoder: str = "g4r") -> str | None:
        """Check the constructor's arguments (the fronts call it before they look for the
        file, so a bad value fails before any download); returns the native device name.

        Raises:
            InvalidParameterError: an argument out of range, as the constructor documents.
        """
        check_number("n_ctx", n_ctx, low=0, low_open=True, integer=True)
        check_number("n_parallel", n_parallel, low=1, high=64, integer=True)
        check_number("max_waiting", max_waiting, low=0, integer=True)
        if wait_timeout is not None:
            check_number("wait_timeout", wait_timeout, low=0)
        check_number("ngl", n_gpu_layers, low=-1, integer=True)
        if n_threads is not None:
            check_number("n_threads", n_threads, low=0, low_open=True, integer=True)
        if flash_attention is not None and not isinstance(flash_attention, bool):
            raise errors.InvalidParameterError(
                f"flash_attention must be True, False or None, got {flash_attention!r}")
        if encoder not in ("g4r", "llama.cpp"):
            raise errors.InvalidParameterError(f"encoder must be 'g4r' or 'llama.cpp', got {encoder!r}")
        if chat_template is not None and not isinstance(chat_template, str):
            raise errors.InvalidParameterError(f"chat_template must be a string, got {chat_template!r}")
        return native_device(device)

    # -- what it is -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The model file's name (e.g. ``SmolLM2-135M-Instruct.Q4_1.gguf``)."""
        return self.path.name

    @property
    def n_ctx(self) -> int:
        """The context window of each sequence, in tokens."""
        return self.model.n_ctx

    @property
    def n_parallel(self) -> int:
        """Generations served at once."""
        return self._pool.size

    @property
    def is_embedding(self) -> bool:
        """Whether this is an embedding model (it then cannot generate)."""
        return self.model.is_embedding

    @property
    def closed(self) -> bool:
        return self.model.closed

    def _special_tokens(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for kind in ("bos", "eos", "pad", "sep", "mask"):
            tok = self.model.special_token(kind)
            if tok >= 0:
                out[f"{kind}_token"] = self.model.token_to_piece(tok, special=True).decode("utf-8", "replace")
        eot = self.model.special_token("eot")
        if eot >= 0 and "eos_token" not in out:
            out["eos_token"] = self.model.token_to_piece(eot, special=True).decode("utf-8", "replace")
        return out

    # -- lifetime ---------------------------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(self, typ: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Free the model. Idempotent; later calls raise ModelClosedError. Waits for the calls
        running in other threads; open streams nobody reads (for a second,
        :data:`~.sequences.CLOSE_IDLE_S`) and this thread's own see the closed model."""
        self._pool.close()

    # -- counters ---------------------------------------------------------------------------
    @property
    def stats(self) -> GenerationStats:
        """Counters of this thread's latest call (of any thread's, in a thread that has made
        none yet); filled while its stream runs."""
        return getattr(self._local, "latest", self._latest)[0]

    @property
    def last_logprobs(self) -> list[TokenLogprob]:
        """The generated tokens' log-probabilities of this thread's latest call made with
        ``logprobs`` (filled while a stream runs)."""
        return getattr(self._local, "latest", self._latest)[1]

    def _begin(self) -> tuple[GenerationStats, list[TokenLogprob]]:
        latest: tuple[GenerationStats, list[TokenLogprob]] = (GenerationStats(), [])
        self._local.latest = self._latest = latest
        return latest

    @property
    def backend(self) -> str:
        """The backend in use: "cpu", "cuda", "vulkan", "metal", ..."""
        return self.model.device()[0]

    @property
    def device(self) -> str | None:
        """The name of the GPU device in use, or None on the CPU."""
        return self.model.device()[1]

    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as text (e.g. ``general.name``), or None."""
        return self.model.meta(key)

    # -- embeddings -------------------------------------------------------------------------
    @property
    def n_embd(self) -> int:
        """The size of the model's embeddings (and hidden states)."""
        return self.model.n_embd

    @property
    def n_batch(self) -> int:
        """The most tokens one evaluation takes (the context's logical batch)."""
        return self.model.info(_native.PROP_N_BATCH)

    @property
    def n_threads(self) -> int:
        """The CPU threads evaluation uses."""
        return self.model.info(_native.PROP_N_THREADS)

    @property
    def n_seq_max(self) -> int:
        """The most sequences one evaluation holds."""
        return self.model.info(_native.PROP_N_SEQ_MAX)

    def special_token_ids(self) -> tuple[list[int], list[int]]:
        """The tokens the model wants around a text of its own: ``([BOS] or [], [EOS] or [])``
        (an embedding model's ``[CLS]`` and ``[SEP]``)."""
        seps = self.model.tokenize("", add_special=True)
        bos = self.model.info(_native.PROP_ADD_BOS) and self.model.special_token("bos") >= 0
        eos = self.model.info(_native.PROP_ADD_EOS) and self.model.special_token("eos") >= 0
        return (seps[:1] if bos else []), (seps[-1:] if eos else [])

    def embed(self, token_lists: Sequence[Sequence[int]]) -> Any:
        """Pooled embeddings of token sequences evaluated together, ``float32[len, n_embd]``
        (numpy; each sequence pooled as the GGUF declares, not normalised). At most
        :attr:`n_seq_max` sequences and :attr:`n_batch` tokens in all.

        Raises:
            UnsupportedOperationError: not an embedding model. InvalidParameterError: too many
            sequences or tokens, an empty one, or an id outside the vocabulary.
            ModelClosedError: closed.
        """
        return self.model.embed([list(t) for t in token_lists])

    # -- tokens -----------------------------------------------------------------------------
    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        """Token ids of ``text``; ``add_special`` adds BOS/EOS as the model wants them,
        ``parse_special`` reads special-token text (``<|im_end|>``) as control tokens.

        Raises:
            InvalidParameterError: ``text`` is not a string. ModelClosedError: closed.
        """
        if not isinstance(text, str):
            raise errors.InvalidParameterError(f"text must be a string, got {type(text).__name__}")
        return self.model.tokenize(text, add_special=add_special, parse_special=parse_special) if text else []

    def detokenize(self, tokens: Sequence[int], *, special: bool = False) -> str:
        """The text of token ids (``special``: with special tokens' text).

        Raises:
            InvalidParameterError: an id outside the vocabulary. ModelClosedError: closed.
        """
        return self.model.detokenize(list(tokens), special=special)

    def token_to_piece(self, token: int, *, special: bool = True) -> bytes:
        """The bytes of one token (a piece may be part of a UTF-8 character).

        Raises:
            InvalidParameterError: an id outside the vocabulary. ModelClosedError: closed.
        """
        return self.model.token_to_piece(token, special=special)

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes (special-token text parsed, no BOS).

        Raises:
            InvalidParameterError: ``text`` is not a string. ModelClosedError: closed.
        """
        return len(self.tokenize(text))

    # -- templates --------------------------------------------------------------------------
    def chat_template_source(self, override: str | None = None) -> str:
        """The chat template a call uses: ``override``, else the one given at construction (a
        catalogue's), else the GGUF's ``tokenizer.chat_template``.

        Raises:
            ChatTemplateError: there is none (the message says how to pass one).
        """
        if override is not None:
            return override
        if not self._chat:
            raise errors.ChatTemplateError(f"The model {self.name!r} does not support chat.")
        source = self._chat_template or self.model.chat_template()
        if not source:
            raise errors.ChatTemplateError(
                f"{self.name} has no chat template (no catalogue entry and no "
                "tokenizer.chat_template in the GGUF); pass one: "
                "chat_session(chat_template='{% for m in messages %}...{% endfor %}')")
        return source

    def template(self, source: str) -> ChatTemplate:
        """The compiled template of ``source`` (compiled once per source).

        Raises:
            ChatTemplateError: a malformed template.
        """
        template = self._templates.get(source)
        if template is None:
            template = self._templates[source] = ChatTemplate(source)
        return template

    # -- generation -------------------------------------------------------------------------
    def _check_generation(self) -> None:
        if self.model.closed:
            raise errors.ModelClosedError("the model was closed; create a new instance to use it")
        if self.model.is_embedding:
            raise errors.UnsupportedOperationError(
                f"{self.name} is an embedding model: it cannot generate text; use Embed4All "
                "for embeddings")

    def _pieces(self, tokens: list[int], params: SamplingParams, stats: GenerationStats,
                lps: list[TokenLogprob], *, callback: Callback | None, logprobs: int | None,
                dropped: int = 0, triggers: tuple[tuple[str, ...], tuple[int, ...]] = ((), ()),
                ) -> Iterator[tuple[int, str]]:
        """``(token id, text)`` of a generation of ``tokens``. A sequence is taken on the first
        ``next()`` (an iterator never started holds nothing) and given back when it ends or is
        closed, with what its cache holds then."""
        seq = self._pool.acquire(tokens)
        generated: list[int] = []
        try:
            yield from generation.run(seq, tokens, params, stats, callback=callback,
                                      logprobs=logprobs, logprobs_out=lps, dropped=dropped,
                                      grammar_triggers=triggers, generated=generated)
        except GeneratorExit:
            stats.finish_reason = "closed"
            raise
        finally:
            self._pool.release(seq, tokens + generated)

    def create_completion(self, prompt: str, params: SamplingParams = DEFAULTS, *,
                          stream: bool = False, callback: Callback | None = None,
                          logprobs: int | None = None) -> str | Iterator[str]:
        """Complete a raw prompt (special-token text in it is parsed; BOS added as the model
        wants): the seed's ``generate()`` outside a chat session.

        Args:
            prompt: the text to complete.
            params: the sampling parameters.
            stream: return an iterator of text pieces (closing it stops generation).
            callback: called as ``callback(token_id, text)`` for every piece; False stops.
            logprobs: None, or 0..20 alternatives per generated token, recorded in
                :attr:`last_logprobs`.

        Returns:
            The generated text, or the iterator of its pieces.

        Raises:
            ContextOverflowError: the prompt does not fit (``n_ctx - 4`` tokens).
            InvalidParameterError: a bad argument, an empty prompt for a model without BOS.
            UnsupportedOperationError: an embedding model. ModelClosedError: closed.
            ModelBusyError, ConcurrentUseError: no sequence (see :mod:`.sequences`).
            GrammarError, GenerationError: from the native library.
        """
        if not isinstance(prompt, str):
            raise errors.InvalidParameterError(f"prompt must be a string, got {type(prompt).__name__}")
        self._check_call(params, callback, logprobs)
        tokens = self._prompts.raw_tokens(prompt)
        stats, lps = self._begin()
        pieces = self._pieces(tokens, params, stats, lps, callback=callback, logprobs=logprobs)
        if stream:
            return generation.texts(pieces)
        return "".join(text for _, text in pieces)

    def _check_call(self, params: SamplingParams, callback: Callback | None, logprobs: int | None) -> None:
        if not isinstance(params, SamplingParams):
            raise errors.InvalidParameterError(f"params must be a SamplingParams, got {type(params).__name__}")
        if callback is not None and not callable(callback):
            raise errors.InvalidParameterError("callback must be callable")
        if logprobs is not None:
            check_number("logprobs", logprobs, low=0, high=_native.MAX_TOP_LOGPROBS, integer=True)
        self._check_generation()

    def _chat_prompt(self, messages: Sequence[Mapping[str, Any]], params: SamplingParams,
                     tools: Sequence[Mapping[str, Any]] | None, tool_choice: Any, response_format: Any,
                     chat_template: str | None, enable_thinking: bool | None,
                     truncation: Truncation | None, continue_final_message: bool = False,
                     ) -> tuple[chat.Plan, list[int], int]:
        """The plan of a chat request, the prompt's tokens and the messages left out to fit
        (``truncation`` None: the whole prompt, however long)."""
        msgs, callable_tools, choice = chat.prepare(messages, tools, tool_choice)
        msgs, prefill = chat.split_reply_start(msgs) if continue_final_message else (msgs, None)
        if enable_thinking is not None and not isinstance(enable_thinking, bool):
            raise errors.InvalidParameterError(f"enable_thinking must be a bool or None, got {enable_thinking!r}")
        if truncation is not None and truncation not in TRUNCATION:
            raise errors.InvalidParameterError(f"truncation must be one of {TRUNCATION}, got {truncation!r}")
        self._check_generation()
        source = self.chat_template_source(chat_template)
        template = self.template(source)  # a malformed template fails here, as ChatTemplateError
        plan = chat.plan(self.model, source, msgs, callable_tools, choice, response_format,
                         enable_thinking, params)
        plan = chat.continuing(plan) if prefill is not None else plan
        tokens, dropped = self._prompts.prompt(template, plan.messages, plan.variables, truncation, prefill)
        return plan, tokens, dropped

    def chat_prompt_tokens(self, messages: Sequence[Mapping[str, Any]], *,
                           tools: Sequence[Mapping[str, Any]] | None = None, tool_choice: Any = None,
                           response_format: Any = None, chat_template: str | None = None,
                           enable_thinking: bool | None = None,
                           continue_final_message: bool = False) -> list[int]:
        """The prompt :meth:`create_chat_completion` would feed the model for these arguments,
        as token ids (its ``usage.prompt_tokens`` is their number); nothing is evaluated.

        Raises:
            InvalidParameterError, ChatTemplateError, UnsupportedOperationError,
            ModelClosedError: as :meth:`create_chat_completion` (a prompt longer than the
            window is counted, not refused).
        """
        return self._chat_prompt(messages, DEFAULTS, tools, tool_choice, response_format,
                                 chat_template, enable_thinking, None, continue_final_message)[1]

    def chat_text(self, messages: Sequence[Mapping[str, Any]], params: SamplingParams = DEFAULTS, *,
                  tools: Sequence[Mapping[str, Any]] | None = None, tool_choice: Any = None,
                  response_format: Any = None, logprobs: bool = False,
                  top_logprobs: int | None = None, chat_template: str | None = None,
                  enable_thinking: bool | None = None, callback: Callback | None = None,
                  truncation: Truncation = "disabled", continue_final_message: bool = False) -> chat.ChatText:
        """A chat completion as the model writes it: a :class:`~.chat.ChatText` whose pieces
        are the raw text (reasoning and tool-call markup included) and whose ``completion`` is
        the reply read back. Arguments, checks and errors as :meth:`create_chat_completion`
        (the checks run now; the sequence is taken on the first piece)."""
        if not isinstance(logprobs, bool):
            raise errors.InvalidParameterError(f"logprobs must be True or False, got {logprobs!r}")
        if top_logprobs is not None:
            check_number("top_logprobs", top_logprobs, low=0, high=_native.MAX_TOP_LOGPROBS, integer=True)
        n_top = (top_logprobs or 0) if logprobs else None
        self._check_call(params, callback, None)
        plan, tokens, dropped = self._chat_prompt(messages, params, tools, tool_choice, response_format,
                                                  chat_template, enable_thinking, truncation,
                                                  continue_final_message)
        run_params = params.constrained(plan.stops, plan.grammar)
        stats, recorded = self._begin()

        def pieces() -> Iterator[tuple[str, list[TokenLogprob]]]:
            seen = 0
            inner = self._pieces(tokens, run_params, stats, recorded, callback=callback,
                                 logprobs=n_top, dropped=dropped, triggers=plan.triggers)
            try:
                for _, text in inner:
                    new = recorded[seen:]
                    seen = len(recorded)
                    yield text, new
            finally:
                inner.close()

        return chat.ChatText(pieces(), plan, stats, self.name, n_top is not None)

    def create_chat_completion(
        self,
        messages: Sequence[Mapping[str, Any]],
        params: SamplingParams = DEFAULTS,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        response_format: Any = None,
        stream: bool = False,
        logprobs: bool = False,
        top_logprobs: int | None = None,
        chat_template: str | None = None,
        enable_thinking: bool | None = None,
        callback: Callback | None = None,
        truncation: Truncation = "disabled",
        continue_final_message: bool = False,
    ) -> ChatCompletion | Iterator[ChatCompletionChunk]:
        """A stateless chat completion (OpenAI's ``chat.completions.create`` shape).

        Args:
            messages: OpenAI-style messages: ``system``/``developer``, ``user``, ``assistant``
                (with ``tool_calls``), ``tool`` (with ``tool_call_id``); content a string or
                text parts (:func:`~.chat.normalize_messages`).
            params: the sampling parameters (:class:`~.sampling.SamplingParams`).
            tools: OpenAI function tools. A template with a tool format (Qwen, Llama 3.x,
                Hermes, Mistral, DeepSeek, ...) renders them itself and its replies are parsed
                by llama.cpp's chat layer (several calls per reply where the model makes
                several); other templates get a JSON call forced by a grammar.
            tool_choice: ``"auto"`` (default with tools), ``"required"``, ``"none"``, or
                ``{"type": "function", "function": {"name": ...}}``. A native format's calls
                follow llama.cpp's grammar for it: from the start with ``"required"``, from the
                moment the model opens a call with ``"auto"`` (a lazy grammar).
            response_format: ``{"type": "json_object"}`` or ``{"type": "json_schema",
                "json_schema": {"name", "schema"}}``: the reply is constrained by a grammar
                (and the schema is described in the system message).
            stream: return an iterator of :class:`~.types.ChatCompletionChunk` (the first with
                the role, the last with ``finish_reason`` and ``usage``). Closing it stops
                generation.
            logprobs, top_logprobs: report the generated tokens' log-probabilities, with
                ``top_logprobs`` (0..20) alternatives each.
            chat_template: a Jinja template instead of :meth:`chat_template_source`'s.
            enable_thinking: for templates that can switch reasoning (Qwen3, ...): passed to
                the template as ``enable_thinking``; None leaves the template's default.
                Reasoning is returned as ``reasoning_content``, never in ``content``.
            callback: called as ``callback(token_id, text)`` for every piece; returning False
                stops generation there (``finish_reason`` ``"stop"``, the reply read from the
                text so far). The server stops a request whose client left this way.
            truncation: ``"disabled"`` (default): a prompt over ``n_ctx - 4`` tokens is an
                error; ``"auto"``: the oldest turns are left out until it fits
                (:meth:`~.prompting.PromptBuilder.fit`; ``usage``/:attr:`stats` show it).
            continue_final_message: the last message, an assistant's with text, is the start
                of the reply (Anthropic's "prefill"; transformers' name), which the model goes
                on from; the reply is the continuation (:func:`~.chat.continuing` has the rules).

        Returns:
            A :class:`~.types.ChatCompletion`, or the chunk iterator. The KV cache's common
            prefix with a previous call is reused (``usage.cached_tokens``).

        Raises:
            InvalidParameterError: malformed messages, tools, tool_choice, response_format
                or arguments (``ValueError``).
            ContextOverflowError: the messages do not fit the context window.
            ChatTemplateError: no template, or the template failed (or ran past its limits).
            GrammarError: a bad grammar or schema.
            UnsupportedOperationError: an embedding model.
            ModelClosedError, ModelBusyError, ConcurrentUseError, GenerationError: as
            :meth:`create_completion`.
        """
        run = self.chat_text(messages, params, tools=tools, tool_choice=tool_choice,
                             response_format=response_format, logprobs=logprobs,
                             top_logprobs=top_logprobs, chat_template=chat_template,
                             enable_thinking=enable_thinking, callback=callback, truncation=truncation,
                             continue_final_message=continue_final_message)
        if stream:
            return chat.chunks(run)
        for _ in run:
            pass
        return run.completion

    # -- scoring ----------------------------------------------------------------------------
    def loglikelihood(self, prompt: str | list[dict[str, Any]], continuation: str, *,
                      n_batch: int = 512) -> LogLikelihood:
        """Log-likelihood of ``continuation`` after ``prompt``: for tests, evaluation and
        reranking (the ``loglikelihood`` request of EleutherAI's lm-evaluation-harness).

        Args:
            prompt: a raw prompt (tokenized as :meth:`create_completion` does), or a list of
                OpenAI-style messages rendered with :meth:`chat_template_source`'s template
                with the assistant's turn opened, message text never parsed for special tokens.
            continuation: the text to score (tokenized on its own, without special-token
                parsing or BOS; a leading space matters as in any BPE vocabulary).
            n_batch: tokens per evaluation (>= 1).

        Returns:
            A :class:`~.types.LogLikelihood` (sum, per-token values and greedy ranks). The
            prompt's tokens stay in the KV cache, so scoring several continuations of one
            prompt evaluates it once.

        Raises:
            InvalidParameterError: a non-string argument, an empty continuation or prompt.
            ContextOverflowError: prompt and continuation do not fit the context window.
            ChatTemplateError: messages given and no chat template is available.
            UnsupportedOperationError: an embedding model. ModelClosedError: closed.
            ModelBusyError, ConcurrentUseError: as :meth:`create_completion`.
        """
        if not isinstance(continuation, str) or not continuation:
            raise errors.InvalidParameterError("continuation must be a non-empty string")
        check_number("n_batch", n_batch, low=1, integer=True)
        if self.model.is_embedding:
            raise errors.UnsupportedOperationError(f"{self.name} is an embedding model: it cannot score text")
        if isinstance(prompt, str):
            head = self._prompts.tokenize(prompt)
        elif isinstance(prompt, list) and prompt:
            template = self.template(self.chat_template_source())
            head = self._prompts.chat_tokens(template, list(prompt), {})
        else:
            raise errors.InvalidParameterError(
                f"prompt must be a string or a non-empty list of messages, got {prompt!r}")
        if not head:
            raise errors.InvalidParameterError("the prompt is empty and the model adds no BOS token")
        tail = self.model.tokenize(continuation, add_special=False, parse_special=False)
        if len(head) + len(tail) > self.model.n_ctx:
            raise errors.ContextOverflowError(
                f"prompt and continuation take {len(head) + len(tail)} tokens, more than the "
                f"context window of {self.model.n_ctx}")
        with self._pool.hold(head + tail) as seq:
            lps, ranks, _ = seq.score(head + tail, len(head), n_batch)
        return LogLikelihood(float(sum(lps)), tail, lps, ranks)
