"""LangChain's standard chat-model test suites on the real SmolLM2-135M-Instruct model."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_gpt4all_rag import ChatGPT4All
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests
from lc_helpers import SMOLLM2, chat_params, models_dir

# Why a standard test is expected to fail. Each is a limit of a 135M-parameter model, not of
# the integration: the call's structure is enforced by the grammar and checked in
# test_lc_chat_models.py; only the model's choice of *content* falls short.
_WRONG_ARGUMENTS = (
    "SmolLM2-135M fills tool arguments poorly: asked for magic_function(3) it calls "
    "magic_function with input=10 (the JSON shape is grammar-enforced and valid; the value "
    "is the model's choice)")
_NO_TOOL_DECISION = (
    "with tool_choice unset the model decides between text and a tool call; SmolLM2-135M "
    "answers the weather question in prose instead of calling get_weather")
_NO_UNICODE_COPY = (
    "SmolLM2-135M writes customer_name='hello' instead of copying '你好啊集团' (it translates); "
    "the grammar admits any Unicode and test_lc_chat_models checks Chinese arguments arrive "
    "intact")
_JSON_MODE_KEYS = (
    "json_mode constrains the reply to *some* JSON object and names the keys only in prose; "
    "SmolLM2-135M invents its own keys ('set-up', nested objects) instead of "
    "'setup'/'punchline'")


class TestChatGPT4AllUnit(ChatModelUnitTests):
    """Construction, parameters and binding: no weights are loaded."""

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatGPT4All

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # A path that does not exist is fine: nothing here loads the model.
        return {"model": SMOLLM2, "model_path": "/nonexistent/models", "allow_download": False}


class TestChatGPT4AllIntegration(ChatModelIntegrationTests):
    """The full integration suite against the real model."""

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatGPT4All

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return chat_params(max_tokens=16)

    @pytest.fixture
    def model(self, request: pytest.FixtureRequest) -> BaseChatModel:
        # Short replies keep the suite fast on two cores; tests that parse JSON get enough
        # tokens for a complete object from this model (a cut-off object cannot parse).
        name = request.node.name
        max_tokens = 64 if ("structured" in name or "json" in name) else \
            48 if any(w in name for w in ("tool", "agent", "runnables")) else 16
        extra = getattr(request, "param", None) or {}
        return ChatGPT4All(**{**self.standard_chat_model_params, **self.chat_model_params,
                              "max_tokens": max_tokens, **extra})

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supported_usage_metadata_details(self) -> dict[str, Any]:
        return {"invoke": ["cache_read_input"], "stream": ["cache_read_input"]}

    def invoke_with_cache_read_input(self, *, stream: bool = False) -> Any:
        llm = ChatGPT4All(**chat_params(max_tokens=4))
        llm.invoke("Repeat after me: the cache is warm.")
        if stream:
            full = None
            for chunk in llm.stream("Repeat after me: the cache is warm."):
                full = chunk if full is None else full + chunk
            return full
        return llm.invoke("Repeat after me: the cache is warm.")

    @property
    def supports_model_override(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str | None:
        # The same weights named by their absolute path: a different `model` string that
        # this instance loads (and keeps) on first use.
        return str(models_dir() / SMOLLM2)

    @pytest.mark.xfail(reason=_WRONG_ARGUMENTS, strict=False)
    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    def test_tool_calling(self, model: BaseChatModel) -> None:
        super().test_tool_calling(model)

    @pytest.mark.xfail(reason=_WRONG_ARGUMENTS, strict=False)
    async def test_tool_calling_async(self, model: BaseChatModel) -> None:
        await super().test_tool_calling_async(model)

    @pytest.mark.xfail(reason=_NO_TOOL_DECISION, strict=False)
    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)

    @pytest.mark.xfail(reason=_JSON_MODE_KEYS, strict=False)
    def test_json_mode(self, model: BaseChatModel) -> None:
        super().test_json_mode(model)

    @pytest.mark.xfail(reason=_NO_UNICODE_COPY, strict=False)
    def test_unicode_tool_call_integration(self, model: BaseChatModel, *,
                                           tool_choice: str | None = None,
                                           force_tool_call: bool = True) -> None:
        super().test_unicode_tool_call_integration(model, tool_choice=tool_choice,
                                                   force_tool_call=force_tool_call)
