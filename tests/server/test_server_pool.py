"""The server's model pool under a mix of requests: three models, two loaded at most (the
default), requests that name each other's models, and a refused request that must change
nothing. A real ``gpt4all-rag serve`` on 127.0.0.1, real HTTP clients."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import GEMMA3, MINILM, SMOLLM2

from .openai_server import running_openai_server


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[str]:
    # The defaults: --max-loaded-models 2, --parallel 4.
    with running_openai_server(model_dir, "--model", SMOLLM2) as url:
        yield url


def _chat(url: str, model: str = SMOLLM2) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", timeout=180, json={
        "model": model, "messages": [{"role": "user", "content": "Say hi."}],
        "max_tokens": 8, "temperature": 0})


def _embed(url: str, model: str | None = None, n: int = 64) -> httpx.Response:
    body: dict = {"input": [f"text {i} about bread and trains" for i in range(n)]}
    if model is not None:
        body["model"] = model
    return httpx.post(url + "/v1/embeddings", json=body, timeout=180)


def _complete(url: str) -> httpx.Response:
    return httpx.post(url + "/v1/completions", timeout=180, json={
        "model": GEMMA3, "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0})


def test_three_models_at_the_default_limit_all_answer(server: str) -> None:
    """Was a segmentation fault of the server: a load evicted and freed a model another request
    was using. Now only a model no request holds is evicted; the others wait for one."""
    calls = [_chat, _embed, _complete] * 3
    with ThreadPoolExecutor(len(calls)) as pool:
        responses = list(pool.map(lambda call: call(server), calls))
    assert [r.status_code for r in responses] == [200] * len(calls), [r.text[:200] for r in responses]
    assert all(len(r.json()["data"]) == 64 for r in responses[1::3])
    assert httpx.get(server + "/health", timeout=5).status_code == 200


def test_a_refused_request_changes_nothing_cached(server: str) -> None:
    """Was: a chat request naming the embedding model cached it as a chat model, and every
    later /v1/embeddings call got 400 until a restart."""
    refused = _chat(server, MINILM)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "not_a_chat_model"
    assert _embed(server, n=4).status_code == 200
    assert _embed(server, MINILM, n=4).status_code == 200
    refused = _embed(server, SMOLLM2, n=4)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "not_an_embedding_model"
    assert _chat(server).status_code == 200
    assert _chat(server, MINILM).status_code == 400
    assert _embed(server, n=4).status_code == 200
