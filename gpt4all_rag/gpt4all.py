"""``GPT4All`` and ``Embed4All``: the GPT4All Python SDK on gpt4all-rag's native backend.

The public API follows the GPT4All SDK reference (signatures, defaults and errors), with a few
documented extensions: chat sessions fall back to the template stored in the GGUF file,
``generate`` accepts ``stop``, ``seed`` and ``grammar``, and the prompt cache is reused across
turns (each turn evaluates only its new tokens; see :attr:`GPT4All.stats`).

Sampling parameters (``temp``, ``top_k``, ``top_p``, ``min_p``, ``repeat_penalty``,
``repeat_last_n``, ``seed``, ``n_batch``, ``max_tokens``, ``stop``, ``grammar``): their meaning,
ranges and defaults are documented once, in :mod:`gpt4all_rag.engine.sampling`.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterable, Iterator, Literal, overload

from typing_extensions import Self

from . import errors

from .engine import native as _native

from .models import catalogue as models
from .chat_session import LOCALDOCS_PROMPT_KEY, ChatSession
from .engine.generation import GenerationStats
from .engine.llama import DEFAULT_N_CTX, Llama
from .engine.sampling import DEFAULTS, SamplingParams, check_number
from .engine.templates import MessageType
from .engine.types import ChatCompletion, ChatCompletionChunk, LogLikelihood, TokenLogprob

__all__ = ["GPT4All", "DEFAULT_MODEL_DIRECTORY", "MessageType", "ResponseCallbackType",
           "empty_response_callback"]

logger = logging.getLogger("gpt4all_rag")


#: Where models are looked for and downloaded when ``model_path`` is None (the seed's module
#: variable; ``$GPT4ALL_MODEL_PATH`` overrides the default ``~/.cache/gpt4all/``).
DEFAULT_MODEL_DIRECTORY: Path = models.default_model_directory()

ConfigType = dict[str, Any]
ResponseCallbackType = Callable[[int, str], bool]


def empty_response_callback(token_id: int, response: str) -> bool:
    """The default callback: never stops generation."""
    return True


def _append_extension_if_missing(model_name: str) -> str:
    return model_name if model_name.endswith((".bin", ".gguf")) else model_name + ".gguf"


class GPT4All:
    """A local language model: generation, chat sessions and model management.

    Thread safety: one instance may be shared by threads and asyncio tasks. It serves
    ``n_parallel`` generations at once, decoded together (continuous batching, see
    :mod:`gpt4all_rag.engine.sequences`); further callers wait in arrival order until a running call,
    or a streaming generator, finishes (at most ``max_waiting`` of them, each at most
    ``wait_timeout`` seconds, else :class:`~gpt4all_rag.errors.ModelBusyError`). A thread whose
    own open streams hold every sequence gets :class:`~gpt4all_rag.errors.ConcurrentUseError`
    instead of a deadlock. :attr:`stats` and :attr:`last_logprobs` are per thread.
    """

    def __init__(
        self,
        model_name: str,
        *,
        model_path: str | os.PathLike[str] | None = None,
        model_type: str | None = None,
        allow_download: bool = True,
        n_threads: int | None = None,
        device: str | None = None,
        n_ctx: int = DEFAULT_N_CTX,
        ngl: int = 100,
        verbose: bool = False,
        flash_attention: bool | None = None,
        n_parallel: int = 1,
        max_waiting: int = 64,
        wait_timeout: float | None = None,
    ):
        """Find (or download) a model and load it.

        Args:
            model_name: name of a catalogue model or of a file in ``model_path``; ".gguf" is
                appended when missing. A path to an existing file is also accepted.
            model_path: directory holding the model file (or receiving the download); None
                means :data:`DEFAULT_MODEL_DIRECTORY` (``~/.cache/gpt4all/``).
            model_type: descriptive only, as in the seed.
            allow_download: allow fetching the catalogue and downloading the file. A file that
                is already present is used without any network access.
            n_threads: CPU threads; None picks a default from the CPU count.
            device: "cpu" (default), "gpu" (first GPU), "cuda", "kompute", "vulkan", "metal",
                "cuda:NAME"/"kompute:NAME", or a device name from :meth:`list_gpus`.
            n_ctx: context window in tokens (> 0).
            ngl: layers to offload to the GPU when a GPU device is chosen.
            verbose: print where the model was found (stderr).
            flash_attention: beyond the seed. ``None`` (default) lets the engine choose:
                plain attention for a CPU chat model of one sequence (``n_parallel=1``)
                in a build without a BLAS backend, whose attention scores take at most
                128 MiB (512 x n_ctx x heads x 4 bytes; SmolLM2 generated 18-34% faster
                256-1,024 tokens deep), flash attention otherwise (8 parallel streams: 1.17x
                the throughput of plain attention; with MKL, prompts 1.3x faster).
                ``True``/``False`` force one.
            n_parallel: beyond the seed. Generations served at once (1..64; default 1, the
                seed's one caller at a time). Each has the whole ``n_ctx`` window (rounded up
                to a multiple of 256 tokens when n_parallel > 1), so the KV cache takes
                n_parallel times the memory (SmolLM2-135M at n_ctx 2,048: 47 MB each; an 8B
                Llama 3: 268 MB each). Their tokens are evaluated in one batch per step, so
                no caller waits for another's whole reply. On 2 CPU cores this adds little
                aggregate speed (SmolLM2, 256-token prompts, 64 tokens each: 4 streams 0.97x
                the tokens/s of one, llama.cpp's own server 1.04x; ``bench/bench_parallel.py``).
            max_waiting: beyond the seed. Callers that may wait for a busy model (>= 0); one
                more gets ModelBusyError at once.
            wait_timeout: beyond the seed. Seconds a caller waits at most for a busy model
                (None: as long as it takes), then ModelBusyError.

        Raises:
            ModelNotFoundError: (a FileNotFoundError) the file or directory does not exist.
            ModelLoadError: (a ValueError) the file is not a loadable GGUF model (not GGUF,
                truncated, unsupported architecture).
            InvalidParameterError: (a ValueError) bad n_ctx, n_threads, device or
                flash_attention.
            DownloadError: the download failed.
        """
        self.model_type = model_type
        self._chat_session: ChatSession | None = None
        #: LocalDocs sources (SearchResult objects) used by the latest chat turn; see chat_session.
        self.last_sources: list[Any] = []
        Llama.check_arguments(n_ctx=n_ctx, n_parallel=n_parallel, n_threads=n_threads, device=device,
                              n_gpu_layers=ngl, flash_attention=flash_attention,
                              max_waiting=max_waiting, wait_timeout=wait_timeout)  # before any download
        self.config: ConfigType = models.locate(model_name, model_path, allow_download, verbose,
                                                default_directory=Path(DEFAULT_MODEL_DIRECTORY))
        catalogue_template = self.config.get("chatTemplate")
        #: The engine this facade sits on (:class:`gpt4all_rag.engine.Llama`).
        self.engine = Llama(self.config["path"], n_ctx=n_ctx, n_parallel=n_parallel,
                            n_threads=n_threads, device=device, n_gpu_layers=ngl,
                            flash_attention=flash_attention, max_waiting=max_waiting,
                            wait_timeout=wait_timeout, chat_template=catalogue_template or None,
                            chat=not ("chatTemplate" in self.config and catalogue_template is None))
        #: The native model (the seed's backend object); fronts use :attr:`engine`'s methods.
        self.model = self.engine.model
        self.special_tokens_map = self.engine.special_tokens

    @property
    def stats(self) -> GenerationStats:
        """Counters of this thread's latest generation (of any thread's, in a thread that has
        not generated yet); filled while its stream runs."""
        return self.engine.stats

    @property
    def last_logprobs(self) -> list[TokenLogprob]:
        """The generated tokens' log-probabilities of this thread's latest
        ``generate(logprobs=n)`` call (filled while a stream runs; empty when it was called
        without ``logprobs``)."""
        return self.engine.last_logprobs

    @property
    def n_parallel(self) -> int:
        """Generations this instance serves at once."""
        return self.engine.n_parallel

    # -- lifetime ---------------------------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(self, typ: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Free the model and its memory. Idempotent; any later use raises ModelClosedError.

        Waits for the generations running in other threads to finish; a stream nobody reads
        (for a second) and this thread's own open streams see the closed model
        (``ModelClosedError`` at their next read).
        """
        self.engine.close()

    @property
    def backend(self) -> str:
        """The backend in use: "cpu", "cuda", "vulkan", "metal", ..."""
        return self.engine.backend

    @property
    def device(self) -> str | None:
        """The name of the GPU device in use, or None on the CPU."""
        return self.engine.device

    @property
    def current_chat_session(self) -> list[MessageType] | None:
        """The messages of the open chat session, or None outside one."""
        return None if self._chat_session is None else self._chat_session.history

    @current_chat_session.setter
    def current_chat_session(self, history: list[MessageType]) -> None:
        if self._chat_session is None:
            raise ValueError("current_chat_session may only be set when there is an active chat session")
        self._chat_session.history[:] = history

    # -- models -----------------------------------------------------------------------------
    @staticmethod
    def list_models() -> list[ConfigType]:
        """Fetch the model catalogue (models3.json format), cached on disk.

        Returns:
            The catalogue entries.

        Raises:
            DownloadError: (a ValueError) the catalogue cannot be fetched and no cache exists.
        """
        return models.list_models()

    @classmethod
    def retrieve_model(cls, model_name: str, model_path: str | os.PathLike[str] | None = None,
                       allow_download: bool = True, verbose: bool = False) -> ConfigType:
        """Find a model file, downloading it if allowed and missing.

        Args:
            model_name: name of the model; ".gguf" is appended when missing.
            model_path: directory; None means :data:`DEFAULT_MODEL_DIRECTORY`.
            allow_download: allow catalogue fetches and downloads.
            verbose: print where the model was found.

        Returns:
            The model's config: its catalogue entry (if any) plus ``"path"``.

        Raises:
            ModelNotFoundError: the directory or (without download) the file does not exist.
            InvalidParameterError: a name that would escape the model directory.
            DownloadError: the download failed.
        """
        return models.retrieve_model(model_name, model_path, allow_download, verbose,
                                     default_directory=Path(DEFAULT_MODEL_DIRECTORY))

    @staticmethod
    def download_model(model_filename: str, model_path: str | os.PathLike[str], verbose: bool = True,
                       url: str | None = None, expected_size: int | None = None,
                       expected_md5: str | None = None) -> str | os.PathLike[str]:
        """Download a model file (resumable, size- and MD5-verified, atomic).

        See :func:`gpt4all_rag.models.catalogue.download_model` for the details.

        Returns:
            The path of the downloaded file.

        Raises:
            DownloadError: (a ValueError) HTTP error, broken transfer, wrong size or checksum.
        """
        return models.download_model(model_filename, model_path, verbose=verbose, url=url,
                                      expected_size=expected_size, expected_md5=expected_md5)

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` takes for this model (special-token text is parsed, no BOS
        is added): what a prompt costs in the context window.

        Raises:
            InvalidParameterError: ``text`` is not a string.
            ModelClosedError: the model was closed.
        """
        return self.engine.count_tokens(text)

    @staticmethod
    def list_gpus() -> list[str]:
        """Names of the GPU devices this build can use (empty on a CPU-only build)."""
        return [d["description"] or d["name"] for d in _native.gpu_devices()]

    @property
    def model_name(self) -> str:
        """The model file's name (e.g. ``SmolLM2-135M-Instruct.Q4_1.gguf``)."""
        return self.engine.name

    # -- generation -------------------------------------------------------------------------
    @overload
    def generate(self, prompt: str, *, max_tokens: int = ..., temp: float = ..., top_k: int = ...,
                 top_p: float = ..., min_p: float = ..., repeat_penalty: float = ...,
                 repeat_last_n: int = ..., n_batch: int = ..., n_predict: int | None = ...,
                 streaming: Literal[False] = ..., callback: ResponseCallbackType = ...,
                 stop: str | list[str] | None = ..., seed: int | None = ...,
                 grammar: str | None = ..., logprobs: int | None = ...) -> str: ...

    @overload
    def generate(self, prompt: str, *, max_tokens: int = ..., temp: float = ..., top_k: int = ...,
                 top_p: float = ..., min_p: float = ..., repeat_penalty: float = ...,
                 repeat_last_n: int = ..., n_batch: int = ..., n_predict: int | None = ...,
                 streaming: Literal[True], callback: ResponseCallbackType = ...,
                 stop: str | list[str] | None = ..., seed: int | None = ...,
                 grammar: str | None = ..., logprobs: int | None = ...) -> Iterable[str]: ...

    @overload
    def generate(self, prompt: str, *, max_tokens: int = ..., temp: float = ..., top_k: int = ...,
                 top_p: float = ..., min_p: float = ..., repeat_penalty: float = ...,
                 repeat_last_n: int = ..., n_batch: int = ..., n_predict: int | None = ...,
                 streaming: bool, callback: ResponseCallbackType = ...,
                 stop: str | list[str] | None = ..., seed: int | None = ...,
                 grammar: str | None = ..., logprobs: int | None = ...) -> Any: ...

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int = DEFAULTS.max_tokens,
        temp: float = DEFAULTS.temp,
        top_k: int = DEFAULTS.top_k,
        top_p: float = DEFAULTS.top_p,
        min_p: float = DEFAULTS.min_p,
        repeat_penalty: float = DEFAULTS.repeat_penalty,
        repeat_last_n: int = DEFAULTS.repeat_last_n,
        n_batch: int = 8,  # the seed's default (the sampling schema's None is the fastest)
        n_predict: int | None = None,
        streaming: bool = False,
        callback: ResponseCallbackType = empty_response_callback,
        stop: str | list[str] | None = None,
        seed: int | None = None,
        grammar: str | None = None,
        logprobs: int | None = None,
    ) -> Any:
        """Generate a completion, or the assistant's reply inside a chat session.

        Args:
            prompt: the text to complete, or (in a chat session) the user's message.
            max_tokens: maximum number of tokens to generate (>= 0).
            temp, top_k, top_p, min_p, repeat_penalty, repeat_last_n: sampling parameters,
                see :mod:`gpt4all_rag.engine.sampling`.
            n_batch: prompt tokens evaluated per llama.cpp batch (>= 1; None: the context's
                batch size, the fastest). Larger is faster up to the context's batch size
                (2048); the seed's default is 8.
            n_predict: alias of max_tokens (seed compatibility); wins when not None.
            streaming: return a generator of text pieces instead of the whole text.
            callback: called as ``callback(token_id, text)`` for every piece; returning False
                stops generation (the piece is still part of the response).
            stop: extension: stop sequences; generation stops before the first occurrence,
                which is not part of the response.
            seed: extension: seed of the random draw (None: fresh each call).
            grammar: extension: a GBNF grammar (start symbol ``root``) the output must follow.
            logprobs: extension: ``None`` (default, no cost) or ``n`` in 0..20: record each
                generated token's log-probability and the ``n`` most likely tokens at its step
                in :attr:`last_logprobs` (:class:`~gpt4all_rag.engine.types.TokenLogprob`,
                OpenAI's shape; natural log of the model's distribution before penalties,
                grammar, temperature and truncation). With stop sequences, every token
                generated is recorded, up to the one that completes the stop sequence.

        Returns:
            The generated text, or (``streaming=True``) a generator of its pieces. Closing the
            generator early stops generation and leaves the model usable. In a chat session
            the reply is appended to the history when generation ends (also when the
            generator is closed early).

        Raises:
            ContextOverflowError: (a ValueError) the prompt, or a chat message, does not fit
                into the context window (the seed's "Your message was too long" error).
            InvalidParameterError: (a ValueError) a parameter is out of range.
            UnsupportedOperationError: (a ValueError) the model is an embedding model.
            ChatTemplateError: (a ValueError) the session's template failed.
            GrammarError: (a ValueError) the grammar cannot be parsed.
            ModelClosedError: the model was closed.
            ModelBusyError: every sequence stayed busy (``max_waiting``, ``wait_timeout``).
            ConcurrentUseError: this thread's own open streams hold every sequence.
            GenerationError: llama.cpp failed while evaluating.

        Conversations longer than the context: the system message and the newest messages
        are kept and the oldest turns are left out of what the model sees (the history is
        not changed); see :attr:`stats` ``.dropped_messages``.
        """
        params = SamplingParams(
            max_tokens=max_tokens if n_predict is None else n_predict, temp=temp, top_k=top_k,
            top_p=top_p, min_p=min_p, repeat_penalty=repeat_penalty, repeat_last_n=repeat_last_n,
            seed=seed, n_batch=n_batch, stop=stop, grammar=grammar)  # type: ignore[arg-type]
        session = self._chat_session
        if session is None:
            return self.engine.create_completion(prompt, params, stream=streaming,
                                                 callback=callback, logprobs=logprobs)
        if not isinstance(prompt, str):
            raise errors.InvalidParameterError(f"prompt must be a string, got {type(prompt).__name__}")
        self.last_sources = []
        session.history.append(MessageType(role="user", content=prompt))
        try:
            if session.localdocs:
                from .localdocs import build_prompt, search_collections

                self.last_sources = search_collections(session.localdocs, prompt, session.localdocs_k)
                kwargs = {"prompt_template": session.localdocs_template} if session.localdocs_template else {}
                session.history[-1][LOCALDOCS_PROMPT_KEY] = build_prompt(prompt, self.last_sources, **kwargs)
            run = self.engine.chat_text(
                session.shown(), params, chat_template=session.template_source, callback=callback,
                logprobs=logprobs is not None, top_logprobs=logprobs, truncation="auto")
        except BaseException:
            session.drop_unanswered_turn()
            raise

        def turn() -> Iterator[str]:
            ok = False
            try:
                for text in run:
                    yield text
                ok = True
            except GeneratorExit:
                ok = True
                raise
            finally:
                run.close()
                if not ok:
                    session.drop_unanswered_turn()
                elif self._chat_session is session:
                    session.answer(run.completion)

        if streaming:
            return turn()
        return "".join(turn())

    def loglikelihood(self, prompt: str | list[MessageType], continuation: str, *,
                      n_batch: int = 512) -> LogLikelihood:
        """Log-likelihood of ``continuation`` after ``prompt``: for tests, evaluation and
        reranking (the ``loglikelihood`` request of EleutherAI's lm-evaluation-harness).

        Args:
            prompt: a raw prompt (tokenized as ``generate`` tokenizes one outside a chat
                session: special-token text parsed, BOS added as the model wants), or a list
                of OpenAI-style messages, rendered with the model's chat template (the
                catalogue's, else the GGUF's) with the assistant's turn opened, message text
                never parsed for special tokens.
            continuation: the text to score (tokenized on its own, without special-token
                parsing or BOS; a leading space matters as in any BPE vocabulary).
            n_batch: tokens per evaluation (>= 1).

        Returns:
            A :class:`~gpt4all_rag.engine.types.LogLikelihood` (sum, per-token values and
            greedy ranks). The prompt's tokens stay in the KV cache, so scoring several
            continuations of one prompt evaluates it once.

        Raises:
            InvalidParameterError: a non-string argument, an empty continuation or prompt.
            ContextOverflowError: prompt and continuation do not fit the context window.
            ChatTemplateError: messages given and no chat template is available.
            UnsupportedOperationError: the model is an embedding model.
            ModelClosedError: the model was closed.
            ModelBusyError, ConcurrentUseError: as for :meth:`generate`.
        """
        return self.engine.loglikelihood(prompt, continuation, n_batch=n_batch)

    # -- the chat core ----------------------------------------------------------------------
    def create_chat_completion(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        response_format: dict[str, Any] | None = None,
        stream: bool = False,
        logprobs: bool = False,
        top_logprobs: int | None = None,
        chat_template: str | None = None,
        enable_thinking: bool | None = None,
        callback: ResponseCallbackType = empty_response_callback,
        **sampling: Any,
    ) -> ChatCompletion | Iterator[ChatCompletionChunk]:
        """A stateless chat completion (OpenAI's ``chat.completions.create`` shape).

        Args:
            messages: OpenAI-style messages: ``system``/``developer``, ``user``, ``assistant``
                (with ``tool_calls``), ``tool`` (with ``tool_call_id``); content a string or
                text parts. See :func:`gpt4all_rag.engine.chat.normalize_messages`.
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
            stream: return an iterator of :class:`~gpt4all_rag.engine.types.ChatCompletionChunk`
                (the first with the role, the last with ``finish_reason`` and ``usage``).
                Closing it stops generation.
            logprobs, top_logprobs: report the generated tokens' log-probabilities, with
                ``top_logprobs`` (0..20) alternatives each (see :mod:`~gpt4all_rag.engine.types`).
            chat_template: a Jinja template instead of the catalogue's or the GGUF's.
            enable_thinking: for templates that can switch reasoning (Qwen3, ...): passed to
                the template as ``enable_thinking``; None leaves the template's default.
                Reasoning is returned as ``reasoning_content``, never in ``content``.
            callback: as for :meth:`generate`: called as ``callback(token_id, text)`` for
                every piece; returning False stops generation there (``finish_reason``
                ``"stop"``, the reply read from the text so far). The server stops a request
                whose client left this way.
            **sampling: :class:`~gpt4all_rag.engine.sampling.SamplingParams` fields and aliases
                (``temperature``, ``max_completion_tokens``, ...), e.g. ``max_tokens``,
                ``temp``, ``seed``, ``stop``, ``grammar``.

        Returns:
            A :class:`~gpt4all_rag.engine.types.ChatCompletion`, or the chunk iterator.
            The KV cache's common prefix with the previous call is reused
            (``usage.cached_tokens``).

        Raises:
            InvalidParameterError: malformed messages, tools, tool_choice, response_format
                or sampling options (``ValueError``).
            ContextOverflowError: the messages do not fit the context window.
            ChatTemplateError: no template, or the template failed (or ran past its limits).
            GrammarError: a bad grammar or schema.
            UnsupportedOperationError: an embedding model.
            ModelClosedError, ConcurrentUseError, GenerationError: as for :meth:`generate`.
        """
        return self.engine.create_chat_completion(
            messages, SamplingParams.from_options(**sampling), tools=tools, tool_choice=tool_choice,
            response_format=response_format, stream=stream, logprobs=logprobs,
            top_logprobs=top_logprobs, chat_template=chat_template,
            enable_thinking=enable_thinking, callback=callback)

    def chat_prompt_tokens(self, messages: list[dict[str, Any]], *,
                           tools: list[dict[str, Any]] | None = None,
                           tool_choice: str | dict[str, Any] | None = None,
                           response_format: dict[str, Any] | None = None,
                           chat_template: str | None = None,
                           enable_thinking: bool | None = None) -> list[int]:
        """The prompt :meth:`create_chat_completion` would feed the model for these arguments,
        as token ids (its ``usage.prompt_tokens`` is their number); nothing is evaluated.

        Raises:
            InvalidParameterError, ChatTemplateError, UnsupportedOperationError,
            ModelClosedError: as for :meth:`create_chat_completion`.
        """
        return self.engine.chat_prompt_tokens(messages, tools=tools, tool_choice=tool_choice,
                                              response_format=response_format,
                                              chat_template=chat_template,
                                              enable_thinking=enable_thinking)

    # -- chat sessions ----------------------------------------------------------------------
    @contextmanager
    def chat_session(self, system_message: str | Literal[False] | None = None,
                     chat_template: str | None = None, *, localdocs: Any = None,
                     localdocs_k: int = 3, localdocs_template: str | None = None) -> Iterator[Self]:
        """Hold a chat session: each ``generate()`` is a user turn and gets the model's reply.
        Sessions nest: an inner one holds its own history, and the outer one goes on after it.

        Args:
            system_message: an initial instruction; None uses the catalogue's default (none
                for sideloaded models), False disables it.
            chat_template: a Jinja chat template; None uses the catalogue's, else the one
                stored in the GGUF (``tokenizer.chat_template``).
            localdocs: extension: a :class:`~gpt4all_rag.localdocs.LocalDocs` collection, or a
                list of them (their rankings fused by
                :func:`~gpt4all_rag.localdocs.search_collections`). Each
                user turn then retrieves ``localdocs_k`` excerpts for the message and the model
                sees them before the question (``localdocs_template``, default
                :data:`~gpt4all_rag.localdocs.DEFAULT_PROMPT_TEMPLATE`, with ``{context}`` and
                ``{question}``). The history keeps the plain message under ``content`` and the
                augmented one under ``"localdocs_prompt"``; :attr:`last_sources` holds the
                :class:`~gpt4all_rag.localdocs.SearchResult` list of the latest turn.
            localdocs_k: excerpts per turn (GPT4All's desktop app uses 3).
            localdocs_template: the prompt template for retrieved context.

        Raises:
            ChatTemplateError: (a ValueError) no template is available (the message says how to
                pass one), or the template is malformed.
            InvalidParameterError: ``localdocs`` is neither a LocalDocs nor a list of them.
        """
        if system_message is None:
            system_message = self.config.get("systemMessage", False)
        chat_template = self.engine.chat_template_source(chat_template)
        self.engine.template(chat_template)  # a malformed template fails here
        check_number("localdocs_k", localdocs_k, low=1, integer=True)
        if localdocs is None:
            collections = []
        elif isinstance(localdocs, (list, tuple)):
            collections = list(localdocs)
        else:
            collections = [localdocs]
        if not all(hasattr(ld, "search") for ld in collections):
            raise errors.InvalidParameterError(
                "localdocs must be a gpt4all_rag.localdocs.LocalDocs or a list of them")
        history: list[MessageType] = []
        if system_message is not False:
            history.append(MessageType(role="system", content=system_message))
        outer = self._chat_session
        self._chat_session = ChatSession(template_source=chat_template, history=history, localdocs=collections,
                                         localdocs_k=localdocs_k, localdocs_template=localdocs_template)
        try:
            yield self
        finally:
            self._chat_session = outer  # a nested session gives the outer one back
