"""``GPT4AllLLM``: a LangChain completion model (text in, text out) on a local GGUF model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseLLM
from langchain_core.language_models.base import LangSmithParams
from langchain_core.outputs import Generation, GenerationChunk, LLMResult

from gpt4all_rag.engine.generation import GenerationStats
from gpt4all_rag.engine.sampling import SamplingParams

from ._common import GPT4AllParams, identifying_params, ls_params, pump, run_blocking

__all__ = ["GPT4AllLLM"]


class GPT4AllLLM(GPT4AllParams, BaseLLM):
    """Completion model on a local GGUF model: the prompt is continued as it is, no template.

    Use it for base (not instruction-tuned) models, or to control the prompt format yourself;
    use :class:`~langchain_gpt4all_rag.ChatGPT4All` for chat.

    Fields: the same as :class:`~langchain_gpt4all_rag.ChatGPT4All` (``model``, ``model_path``,
    ``allow_download``, ``n_ctx``, ``n_threads``, ``device``, the sampling parameters,
    ``max_tokens``, ``n_batch``, ``stop``, ``streaming``) without ``chat_template``.
    Per-call keyword arguments: sampling fields, ``stop``, ``grammar``, ``model``.

    Example:
        .. code-block:: python

            from langchain_gpt4all_rag import GPT4AllLLM

            llm = GPT4AllLLM(model="gemma-3-270m-q4_k_m.gguf", temperature=0, max_tokens=32)
            llm.invoke("The capital of France is")

    Each generation's ``generation_info`` holds ``finish_reason`` (``"stop"``, ``"length"``),
    ``prompt_tokens``, ``completion_tokens`` and ``cached_tokens`` (prompt tokens reused from
    the previous call); ``llm_output`` holds the summed ``token_usage`` and ``model_name``.
    Streaming is real token streaming. Thread safety, lazy loading and errors: as for
    ``ChatGPT4All`` (a prompt longer than ``n_ctx`` raises ``ContextOverflowError``).
    """

    model_config = GPT4AllParams.model_config  # BaseChatModel/BaseLLM would relax `extra`

    @property
    def _llm_type(self) -> str:
        return "gpt4all-rag"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return identifying_params(self)

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return ls_params(self, "llm", stop, kwargs)

    def _prepare(self, stop: list[str] | None, kwargs: dict[str, Any],
                 ) -> tuple[str, SamplingParams]:
        kwargs = dict(kwargs)
        model_name = self._model_name(kwargs)
        params = self._sampling(stop, kwargs)
        self._check_no_kwargs(kwargs)
        return model_name, params

    @staticmethod
    def _info(stats: GenerationStats) -> dict[str, Any]:
        return {"finish_reason": stats.finish_reason, "prompt_tokens": stats.prompt_tokens,
                "completion_tokens": stats.completion_tokens,
                "cached_tokens": stats.reused_tokens}

    def _generate(self, prompts: list[str], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None,
                  **kwargs: Any) -> LLMResult:
        model_name, params = self._prepare(stop, kwargs)
        engine = self._engine(model_name)
        generations: list[list[Generation]] = []
        prompt_tokens = completion_tokens = 0
        for prompt in prompts:
            if self.streaming:
                text, info = "", dict[str, Any]()
                for chunk in self._stream(prompt, stop, run_manager, **kwargs):
                    text += chunk.text
                    info = chunk.generation_info or info
            else:
                text, stats = engine.complete(prompt, params)
                info = self._info(stats)
            prompt_tokens += info.get("prompt_tokens", 0)
            completion_tokens += info.get("completion_tokens", 0)
            generations.append([Generation(text=text, generation_info=info)])
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        return LLMResult(generations=generations,
                         llm_output={"token_usage": usage,
                                     "model_name": model_name})

    async def _agenerate(self, prompts: list[str], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None,
                         **kwargs: Any) -> LLMResult:
        if self.streaming:
            generations: list[list[Generation]] = []
            for prompt in prompts:
                text, info = "", dict[str, Any]()
                async for chunk in self._astream(prompt, stop, run_manager, **kwargs):
                    text += chunk.text
                    info = chunk.generation_info or info
                generations.append([Generation(text=text, generation_info=info)])
            return LLMResult(generations=generations)
        return await run_blocking(lambda: self._generate(prompts, stop, None, **kwargs))

    def _stream(self, prompt: str, stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None,
                **kwargs: Any) -> Iterator[GenerationChunk]:
        model_name, params = self._prepare(stop, kwargs)
        engine = self._engine(model_name)
        for item in engine.pieces(prompt, params):
            chunk = _chunk(item)
            if run_manager is not None and chunk.text:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(self, prompt: str, stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[GenerationChunk]:
        model_name, params = self._prepare(stop, kwargs)
        engine = await run_blocking(self._engine, model_name)
        items = pump(lambda: engine.pieces(prompt, params))
        try:
            async for item in items:
                chunk = _chunk(item)
                if run_manager is not None and chunk.text:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        finally:
            await items.aclose()


def _chunk(item: str | GenerationStats) -> GenerationChunk:
    if isinstance(item, GenerationStats):
        return GenerationChunk(text="", generation_info=GPT4AllLLM._info(item))
    return GenerationChunk(text=item)
