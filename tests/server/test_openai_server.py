"""The OpenAI-compatible server, driven by real clients nobody here wrote: the ``openai``
package, langchain-openai and LlamaIndex's OpenAILike, over HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from gpt4all_rag.localdocs import LocalDocs
from tests.conftest import GEMMA3, MINILM, SMOLLM2

from .openai_server import running_openai_server

KEY = "test-key-123"
GREEDY = dict(temperature=0, max_tokens=12)
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


@pytest.fixture(scope="module")
def docs_db(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """An embedded LocalDocs database with one small collection, indexed before the server starts."""
    root = tmp_path_factory.mktemp("server-docs")
    (root / "docs").mkdir()
    (root / "docs" / "bread.md").write_text(
        "# Sourdough\n\nA sourdough starter is flour and water fermented by wild yeast. Feed it "
        "every day and keep it at room temperature.\n")
    (root / "docs" / "trains.md").write_text(
        "# Railways\n\nThe first public steam railway opened in 1825 between Stockton and "
        "Darlington.\n")
    with LocalDocs("kitchen", persist_directory=root / "db", model_path=model_dir) as ld:
        ld.index(root / "docs", progress=False)
    return root / "db"


@pytest.fixture(scope="module")
def server(model_dir: Path, docs_db: Path) -> Iterator[str]:
    with running_openai_server(model_dir, "--model", SMOLLM2, "--persist-dir", str(docs_db),
                               # One request at a time, one waiting: the queue tests below
                               # fill it with two requests (parallel serving is tested in
                               # tests/models/test_parallel.py).
                               "--parallel", "1", "--max-queue", "1", "--queue-timeout", "30",
                               "--max-tokens-limit", "512", env={"GPT4ALL_RAG_API_KEY": KEY}) as url:
        yield url


@pytest.fixture()
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0, timeout=120)


def test_models_and_health(client: openai.OpenAI, server: str) -> None:
    ids = [m.id for m in client.models.list()]
    assert SMOLLM2 in ids and MINILM in ids and GEMMA3 in ids
    assert client.models.retrieve(SMOLLM2).id == SMOLLM2  # GET /v1/models/{model}
    assert client.models.retrieve(SMOLLM2.removesuffix(".gguf")).id == SMOLLM2.removesuffix(".gguf")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("missing.gguf")
    with pytest.raises(openai.BadRequestError):
        client.models.retrieve("..hidden")
    assert httpx.get(server + "/health").json() == {"status": "ok"}  # no key needed
    assert httpx.head(server + "/health").status_code == 200  # load balancers' probes


def test_chat_completion_sync_and_streaming(client: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Name a colour."}]
    r = client.chat.completions.create(model=SMOLLM2, messages=messages, **GREEDY)
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content and r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    stream = client.chat.completions.create(model=SMOLLM2, messages=messages, stream=True,
                                            stream_options={"include_usage": True}, **GREEDY)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == r.choices[0].message.content  # the same prompt again: the same greedy reply
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == r.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == r.usage.prompt_tokens


def test_async_client(server: str) -> None:
    async def run() -> str:
        async with openai.AsyncOpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0) as c:
            r = await c.chat.completions.create(model=SMOLLM2, messages=[
                {"role": "user", "content": "Hi"}], **GREEDY)
            return r.choices[0].message.content or ""

    assert asyncio.run(run())


def test_tools_and_json_schema(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=SMOLLM2, tools=TOOLS, tool_choice="required",
                                       messages=[{"role": "user", "content": "Weather in Paris?"}],
                                       temperature=0, max_tokens=40)
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert set(json.loads(call.function.arguments)) == {"city"}
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    r = client.chat.completions.create(
        model=SMOLLM2, messages=[{"role": "user", "content": "John is 31."}], temperature=0,
        max_tokens=40, response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}})
    assert set(json.loads(r.choices[0].message.content)) == {"name", "age"}


def test_logprobs_and_plain_completions(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=SMOLLM2, messages=[{"role": "user", "content": "Hi"}],
                                       logprobs=True, top_logprobs=2, temperature=0, max_tokens=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens and all(len(t.top_logprobs) == 2 for t in content)
    t = client.completions.create(model=GEMMA3, prompt="Once upon a time", max_tokens=6,
                                  temperature=0, logprobs=2)
    assert t.object == "text_completion" and t.choices[0].text
    assert len(t.choices[0].logprobs.tokens) == t.usage.completion_tokens
    pieces = list(client.completions.create(model=GEMMA3, prompt="Once upon a time", max_tokens=6,
                                            temperature=0, stream=True))
    assert "".join(p.choices[0].text for p in pieces) == t.choices[0].text


def test_embeddings(client: openai.OpenAI) -> None:
    e = client.embeddings.create(model=MINILM, input=["hello world", "bonjour"])
    assert [d.index for d in e.data] == [0, 1] and len(e.data[0].embedding) == 384
    assert abs(np.linalg.norm(e.data[0].embedding) - 1) < 1e-3 and e.usage.prompt_tokens > 0
    one = client.embeddings.create(model=MINILM, input="hello world")
    assert np.allclose(one.data[0].embedding, e.data[0].embedding, atol=1e-4)
    raw = httpx.post(str(client.base_url) + "embeddings", headers={"Authorization": f"Bearer {KEY}"},
                     json={"model": MINILM, "input": "hello world", "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, e.data[0].embedding, atol=1e-6)
    tokens = client.embeddings.create(model=MINILM, input=[[7592, 2088]])  # "hello world" in MiniLM's vocab
    assert len(tokens.data[0].embedding) == 384


def test_localdocs_through_the_api(client: openai.OpenAI, server: str) -> None:
    question = "How often should I feed a sourdough starter?"
    r = client.chat.completions.create(model=SMOLLM2, messages=[{"role": "user", "content": question}],
                                       extra_body={"localdocs": {"collections": ["kitchen"], "k": 1}},
                                       **GREEDY)
    refs = r.model_extra["references"]
    assert len(refs) == 1 and refs[0]["path"].endswith("bread.md") and "starter" in refs[0]["text"]
    assert r.usage.prompt_tokens > 40  # the excerpt is in the prompt
    stream = client.chat.completions.create(model=SMOLLM2, messages=[{"role": "user", "content": question}],
                                            extra_body={"localdocs": {"collections": ["kitchen"], "k": 1}},
                                            stream=True, **GREEDY)
    last = list(stream)[-1]
    assert last.choices == [] and last.model_extra["references"][0]["path"].endswith("bread.md")
    headers = {"Authorization": f"Bearer {KEY}"}
    listed = httpx.get(server + "/v1/collections", headers=headers).json()["data"]
    assert [c["id"] for c in listed] == ["kitchen"] and listed[0]["documents"] == 2
    hits = httpx.post(server + "/v1/collections/kitchen/search", headers=headers,
                      json={"query": "steam railway", "k": 1}).json()["data"]
    assert hits[0]["path"].endswith("trains.md")


def test_langchain_openai_and_llamaindex_openailike(server: str) -> None:
    from langchain_openai import ChatOpenAI, OpenAIEmbeddings
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai_like import OpenAILike

    chat = ChatOpenAI(model=SMOLLM2, base_url=server + "/v1", api_key=KEY, temperature=0, max_tokens=8)
    assert chat.invoke("Hi").content
    assert "".join(c.content for c in chat.stream("Hi"))
    emb = OpenAIEmbeddings(model=MINILM, base_url=server + "/v1", api_key=KEY,
                           check_embedding_ctx_length=False)
    assert len(emb.embed_query("hello")) == 384
    li = OpenAILike(model=SMOLLM2, api_base=server + "/v1", api_key=KEY, is_chat_model=True,
                    max_tokens=8, temperature=0)
    assert li.chat([ChatMessage(role="user", content="Hi")]).message.content


BAD = [  # (body, status, what the message must say)
    ({"messages": [{"role": "user", "content": "Hi"}], "model": "../etc/passwd"}, 400, "invalid model name"),
    ({"messages": [{"role": "user", "content": "Hi"}], "model": "missing.gguf"}, 404, "does not exist"),
    ({"messages": [{"role": "user", "content": "Hi"}], "model": MINILM}, 400, "embedding model"),
    ({"messages": []}, 400, "messages"),
    ({"messages": [{"role": "user", "content": "Hi"}], "temperature": -1}, 400, "temperature"),
    ({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 100000}, 400, "at most 512"),
    ({"messages": [{"role": "user", "content": "Hi"}], "n": 2}, 400, "n must be 1"),
    ({"messages": [{"role": "user", "content": "Hi"}], "frequency_penalty": 1}, 400, "not supported"),
    ({"messages": [{"role": "user", "content": "Hi"}], "tools": [{"type": "function"}]}, 400, "tools"),
    ({"messages": [{"role": "user", "content": "Hi"}], "response_format": {"type": "xml"}}, 400, "response_format"),
    ({"messages": [{"role": "user", "content": "word " * 3000}]}, 400, "context"),
    ({"messages": [{"role": "user", "content": "Hi"}], "localdocs": {"collections": ["nope-x"]}}, 404, "nope-x"),
    ({"messages": [{"role": "user", "content": "Hi"}], "localdocs": {"collections": ["../x"]}}, 400, "collection"),
    ({"messages": [{"role": "user", "content": "Hi"}], "grammar": "root ::= ("}, 400, ""),
    ({"messages": "Hi"}, 400, "messages"),
    ({"messages": ["Hi"]}, 400, "messages"),
    ({"messages": [{"role": "user", "content": 42}]}, 400, "content"),
    ({"messages": [{"role": "user", "content": "Hi"}], "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ({"messages": [{"role": "user", "content": "Hi"}], "logprobs": True, "top_logprobs": 50}, 400, "top_logprobs"),
    # what OpenAI refuses is refused, not ignored
    ({"messages": [{"role": "user", "content": "Hi"}], "top_logprobs": 2}, 400, "needs logprobs: true"),
    ({"messages": [{"role": "user", "content": "Hi"}], "tool_choice": "required"}, 400, "needs at least one tool"),
]


@pytest.mark.parametrize("body,status,text", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_requests_get_openai_errors_never_500(server: str, body: dict, status: int, text: str) -> None:
    r = httpx.post(server + "/v1/chat/completions", json=body, timeout=120,
                   headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and text in err["message"]
    # param names the request's field, not pydantic's labels of union branches
    assert not any(label in str(err["param"]) for label in ("constrained-", "[", "Message", "str"))


@pytest.mark.parametrize("path,body,param", [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": ""}]}, "messages.0.content"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "stop": [""]}, "stop.0"),
    ("/v1/embeddings", {"input": ""}, "input"),
    ("/tokenize", {"prompt": "Hi"}, "content"),
    ("/v1/completions", {"prompt": "Hi", "best_of": 2}, "best_of"),
])
def test_error_params_name_the_field(server: str, path: str, body: dict, param: str) -> None:
    r = httpx.post(server + path, json=body, timeout=60, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param, r.text


def test_errors_map_to_the_openai_client_classes(server: str, client: openai.OpenAI) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server + "/v1", api_key="wrong", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="missing", messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=SMOLLM2, messages=[{"role": "wizard", "content": "Hi"}])
    r = httpx.post(server + "/v1/chat/completions", content=b"x" * (5 * 1024 * 1024),
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert httpx.get(server + "/v1/nothing", headers={"Authorization": f"Bearer {KEY}"}).status_code == 404
    broken = httpx.post(server + "/v1/chat/completions", content=b'{"messages": [',
                        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert broken.status_code == 400 and set(broken.json()["error"]) == {"message", "type", "param", "code"}
    bad_embed = httpx.post(server + "/v1/embeddings", headers={"Authorization": f"Bearer {KEY}"},
                           json={"model": MINILM, "input": ""})
    assert bad_embed.status_code == 400


def test_a_full_queue_is_503_never_a_hang(server: str, client: openai.OpenAI) -> None:
    # --parallel 1 --max-queue 1: one request generates, one waits, the third is refused at once.
    client.chat.completions.create(model=SMOLLM2, messages=[{"role": "user", "content": "Hi"}],
                                   max_tokens=1)  # waits its turn: nothing else is running now
    results: list[int] = []

    def long_request() -> None:
        r = httpx.post(server + "/v1/chat/completions", timeout=120, headers={"Authorization": f"Bearer {KEY}"},
                       json={"model": SMOLLM2, "messages": [{"role": "user", "content": "Tell a story."}],
                             "max_tokens": 200, "temperature": 0.7, "repeat_penalty": 1.0})
        results.append(r.status_code)

    threads = [threading.Thread(target=long_request) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.5)
    r = httpx.post(server + "/v1/chat/completions", timeout=120, headers={"Authorization": f"Bearer {KEY}"},
                   json={"model": SMOLLM2, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
    for t in threads:
        t.join()
    assert r.status_code == 503 and r.json()["error"]["code"] == "queue_full"
    assert results == [200, 200]
    # the openai client raises its class for a 503
    threads = [threading.Thread(target=long_request) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.5)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=SMOLLM2, messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    for t in threads:
        t.join()


def test_a_client_that_disconnects_frees_the_model(server: str) -> None:
    # --max-queue 1. A 400-token stream is abandoned after its first chunk. If its generation
    # went on (~5 s), B would wait behind it and C, third in line, would get 503; since the
    # disconnect stops it at the next token, B generates and C waits its turn instead.
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.stream("POST", server + "/v1/chat/completions", headers=headers, timeout=120,
                      json={"model": SMOLLM2, "stream": True, "max_tokens": 400, "temperature": 0.8,
                            "repeat_penalty": 1.0, "messages": [{"role": "user", "content": "Write a long story."}]}) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                break  # leave after the first chunk: the connection closes
    time.sleep(1.0)
    statuses: dict[str, int] = {}

    def post(name: str, max_tokens: int) -> None:
        statuses[name] = httpx.post(server + "/v1/chat/completions", headers=headers, timeout=120, json={
            "model": SMOLLM2, "max_tokens": max_tokens, "messages": [{"role": "user", "content": "Hi"}]}).status_code

    b = threading.Thread(target=post, args=("B", 60))
    b.start()
    time.sleep(0.3)
    post("C", 2)
    b.join()
    assert statuses == {"B": 200, "C": 200}
