"""Hostile and careless HTTP against a real ``gpt4all-rag serve``: each test is a finding of the
hostile-input review (DNS rebinding, cut emoji, over-long names, slow clients, limits that did
not apply, an API description that said something else) and failed before it was fixed."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from tests.conftest import MINILM, SMOLLM2

from .conftest import API_KEY
from .openai_server import running_openai_server

KEY = API_KEY
READ_TIMEOUT_S = 2
MAX_CONNECTIONS = 24
CHAT = {"messages": [{"role": "user", "content": "Tell me a very long story about a dragon."}]}


@pytest.fixture(scope="module")
def server(models: Path) -> Iterator[str]:
    with running_openai_server(models, "--model", SMOLLM2, "--persist-dir", str(models / "db"),
                               "--max-tokens-limit", "64", "--read-timeout", str(READ_TIMEOUT_S),
                               "--max-connections", str(MAX_CONNECTIONS),
                               "--allowed-host", "notes.lan") as url:
        yield url


@pytest.fixture(scope="module")
def keyed(api_server: str) -> str:
    return api_server


def _port(url: str) -> int:
    port = urlparse(url).port
    assert port is not None
    return port


def _error(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == code, err
    return err


# -- 1. Host: DNS rebinding ------------------------------------------------------------------
def test_a_rebound_host_name_reads_nothing(server: str) -> None:
    port = _port(server)
    search = {"query": "volcano"}
    r = httpx.post(server + "/v1/collections/notes/search", json=search,
                   headers={"Host": f"rebind.attacker.example:{port}"})
    err = _error(r, 400, "invalid_host")
    assert "rebind.attacker.example" in str(err["message"]) and "volcano" not in r.text
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "notes.lan", "LOCALHOST."):
        ok = httpx.post(server + "/v1/collections/notes/search", json=search, headers={"Host": host})
        assert ok.status_code == 200 and "volcano" in ok.text, (host, ok.text)
    assert httpx.get(server + "/health", headers={"Host": "rebind.attacker.example"}).status_code == 400


def test_with_a_key_every_host_is_served_and_the_key_is_checked_before_the_body(keyed: str) -> None:
    foreign = {"Host": "my-laptop.example"}
    assert httpx.get(keyed + "/v1/models", headers=foreign).status_code == 401
    ok = httpx.get(keyed + "/v1/models", headers={**foreign, "Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200
    broken = httpx.post(keyed + "/v1/chat/completions", content=b'{"messages": [',
                        headers={"Content-Type": "application/json"})
    _error(broken, 401, "invalid_api_key")  # not the parser's 400: nothing is parsed unauthorised
    assert httpx.get(keyed + "/health").status_code == 200
    assert httpx.get(keyed + "/openapi.json").status_code == 200


# -- 2. Text: lone surrogates ----------------------------------------------------------------
CUT = '"cut emoji \\ud83d"'  # what a JavaScript client sends when it cuts an emoji in half


@pytest.mark.parametrize("path,body", [
    ("/v1/chat/completions", '{"messages": [{"role": "user", "content": %s}], "max_tokens": 2}' % CUT),
    ("/v1/chat/completions", '{"messages": [{"role": "user", "content": %s}], "max_tokens": 2, "stream": true}' % CUT),
    ("/v1/completions", '{"prompt": %s, "max_tokens": 2}' % CUT),
    ("/v1/embeddings", '{"input": [%s, "whole"]}' % CUT),
    ("/v1/collections/notes/search", '{"query": %s}' % CUT),
])
def test_a_cut_emoji_is_replaced_and_the_connection_lives(server: str, path: str, body: str) -> None:
    with httpx.Client(base_url=server, timeout=60) as client:
        r = client.post(path, content=body.encode(), headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        assert client.get("/v1/models").status_code == 200  # the same keep-alive connection
    if path == "/v1/embeddings":  # U+FFFD is what the model embedded
        same = httpx.post(server + path, json={"input": ["cut emoji \ufffd", "whole"]}).json()
        assert np_close(r.json()["data"][0]["embedding"], same["data"][0]["embedding"])


def np_close(a: list[float], b: list[float]) -> bool:
    return max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5


# -- 3. Bounded everything -------------------------------------------------------------------
@pytest.mark.parametrize("length", [251, 252, 255, 300])
def test_an_over_long_model_name_is_a_400(server: str, length: int) -> None:
    for path, body in [("/v1/chat/completions", {**CHAT, "max_tokens": 1}),
                       ("/v1/embeddings", {"input": "x"})]:
        r = httpx.post(server + path, json={**body, "model": "m" * length})
        _error(r, 400, "invalid_request" if path == "/v1/embeddings" else "invalid_request")


def test_the_longest_allowed_model_name_is_simply_not_found(server: str) -> None:
    r = httpx.post(server + "/v1/chat/completions", json={**CHAT, "model": "m" * 250})
    _error(r, 404, "model_not_found")


def _slow_client(url: str, data: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", _port(url)))
    if data:
        s.sendall(data)
    return s


def _closed_within(s: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed the connection within ``seconds``, and what it sent."""
    s.settimeout(seconds)
    received = b""
    try:
        while chunk := s.recv(4096):
            received += chunk
        return True, received
    except (socket.timeout, TimeoutError):
        return False, received
    except ConnectionResetError:
        return True, received
    finally:
        s.close()


def test_slow_clients_are_disconnected(server: str) -> None:
    host = f"Host: 127.0.0.1:{_port(server)}\r\n".encode()
    silent = _slow_client(server, b"")
    partial_head = _slow_client(server, b"POST /v1/chat/completions HTTP/1.1\r\n" + host + b"Content-Ty")
    partial_body = _slow_client(server, b"POST /v1/chat/completions HTTP/1.1\r\n" + host +
                                b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"messa")
    # the server still answers others meanwhile
    assert httpx.get(server + "/health", timeout=5).status_code == 200
    start = time.monotonic()
    for s, answers in ((silent, True), (partial_head, True), (partial_body, False)):
        closed, received = _closed_within(s, READ_TIMEOUT_S + 5 - (time.monotonic() - start))
        assert closed, "a slow client's connection is still open"
        if answers:
            assert received.startswith(b"HTTP/1.1 408"), received[:200]
            assert json.loads(received.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"
    assert time.monotonic() - start < READ_TIMEOUT_S + 5


def test_connections_past_the_limit_get_503(server: str) -> None:
    idle = [_slow_client(server, b"") for _ in range(MAX_CONNECTIONS)]
    try:
        assert httpx.get(server + "/health", timeout=5).status_code == 503
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + 10
    while httpx.get(server + "/health", timeout=5).status_code != 200:  # freed at once
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_the_max_tokens_limit_bounds_the_default_too(server: str) -> None:
    chat = httpx.post(server + "/v1/chat/completions", json={**CHAT, "temperature": 0.8, "seed": 3},
                      timeout=120).json()
    assert chat["usage"]["completion_tokens"] <= 64
    completion = httpx.post(server + "/v1/completions", json={"prompt": "Once upon a time"}, timeout=120)
    assert completion.status_code == 200 and completion.json()["usage"]["completion_tokens"] <= 64
    err = _error(httpx.post(server + "/v1/completions", json={"prompt": "Hi", "max_tokens": 100}),
                 400, "invalid_request")
    assert "100" in str(err["message"]) and "200" not in str(err["message"])


def test_a_chunked_body_over_the_limit_is_413(server: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"input": "'
        for _ in range(5 * 1024):
            yield b"x" * 1024
        yield b'"}'

    r = httpx.post(server + "/v1/embeddings", content=chunks(), timeout=60,
                   headers={"Content-Type": "application/json"})
    _error(r, 413, "request_too_large")


# -- 4. An honest API description ------------------------------------------------------------
def test_the_api_description_says_400_and_every_error(server: str) -> None:
    spec = httpx.get(server + "/openapi.json").json()
    assert "422" not in json.dumps(spec["paths"])
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            assert "400" in op["responses"], (method, path)
            if path != "/health":
                assert "401" in op["responses"], (method, path)
            shape = "AnthropicErrorResponse" if path.startswith("/v1/messages") else "ErrorResponse"
            for status, response in op["responses"].items():
                if status != "200":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": f"#/components/schemas/{shape}"}, (path, status)
    chat = spec["components"]["schemas"]["ChatCompletionRequest"]["properties"]["max_tokens"]
    assert {"type": "integer", "minimum": 0, "maximum": 64} in chat["anyOf"]


def test_405_says_what_is_allowed(server: str) -> None:
    r = httpx.delete(server + "/v1/models")
    _error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET"


@pytest.mark.parametrize("bias,text", [({"abc": "zzz"}, "logit_bias"), ({"abc": 5}, "token ids"),
                                       ({"50256": 5}, "not supported")])
def test_logit_bias_is_refused_not_ignored(server: str, bias: dict[str, object], text: str) -> None:
    r = httpx.post(server + "/v1/chat/completions", json={**CHAT, "logit_bias": bias})
    err = _error(r, 400, "invalid_request")
    assert text in str(err["message"]) and str(err["param"]).startswith("logit_bias"), err
    assert httpx.post(server + "/v1/chat/completions",
                      json={**CHAT, "logit_bias": {}, "max_tokens": 1}).status_code == 200


def test_embedding_errors_speak_http(server: str) -> None:
    big = httpx.post(server + "/v1/embeddings", json={"input": [2**64]})
    err = _error(big, 400, "invalid_request")
    assert "empty" not in str(err["message"])
    outside = _error(httpx.post(server + "/v1/embeddings", json={"input": [[2**31 - 1]]}),
                     400, "invalid_parameter")
    assert "vocabulary" in str(outside["message"])
    dims = _error(httpx.post(server + "/v1/embeddings", json={"input": "x", "dimensions": 128,
                                                                 "model": MINILM}), 400, "invalid_request")
    assert "None" not in str(dims["message"]) and dims["param"] == "dimensions"
    _error(httpx.post(server + "/v1/chat/completions", json={**CHAT, "temperature": -1}), 400, "invalid_request")
