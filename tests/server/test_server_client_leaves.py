"""Work stops when its client leaves, and searches go through admission like the rest.

A real ``gpt4all-rag serve`` on 127.0.0.1 with one seat per model (``--parallel 1``) and a
short queue: abandoned requests that kept running or waiting would hold the seat and the
queue, so the request that follows them would get 503 (``queue_full`` at once, or
``queue_timeout``) instead of its answer. The work to abandon is long by construction (a
grammar that forces thousands of tokens; thousands of texts to embed), far beyond the
queue timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MINILM, SMOLLM2

from .openai_server import running_openai_server

QUEUE_TIMEOUT_S = "6"
# At least 1500 integers: a few thousand tokens, more than max_tokens lets through.
LONG_CHAT = {"model": SMOLLM2, "messages": [{"role": "user", "content": "List numbers."}],
             "max_tokens": 2000, "temperature": 0,
             "response_format": {"type": "json_schema", "json_schema": {"name": "numbers", "schema": {
                 "type": "array", "items": {"type": "integer"}, "minItems": 1500}}}}
SHORT_CHAT = {"model": SMOLLM2, "messages": [{"role": "user", "content": "Say hi."}],
              "max_tokens": 4, "temperature": 0}
# The most items a request may hold, about 100 tokens each.
MANY_TEXTS = {"model": MINILM, "input": [
    f"passage {i}: the quick brown fox jumps over the lazy dog near the river bank, then runs "
    f"across the meadow to the old stone bridge and back again; the miller watches from the "
    f"window of the mill while the water wheel turns slowly in the autumn light, and the "
    f"children count the geese flying south over the hills {i}" for i in range(2048)]}


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[str]:
    with running_openai_server(model_dir, "--model", SMOLLM2, "--parallel", "1",
                               "--max-queue", "2", "--queue-timeout", QUEUE_TIMEOUT_S) as url:
        yield url


async def _abandon(url: str, path: str, body: dict[str, Any], after_s: float) -> None:
    """Send a request and leave (close the connection) after ``after_s`` seconds, whether it
    is still queued, running, or streaming (a stream is read until then)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + after_s
    async with httpx.AsyncClient(base_url=url) as client:
        try:
            if body.get("stream"):
                async with client.stream("POST", path, json=body, timeout=after_s) as r:
                    assert r.status_code == 200
                    async for _ in r.aiter_lines():
                        if loop.time() > deadline:
                            return  # leaves mid-stream
                raise AssertionError("the stream ended before its client left")
            r = await client.post(path, json=body, timeout=after_s)
            raise AssertionError(f"the request ended before its client left: {r.status_code} {r.text[:300]}")
        except httpx.ReadTimeout:
            pass


async def _leave_then_ask(url: str, path: str, bodies: list[dict[str, Any]],
                          follow: dict[str, Any]) -> httpx.Response:
    await asyncio.gather(*(_abandon(url, path, b, 1.5 + 0.1 * i) for i, b in enumerate(bodies)))
    async with httpx.AsyncClient(base_url=url) as client:
        return await client.post(path, json=follow, timeout=60)


def test_abandoned_chats_stop_running_and_leave_the_queue(server: str) -> None:
    """Was: 8 abandoned non-streaming chats all still ran, queued ones too. Here one runs and
    two wait (one of them streamed) when their clients leave; the next request is answered."""
    bodies = [LONG_CHAT, {**LONG_CHAT, "stream": True}, LONG_CHAT]
    answer = asyncio.run(_leave_then_ask(server, "/v1/chat/completions", bodies, SHORT_CHAT))
    assert answer.status_code == 200, answer.text
    assert httpx.get(server + "/health", timeout=5).status_code == 200


def test_an_abandoned_completion_stops(server: str) -> None:
    body = {"model": SMOLLM2, "prompt": "[1, 2, 3,", "max_tokens": 2000, "temperature": 0,
            "grammar": 'root ::= "1, " root'}  # never complete: runs to max_tokens
    follow = {"model": SMOLLM2, "prompt": "Hello", "max_tokens": 4, "temperature": 0}
    answer = asyncio.run(_leave_then_ask(server, "/v1/completions", [body, body], follow))
    assert answer.status_code == 200, answer.text


def test_an_abandoned_embedding_request_stops_within_a_batch(server: str) -> None:
    """Was: an embeddings request ran ~9 s after its client left."""
    answer = asyncio.run(_leave_then_ask(server, "/v1/embeddings", [MANY_TEXTS, MANY_TEXTS],
                                         {"model": MINILM, "input": "one text"}))
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["data"][0]["embedding"]) == 384
