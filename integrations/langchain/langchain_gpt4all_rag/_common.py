"""What the chat and completion models share: fields, lazy engines, locking, async pumping.

Private module. The public classes are in :mod:`.chat_models` and :mod:`.llms`.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.language_models.base import LangSmithParams
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from gpt4all_rag import GPT4All
from gpt4all_rag.aio import iterate_in_thread
from gpt4all_rag.gpt4all import DEFAULT_N_CTX
from gpt4all_rag.engine.generation import GenerationStats
from gpt4all_rag.engine.sampling import ALIASES, FIELDS, SamplingParams
from gpt4all_rag.errors import ModelNotFoundError

__all__: list[str] = []

#: LangChain's standard constructor parameters that only make sense for remote APIs. They are
#: accepted (LangChain's standard test suites pass them) and have no effect: a local model
#: makes no network request to time out, retry or authenticate.
IGNORED_REMOTE_PARAMS = frozenset({"timeout", "max_retries", "api_key"})

#: Per-call keyword arguments that override a sampling field for one call (the engine's
#: schema, gpt4all_rag.engine.sampling, and its aliases; ``stop`` is handled on its own).
SAMPLING_KEYS = tuple(f for f in FIELDS if f != "stop") + tuple(ALIASES)
#: The sampling fields an instance sets (a call may add ``grammar`` and ``stop``).
_FIELDS = tuple(f for f in FIELDS if f not in ("stop", "grammar"))

#: ``ls_provider`` of the LangSmith tracing parameters.
PROVIDER = "gpt4all"

T = TypeVar("T")


class GPT4AllParams(BaseModel):
    """Fields shared by :class:`~.ChatGPT4All` and :class:`~.GPT4AllLLM` (see their docs)."""

    model_config = ConfigDict(populate_by_name=True, protected_namespaces=(),
                              arbitrary_types_allowed=True, extra="forbid")

    model: str = Field(
        description="Model file name (looked up in model_path) or path to a GGUF file. "
        "A catalogue name is downloaded when allow_download is true and the file is missing.")
    model_path: str | None = Field(
        default=None, description="Directory holding the model; None means GPT4All's default "
        "(~/.cache/gpt4all, or $GPT4ALL_MODEL_PATH).")
    allow_download: bool = Field(
        default=True, description="Allow downloading a missing catalogue model. A file that is "
        "present is used without network access.")
    n_ctx: int = Field(default=DEFAULT_N_CTX, gt=0, description="Context window in tokens.")
    n_threads: int | None = Field(default=None, gt=0,
                                  description="CPU threads; None picks a default.")
    device: str | None = Field(default=None,
                               description='"cpu" (default), "gpu", "cuda", "vulkan", ...')
    n_parallel: int = Field(
        default=1, ge=1, le=64, description="Generations the loaded model serves at once, "
        "decoded together (batch/abatch of n prompts run concurrently with n_parallel >= n); "
        "each holds a KV cache of n_ctx tokens.")
    # Sampling fields (langchain-ollama's convention): None leaves the engine's default. Their
    # meaning, ranges and defaults live in gpt4all_rag.engine.sampling alone, which checks them
    # when a call builds its SamplingParams.
    temp: float | None = Field(default=None, alias="temperature",
                               description="Temperature; 0 is greedy (deterministic).")
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    repeat_last_n: int | None = None
    max_tokens: int | None = Field(default=None, description="Most tokens generated per call.")
    n_batch: int | None = Field(
        default=None, description="Prompt tokens per evaluation batch; None: the context's "
        "batch size, the fastest.")
    seed: int | None = Field(default=None, description="Seed of the random draw; None draws a "
                             "fresh one per call.")
    stop: list[str] | None = Field(
        default=None, description="Stop sequences; generation ends before the first one. A "
        "call's own `stop` replaces these.")
    streaming: bool = Field(default=False, description="Make invoke() stream internally "
                            "(callbacks then receive every token).")

    _engines: dict[str, _Engine] = PrivateAttr(default_factory=dict)
    _engines_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="before")
    @classmethod
    def _drop_remote_params(cls, values: Any) -> Any:
        if isinstance(values, dict):
            values = {k: v for k, v in values.items() if k not in IGNORED_REMOTE_PARAMS}
        return values

    @model_validator(mode="after")
    def _check_sampling(self) -> Any:
        """The sampling fields are checked by the schema when the model is built, too."""
        SamplingParams.from_options(**{k: v for k in _FIELDS if (v := getattr(self, k)) is not None})
        return self


    # -- engines ----------------------------------------------------------------------------
    def _engine(self, model: str | None = None) -> _Engine:
        """The loaded engine of ``model`` (default: this instance's), loading it on first use.

        Instances whose model and load options (``model_path``, ``allow_download``, ``n_ctx``,
        ``n_threads``, ``device``, ``n_parallel``) are equal share one loaded model, for as long as one of
        them holds it: LangChain code often builds a model object per request.

        Raises:
            ModelNotFoundError, ModelLoadError, DownloadError: from :class:`gpt4all_rag.GPT4All`.
        """
        name = self.model if model is None else model
        with self._engines_lock:
            engine = self._engines.get(name)
            if engine is None:
                key = (name, self.model_path, self.allow_download, self.n_ctx, self.n_threads,
                       self.device, self.n_parallel)
                with _SHARED_LOCK:
                    engine = _SHARED.get(key)
                    if engine is None:
                        engine = _Engine(self._load(name))
                        _SHARED[key] = engine
                self._engines[name] = engine
            return engine

    def _load(self, name: str) -> GPT4All:
        model_path = self.model_path
        if os.sep in name or (os.altsep and os.altsep in name) or name.startswith("~"):
            # A path to a file (absolute, or relative to the working directory).
            path = Path(name).expanduser().resolve()
            if not path.is_file():
                raise ModelNotFoundError(f"model file {str(path)!r} does not exist")
            name, model_path = str(path), None
        return GPT4All(name, model_path=model_path, allow_download=self.allow_download,
                       n_threads=self.n_threads, device=self.device, n_ctx=self.n_ctx,
                       n_parallel=self.n_parallel)

    def close(self) -> None:
        """Drop this instance's loaded models; the next call loads them again.

        The weights are freed once no other instance shares them (see ``_engine``).
        """
        with self._engines_lock:
            self._engines = {}

    def get_token_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` in the model's own vocabulary, without special tokens.

        LangChain's ``get_num_tokens`` and ``trim_messages(token_counter=model)`` use it, so
        token counts are exact for this model. Loads the model on first use;
        ``custom_get_token_ids``, when set, takes precedence.
        """
        custom = getattr(self, "custom_get_token_ids", None)
        if custom is not None:
            return list(custom(text))
        return self._engine().model.engine.tokenize(text)

    def _sampling(self, stop: list[str] | None, kwargs: dict[str, Any]) -> SamplingParams:
        """The :class:`~gpt4all_rag.engine.sampling.SamplingParams` of one call: this
        instance's fields that are set, overridden by the call's (consumed from ``kwargs``;
        aliases such as ``temperature`` accepted, a name and its alias that disagree refused).

        Raises:
            InvalidParameterError: (a ValueError) a value out of range.
        """
        overrides = {k: kwargs.pop(k) for k in SAMPLING_KEYS if k in kwargs}
        fields = {k: v for k in _FIELDS if (v := getattr(self, k)) is not None
                  and k not in {ALIASES.get(o, o) for o in overrides}}
        stops = list(stop) if stop is not None else list(self.stop or [])
        return SamplingParams.from_options(**fields, **overrides, stop=stops)

    def _model_name(self, kwargs: dict[str, Any]) -> str:
        model = kwargs.pop("model", None)
        if model is None:
            return self.model
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        return model

    @staticmethod
    def _check_no_kwargs(kwargs: dict[str, Any]) -> None:
        if kwargs:
            names = ", ".join(sorted(kwargs))
            raise ValueError(
                f"unsupported keyword argument(s) for a GPT4All call: {names}; accepted: "
                f"{', '.join(SAMPLING_KEYS)}, stop, model (and tools, tool_choice, json_schema, "
                "logprobs, top_logprobs for chat models)")

    def _display_name(self, model: str) -> str:
        return Path(model).name


def identifying_params(p: GPT4AllParams) -> dict[str, Any]:
    """The fields that identify a model's configuration (LangChain's ``_identifying_params``)."""
    return {"model": p.model, "n_ctx": p.n_ctx, "temp": p.temp, "top_k": p.top_k,
            "top_p": p.top_p, "min_p": p.min_p, "repeat_penalty": p.repeat_penalty,
            "repeat_last_n": p.repeat_last_n, "max_tokens": p.max_tokens, "seed": p.seed}


def ls_params(p: GPT4AllParams, model_type: str, stop: list[str] | None,
              kwargs: dict[str, Any]) -> LangSmithParams:
    """LangSmith tracing parameters of one call (``model_type`` "chat" or "llm")."""
    model = kwargs.get("model")
    params = LangSmithParams(
        ls_provider=PROVIDER,
        ls_model_name=model if isinstance(model, str) and model else p.model,
        ls_model_type=model_type,  # type: ignore[typeddict-item]
        ls_temperature=kwargs.get("temperature", kwargs.get("temp", p.temp)),
        ls_max_tokens=kwargs.get("max_tokens", p.max_tokens))
    if ls_stop := stop or p.stop:
        params["ls_stop"] = ls_stop
    return params


class _Engine:
    """One loaded :class:`GPT4All`, shared by the instances with the same load options.

    The model serves ``n_parallel`` calls at once and keeps each thread's statistics apart
    (``GPT4All.stats`` is per thread), so calls need no lock here.
    """

    def __init__(self, model: GPT4All) -> None:
        self.model = model

    def pieces(self, prompt: str, params: SamplingParams) -> Iterator[str | GenerationStats]:
        """Complete ``prompt`` with real streaming: yields text pieces, then a copy of the
        call's stats. Closing the generator early stops generation."""
        engine = self.model.engine
        stream = engine.create_completion(prompt, params, stream=True)
        assert not isinstance(stream, str)
        try:
            yield from stream
        finally:
            stream.close()  # type: ignore[attr-defined]
        yield dataclasses.replace(engine.stats)

    def complete(self, prompt: str, params: SamplingParams) -> tuple[str, GenerationStats]:
        """Complete ``prompt`` without streaming: the text and a copy of the call's stats."""
        engine = self.model.engine
        text = engine.create_completion(prompt, params)
        assert isinstance(text, str)
        return text, dataclasses.replace(engine.stats)


#: Loaded engines by (model, model_path, allow_download, n_ctx, n_threads, device, n_parallel), kept
#: while some instance refers to them.
_SHARED: weakref.WeakValueDictionary[tuple[Any, ...], _Engine] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()

#: The thread-to-asyncio bridge of every async front (gpt4all_rag.aio).
pump = iterate_in_thread


async def run_blocking(func: Callable[..., T], *args: Any) -> T:
    """Run ``func(*args)`` in the default thread pool, keeping the caller's contextvars."""
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    return await loop.run_in_executor(None, lambda: ctx.run(func, *args))
