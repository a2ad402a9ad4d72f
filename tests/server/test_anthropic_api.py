"""Anthropic's Messages API, ``/tokenize`` / ``/detokenize`` and ``/metrics`` of a real
``gpt4all-rag serve``, driven by the ``anthropic`` SDK, httpx and prometheus-client's parser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpt4all_rag import GPT4All
from tests.conftest import SMOLLM2

from .conftest import API_KEY, QWEN3_SMOL
from .openai_server import running_openai_server

KEY = API_KEY
TOOL = {"name": "get_weather", "description": "Weather of a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                         "required": ["city"]}}
HELLO = [{"role": "user", "content": "Say hello to the volcano."}]
#: Stop sequences one of which any reply of a few words holds.
COMMON = list("aeiouAEIOU .,!?\n")


@pytest.fixture(scope="module")
def server(api_server: str) -> str:
    return api_server


@pytest.fixture()
def client(server: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server, api_key=KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def smol(models: Path) -> Iterator[GPT4All]:
    with GPT4All(SMOLLM2, model_path=models, n_ctx=2048, verbose=False) as model:
        yield model


def _auth() -> dict[str, str]:
    return {"x-api-key": KEY}


def test_a_message_and_its_stop_reasons(client: anthropic.Anthropic) -> None:
    m = client.messages.create(model=SMOLLM2, max_tokens=8, messages=HELLO, extra_body={"temperature": 0})
    assert m.type == "message" and m.role == "assistant" and m.model == SMOLLM2
    assert [b.type for b in m.content] == ["text"] and m.content[0].text
    assert m.stop_reason in ("end_turn", "max_tokens") and m.usage.output_tokens <= 8
    stopped = client.messages.create(model=SMOLLM2, max_tokens=30, messages=HELLO, stop_sequences=COMMON,
                                     system=[{"type": "text", "text": "You are brief."}],
                                     extra_body={"temperature": 0})
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence in COMMON
    long = client.messages.create(model=SMOLLM2, max_tokens=2, messages=HELLO, extra_body={"temperature": 0})
    assert long.stop_reason == "max_tokens" and long.usage.output_tokens == 2


def test_a_stream_follows_anthropics_event_sequence(client: anthropic.Anthropic) -> None:
    events = list(client.messages.create(model=SMOLLM2, max_tokens=12, messages=HELLO, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds[1:-2] == ["content_block_start", *["content_block_delta"] * (len(kinds) - 5),
                           "content_block_stop"]
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text and events[-2].usage.output_tokens <= 12
    assert events[0].message.usage.input_tokens == client.messages.count_tokens(
        model=SMOLLM2, messages=HELLO).input_tokens
    with client.messages.stream(model=SMOLLM2, max_tokens=12, messages=HELLO, extra_body={"temperature": 0}) as s:
        streamed = "".join(s.text_stream)
        final = s.get_final_message()
    assert final.content[0].text == streamed and final.stop_reason in ("end_turn", "max_tokens")


def test_tools_round_trip(client: anthropic.Anthropic) -> None:
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    m = client.messages.create(model=SMOLLM2, max_tokens=60, messages=ask, tools=[TOOL],
                               tool_choice={"type": "tool", "name": "get_weather"}, extra_body={"temperature": 0})
    uses = [b for b in m.content if b.type == "tool_use"]
    assert m.stop_reason == "tool_use" and len(uses) >= 1
    assert uses[0].name == "get_weather" and isinstance(uses[0].input.get("city"), str)
    answer = client.messages.create(model=SMOLLM2, max_tokens=20, tools=[TOOL], messages=[
        *ask, {"role": "assistant", "content": [b.model_dump() for b in m.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id,
                                      "content": "Sunny, 24 C"}]}])
    assert answer.content and answer.stop_reason in ("end_turn", "max_tokens", "tool_use")
    events = list(client.messages.create(model=SMOLLM2, max_tokens=60, messages=ask, tools=[TOOL],
                                         tool_choice={"type": "any"}, stream=True, extra_body={"temperature": 0}))
    starts = [e.content_block for e in events if e.type == "content_block_start"]
    assert starts[-1].type == "tool_use" and starts[-1].name == "get_weather"
    partial = "".join(e.delta.partial_json for e in events
                      if e.type == "content_block_delta" and e.delta.type == "input_json_delta")
    assert isinstance(json.loads(partial)["city"], str)
    assert [e for e in events if e.type == "message_delta"][0].delta.stop_reason == "tool_use"


def test_thinking_blocks_from_a_template_with_reasoning(client: anthropic.Anthropic) -> None:
    reply = "<think>\nTwo cities.\n</think>\n\nParis is sunny."
    extra = {"grammar": "root ::= " + json.dumps(reply)}
    m = client.messages.create(model=QWEN3_SMOL, max_tokens=60, messages=HELLO, extra_body=extra,
                               thinking={"type": "enabled", "budget_tokens": 1024})
    assert [b.type for b in m.content] == ["thinking", "text"]
    assert m.content[0].thinking.strip() == "Two cities." and m.content[1].text.strip() == "Paris is sunny."
    with client.messages.stream(model=QWEN3_SMOL, max_tokens=60, messages=HELLO, extra_body=extra,
                                thinking={"type": "enabled", "budget_tokens": 1024}) as s:
        final = s.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking.strip() == "Two cities."


def test_localdocs_references(server: str) -> None:
    r = httpx.post(server + "/v1/messages", headers=_auth(), timeout=120, json={
        "model": SMOLLM2, "max_tokens": 8, "messages": [{"role": "user", "content": "When did Krakatoa erupt?"}],
        "localdocs": {"collections": ["notes"], "k": 1}})
    assert r.status_code == 200, r.text
    assert r.json()["references"][0]["path"].endswith("volcano.md")


BAD = [  # (body, status, Anthropic error type)
    ({"model": SMOLLM2, "messages": HELLO}, 400, "invalid_request_error"),  # no max_tokens
    ({"model": SMOLLM2, "max_tokens": 5, "messages": HELLO, "temperature": 1.5}, 400, "invalid_request_error"),
    ({"model": SMOLLM2, "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}]}]},
     400, "invalid_request_error"),
    ({"model": SMOLLM2, "max_tokens": 5, "messages": HELLO, "tools": [TOOL],
      "tool_choice": {"type": "tool", "name": "other"}}, 400, "invalid_request_error"),
    ({"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": HELLO}, 404, "not_found_error"),
    ({"model": SMOLLM2, "max_tokens": 10**9, "messages": HELLO}, 400, "invalid_request_error"),
]


@pytest.mark.parametrize("body,status,kind", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_requests_get_anthropic_errors(server: str, body: dict[str, Any], status: int, kind: str) -> None:
    r = httpx.post(server + "/v1/messages", json=body, headers=_auth(), timeout=60)
    assert r.status_code == status, r.text
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == kind


def test_errors_map_to_the_anthropic_client_classes(server: str) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=server, api_key="wrong", max_retries=0).messages.create(
            model=SMOLLM2, max_tokens=5, messages=HELLO)
    with pytest.raises(anthropic.NotFoundError):
        anthropic.Anthropic(base_url=server, api_key=KEY, max_retries=0).messages.create(
            model="missing", max_tokens=5, messages=HELLO)
    with pytest.raises(anthropic.BadRequestError):
        anthropic.Anthropic(base_url=server, api_key=KEY, max_retries=0).messages.count_tokens(
            model=SMOLLM2, messages=[])
    bearer = httpx.post(server + "/v1/messages/count_tokens", headers={"Authorization": f"Bearer {KEY}"},
                        json={"model": SMOLLM2, "messages": HELLO})
    assert bearer.status_code == 200 and bearer.json()["input_tokens"] > 0


def test_a_last_assistant_message_is_continued(client: anthropic.Anthropic, smol: GPT4All) -> None:
    # Anthropic's prefill: the reply goes on from the assistant's text, in the same turn
    messages = [{"role": "user", "content": "Name three primary colours."},
                {"role": "assistant", "content": "The three primary colours are red,"}]
    counted = client.messages.count_tokens(model=SMOLLM2, messages=messages).input_tokens
    engine = smol.engine.chat_prompt_tokens(messages, continue_final_message=True)
    assert counted == len(engine) < len(smol.engine.chat_prompt_tokens(messages))
    greedy = {"extra_body": {"temperature": 0}}  # (this SDK release dropped the argument)
    reply = client.messages.create(model=SMOLLM2, max_tokens=8, messages=messages, **greedy)
    assert reply.usage.input_tokens == counted and reply.content[0].type == "text"
    events = list(client.messages.create(model=SMOLLM2, max_tokens=8, messages=messages, **greedy,
                                         stream=True))
    # (not compared with the reply's text: the second call reuses the cached prompt and
    # evaluates its last token alone, which may break a greedy near-tie the other way)
    streamed = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert streamed and events[0].message.usage.input_tokens == counted
    assert events[-1].type == "message_stop"
    with pytest.raises(anthropic.BadRequestError, match="forced from its start"):
        client.messages.create(model=SMOLLM2, max_tokens=8, messages=messages, tools=[TOOL],
                               tool_choice={"type": "any"})


def test_token_counts_are_the_engines(server: str, client: anthropic.Anthropic, smol: GPT4All) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *HELLO]
    tools = [{"type": "function", "function": {"name": TOOL["name"], "description": TOOL["description"],
                                               "parameters": TOOL["input_schema"]}}]
    engine = smol.chat_prompt_tokens(messages, tools=tools)
    r = httpx.post(server + "/tokenize", headers=_auth(), json={"model": SMOLLM2, "messages": messages,
                                                                 "tools": tools})
    assert r.json()["tokens"] == engine
    counted = client.messages.count_tokens(model=SMOLLM2, system="Be brief.", messages=HELLO, tools=[TOOL])
    assert counted.input_tokens == len(engine)
    usage = httpx.post(server + "/v1/chat/completions", headers=_auth(), timeout=120, json={
        "model": SMOLLM2, "messages": messages, "tools": tools, "max_tokens": 1}).json()["usage"]
    assert usage["prompt_tokens"] == len(engine)
    text = httpx.post(server + "/tokenize", headers=_auth(), json={"content": "Hello volcano",
                                                                   "with_pieces": True}).json()
    assert [t["id"] for t in text["tokens"]] == smol.model.tokenize("Hello volcano")
    assert "".join(t["piece"] for t in text["tokens"]) == "Hello volcano"
    back = httpx.post(server + "/detokenize", headers=_auth(),
                      json={"tokens": [t["id"] for t in text["tokens"]]}).json()
    assert back == {"content": "Hello volcano"}
    bad = httpx.post(server + "/detokenize", headers=_auth(), json={"tokens": [2**31 - 1]})
    assert bad.status_code == 400 and "vocabulary" in bad.json()["error"]["message"]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_what_was_sent(models: Path) -> None:
    with running_openai_server(models, "--model", SMOLLM2, "--persist-dir", str(models / "db"),
                               env={"GPT4ALL_RAG_API_KEY": KEY}) as url:
        h = {"Authorization": f"Bearer {KEY}"}
        assert httpx.get(url + "/metrics").status_code == 401  # behind the key
        prompt = generated = 0
        for stream in (False, False, True):
            r = httpx.post(url + "/v1/chat/completions", headers=h, timeout=120, json={
                "model": SMOLLM2, "messages": HELLO, "max_tokens": 3, "stream": stream,
                "stream_options": {"include_usage": True}})
            assert r.status_code == 200
            usage = (json.loads([line for line in r.text.splitlines() if '"usage": {' in line][-1][6:])
                     if stream else r.json())["usage"]
            prompt += usage["prompt_tokens"]
            generated += usage["completion_tokens"]
        m = httpx.post(url + "/v1/messages", headers=h, timeout=120,
                       json={"model": SMOLLM2, "max_tokens": 3, "messages": HELLO}).json()
        prompt += m["usage"]["input_tokens"]
        generated += m["usage"]["output_tokens"]
        assert httpx.post(url + "/v1/collections/notes/search", headers=h,
                          json={"query": "volcano"}).status_code == 200
        assert httpx.post(url + "/v1/chat/completions", headers=h,
                          json={"model": "missing", "messages": HELLO}).status_code == 404
        text = httpx.get(url + "/metrics", headers=h).text
    samples = _samples(text)

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("gpt4all_rag_requests_total", endpoint="/v1/chat/completions", status="200") == 3
    assert value("gpt4all_rag_requests_total", endpoint="/v1/chat/completions", status="404") == 1
    assert value("gpt4all_rag_requests_total", endpoint="/v1/messages", status="200") == 1
    assert value("gpt4all_rag_requests_total", endpoint="/metrics", status="401") == 1
    assert value("gpt4all_rag_request_duration_seconds_count", endpoint="/v1/chat/completions") == 4
    assert value("gpt4all_rag_prompt_tokens_total", model=SMOLLM2) == prompt
    assert value("gpt4all_rag_generated_tokens_total", model=SMOLLM2) == generated
    assert value("gpt4all_rag_time_to_first_token_seconds_count", model=SMOLLM2) == 4
    assert value("gpt4all_rag_localdocs_search_duration_seconds_count") == 1
    assert value("gpt4all_rag_loaded_models", model=SMOLLM2, kind="chat") == 1
    assert value("gpt4all_rag_requests_running", model=SMOLLM2) == 0
    assert value("gpt4all_rag_requests_waiting", model=SMOLLM2) == 0


@pytest.mark.parametrize("path,body,status", [
    ("/tokenize", {}, 400), ("/tokenize", {"content": 5}, 400), ("/tokenize", {"messages": []}, 400),
    ("/tokenize", {"content": "x", "model": "missing"}, 404), ("/detokenize", {"tokens": [-1]}, 400),
    ("/detokenize", {"tokens": "x"}, 400), ("/detokenize", {"tokens": [2**40]}, 400),
])
def test_bad_token_requests_are_4xx(server: str, path: str, body: dict[str, Any], status: int) -> None:
    r = httpx.post(server + path, json=body, headers=_auth(), timeout=60)
    assert r.status_code == status, r.text
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
