"""Model-native tool calls and reasoning on the real chat templates of the pinned llama.cpp
tree (``models/templates/*.jinja``), with canned model outputs: llama.cpp's chat layer finds
each family's format and parses its replies; our sandbox renders the same templates."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Iterator

import pytest

from gpt4all_rag import errors
from gpt4all_rag.engine import native as _native
from gpt4all_rag.engine.native_model import NativeModel
from gpt4all_rag.engine.templates import ChatTemplate
from tests.conftest import SMOLLM2


def _templates_dir() -> Path:
    roots = [os.environ.get("G4R_LLAMA_CPP_DIR", "")] + glob.glob(
        str(Path(__file__).resolve().parents[2] / "build/*/_deps/llama-sdist/*/vendor/llama.cpp"))
    for root in roots:
        if root and (Path(root) / "models/templates").is_dir():
            return Path(root) / "models/templates"
    raise RuntimeError("no llama.cpp tree with models/templates: build the project first "
                       "(bash scripts/setup.sh) or set G4R_LLAMA_CPP_DIR")


TEMPLATES = _templates_dir()
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]
MESSAGES = [{"role": "user", "content": "Weather in Paris and Lyon?"}]
PARIS = '{"city": "Paris"}'

# template file -> (canned reply, expected reasoning, expected tool-call arguments)
CASES = {
    "Qwen-Qwen3-0.6B.jinja": (
        '<think>\nTwo cities.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": '
        '{"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "get_weather", "arguments": '
        '{"city": "Lyon"}}\n</tool_call>', "Two cities.", [PARIS, '{"city": "Lyon"}']),
    "Qwen-Qwen2.5-7B-Instruct.jinja": (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        None, [PARIS]),
    "Qwen-QwQ-32B.jinja": (
        'Thinking.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": '
        '{"city": "Paris"}}\n</tool_call>', "Thinking.", [PARIS]),
    "meta-llama-Llama-3.1-8B-Instruct.jinja": (
        '{"name": "get_weather", "parameters": {"city": "Paris"}}', None, [PARIS]),
    "meta-llama-Llama-3.3-70B-Instruct.jinja": (
        '{"name": "get_weather", "parameters": {"city": "Paris"}}', None, [PARIS]),
    "mistralai-Mistral-Nemo-Instruct-2407.jinja": (
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abc123def"}]',
        None, [PARIS]),
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja": (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        None, [PARIS]),
}


@pytest.fixture(scope="module")
def vocab(model_dir: Path) -> Iterator[NativeModel]:
    m = NativeModel(model_dir / SMOLLM2, vocab_only=True)
    yield m
    m.close()


@pytest.mark.parametrize("name", CASES)
def test_native_tool_calls_and_reasoning_are_parsed(vocab: NativeModel, name: str) -> None:
    source = (TEMPLATES / name).read_text()
    info = vocab.chat_apply({"messages": MESSAGES, "tools": TOOLS}, chat_template=source)
    assert info["caps"]["supports_tool_calls"]
    reply, reasoning, arguments = CASES[name]
    parsed = _native.chat_parse(info, reply, partial=False)
    assert [c["name"] for c in parsed["tool_calls"]] == ["get_weather"] * len(arguments)
    assert [c["arguments"] for c in parsed["tool_calls"]] == arguments
    assert (parsed["reasoning_content"].strip() or None) == reasoning
    assert "<think>" not in parsed["content"] and "</think>" not in parsed["content"]
    # a reply cut in the middle is no error while streaming
    _native.chat_parse(info, reply[: len(reply) // 2], partial=True)
    # our sandbox renders the same template with the tools (as transformers does)
    rendered = ChatTemplate(source).render(MESSAGES, tools=TOOLS, bos_token="<s>", eos_token="</s>")
    assert "get_weather" in rendered


def test_reasoning_is_split_from_the_answer(vocab: NativeModel) -> None:
    source = (TEMPLATES / "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja").read_text()
    info = vocab.chat_apply({"messages": MESSAGES}, chat_template=source)
    assert info["supports_thinking"]
    parsed = _native.chat_parse(info, "Let me think.\n</think>\n\nParis is sunny.", partial=False)
    assert parsed["reasoning_content"].strip() == "Let me think."
    assert parsed["content"].strip() == "Paris is sunny." and not parsed["tool_calls"]


def test_thinking_can_be_switched_off_where_the_template_supports_it(vocab: NativeModel) -> None:
    source = (TEMPLATES / "Qwen-Qwen3-0.6B.jinja").read_text()
    on = ChatTemplate(source).render(MESSAGES, enable_thinking=True)
    off = ChatTemplate(source).render(MESSAGES, enable_thinking=False)
    assert "<think>\n\n</think>" in off and "<think>\n\n</think>" not in on


@pytest.mark.parametrize("path", sorted(TEMPLATES.glob("*.jinja")), ids=lambda p: p.stem)
def test_every_shipped_template_renders_or_fails_cleanly(path: Path) -> None:
    # Real templates in the bounded sandbox: each renders a tool conversation, or fails with
    # ChatTemplateError (e.g. raise_exception for a role it does not take); never anything else.
    try:
        ChatTemplate(path.read_text()).render(
            [{"role": "system", "content": "Be brief."}] + MESSAGES, tools=TOOLS,
            bos_token="<s>", eos_token="</s>")
    except errors.ChatTemplateError:
        pass


def test_bad_requests_are_clear_errors(vocab: NativeModel) -> None:
    with pytest.raises(errors.InvalidParameterError):
        vocab.chat_apply({"messages": [{"role": "user"}], "tools": "nope"})
    with pytest.raises(errors.InvalidParameterError):
        _native.chat_parse({"format_id": 999}, "x", partial=False)
