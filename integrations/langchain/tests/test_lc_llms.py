"""GPT4AllLLM (completion, no chat template) on the real SmolLM2 model."""

from __future__ import annotations

import pytest
from langchain_gpt4all_rag import GPT4AllLLM
from lc_helpers import chat_params

PROMPT = "<|im_start|>user\nName three colours.<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def llm() -> GPT4AllLLM:
    return GPT4AllLLM(**chat_params(max_tokens=16))


def test_invoke_completes_the_prompt_as_given(llm: GPT4AllLLM) -> None:
    text = llm.invoke(PROMPT)
    assert isinstance(text, str) and text
    assert text == llm.invoke(PROMPT)  # greedy: deterministic


def test_generation_info_and_token_usage(llm: GPT4AllLLM) -> None:
    result = llm.generate([PROMPT], max_tokens=4)
    info = result.generations[0][0].generation_info or {}
    assert info["finish_reason"] == "length"
    assert info["completion_tokens"] == 4
    assert info["prompt_tokens"] > 4
    assert result.llm_output is not None
    assert result.llm_output["token_usage"]["completion_tokens"] == 4
    assert result.llm_output["model_name"] == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_stream_is_real_and_joins_to_invoke(llm: GPT4AllLLM) -> None:
    chunks = list(llm.stream(PROMPT))
    assert len([c for c in chunks if c]) > 3
    assert "".join(chunks) == llm.invoke(PROMPT)


async def test_astream_joins_to_ainvoke(llm: GPT4AllLLM) -> None:
    chunks = [c async for c in llm.astream(PROMPT)]
    assert "".join(chunks) == await llm.ainvoke(PROMPT)


def test_stop_is_honoured(llm: GPT4AllLLM) -> None:
    text = llm.invoke(PROMPT)
    stop = text.split()[2]
    assert llm.invoke(PROMPT, stop=[stop]) == text[: text.index(stop)]


def test_streaming_field_routes_invoke_through_the_stream() -> None:
    tokens: list[str] = []
    from langchain_core.callbacks import BaseCallbackHandler

    class Collect(BaseCallbackHandler):
        def on_llm_new_token(self, token: str, **kwargs: object) -> None:
            tokens.append(token)

    streaming = GPT4AllLLM(**chat_params(max_tokens=8, streaming=True))
    text = streaming.invoke(PROMPT, config={"callbacks": [Collect()]})
    assert len(tokens) > 1 and "".join(tokens) == text
