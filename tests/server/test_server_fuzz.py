"""The server against generated requests: schemathesis from its own API description (every
default check, a bounded number of examples per operation), and hypothesis throwing arbitrary
Unicode (lone surrogates and NUL included) at every text field of every endpoint.

The schemathesis hooks (``schemathesis_hooks.py``) state what a JSON Schema cannot: rules that depend on the model
behind the server (its vocabulary, its embedding size) or relate two fields (``tool_choice``
names one of ``tools``). ``grammar`` is declared as the ``gbnf`` string format, and the test
tells schemathesis what such strings look like.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpt4all_rag.localdocs import LocalDocs
from tests.conftest import SMOLLM2

from .openai_server import running_openai_server

#: Examples per operation and phase (CI's bound; schemathesis' own default is 100).
EXAMPLES = 12
KEY = "fuzz-key"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[str]:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "docs").mkdir()
    (root / "docs" / "volcano.md").write_text("# Krakatoa\n\nThe volcano erupted in 1883.\n")
    with LocalDocs("notes", persist_directory=root / "db", model_path=model_dir) as ld:
        ld.index(root / "docs", progress=False)
    with running_openai_server(model_dir, "--model", SMOLLM2, "--persist-dir", str(root / "db"),
                               "--max-tokens-limit", "8", "--parallel", "2",
                               env={"GPT4ALL_RAG_FILES_DIR": str(root / "files")}) as url:
        yield url


@pytest.fixture(scope="module")
def keyed(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second server with an API key (its description then declares the bearer scheme)."""
    root = tmp_path_factory.mktemp("fuzz-keyed")
    with running_openai_server(model_dir, "--model", SMOLLM2, "--max-tokens-limit", "8",
                               "--persist-dir", str(root / "db"),
                               env={"GPT4ALL_RAG_API_KEY": KEY, "GPT4ALL_RAG_FILES_DIR": str(root / "files")}) as url:
        yield url


def test_schemathesis_default_checks(server: str, tmp_path: Path) -> None:
    """``schemathesis run`` with every default check, on every operation, in every phase
    (run in tmp_path: it keeps a cache folder where it runs)."""
    _schemathesis(server, tmp_path)


def test_schemathesis_with_an_api_key(keyed: str, tmp_path: Path) -> None:
    """The same with a key: its ``ignored_auth`` check sends requests without the key (and
    with a wrong one) and expects 401."""
    _schemathesis(keyed, tmp_path, "-H", f"Authorization: Bearer {KEY}")


def _operations(server: str) -> list[tuple[str, str]]:
    spec = httpx.get(server + "/openapi.json", headers={"Authorization": f"Bearer {KEY}"}).json()
    return [(method, path) for path, ops in spec["paths"].items() for method in ops]


def _schemathesis(server: str, cwd: Path, *args: str) -> None:
    exe = Path(sys.executable).with_name("schemathesis")
    run = subprocess.run([str(exe), "run", server + "/openapi.json", "--max-examples", str(EXAMPLES),
                          "--seed", "1", "--request-timeout", "60", "--no-color",
                          "--generation-database", "none", *args],
                         capture_output=True, text=True, timeout=1200, cwd=cwd,
                         env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.server.schemathesis_hooks",
                              "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert f"Tested: {len(_operations(server))}" in run.stdout  # every operation of the API


#: Any Unicode text: every category, lone surrogates and NUL included.
ANY_TEXT = st.text(st.characters(exclude_categories=[]), max_size=24)
TEXT_EXAMPLES = 40


def _chat(**fields: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1, **fields}


#: (path, body with the text put in one field) for every text field of every endpoint.
TEXT_FIELDS: list[tuple[str, Callable[[str], dict[str, object]]]] = [
    ("/v1/chat/completions", lambda t: _chat(messages=[{"role": "user", "content": t}])),
    ("/v1/chat/completions", lambda t: _chat(messages=[{"role": "system", "content": t},
                                                       {"role": "user", "content": [{"type": "text", "text": t}]}])),
    ("/v1/chat/completions", lambda t: _chat(messages=[{"role": "user", "content": t}], stream=True)),
    ("/v1/chat/completions", lambda t: _chat(stop=t)),
    ("/v1/chat/completions", lambda t: _chat(model=t)),
    ("/v1/chat/completions", lambda t: _chat(user=t, seed=1)),
    ("/v1/chat/completions", lambda t: _chat(grammar=t)),
    ("/v1/chat/completions", lambda t: _chat(tools=[{"type": "function", "function": {
        "name": t, "description": t, "parameters": {"type": "object", "properties": {t: {"type": "string"}}}}}])),
    ("/v1/chat/completions", lambda t: _chat(response_format={"type": "json_schema", "json_schema": {
        "name": t, "schema": {"type": "object", "properties": {t: {"type": "string", "enum": [t]}}}}})),
    ("/v1/chat/completions", lambda t: _chat(messages=[{"role": "user", "content": t or "?"}],
                                             localdocs={"collections": ["notes", t]})),
    ("/v1/chat/completions", lambda t: _chat(messages=[{"role": "user", "content": "Hi"},
                                                       {"role": "assistant", "content": None, "tool_calls": [
                                                           {"id": t, "type": "function",
                                                            "function": {"name": t, "arguments": t}}]},
                                                       {"role": "tool", "tool_call_id": t, "content": t}])),
    ("/v1/completions", lambda t: {"prompt": t, "max_tokens": 1}),
    ("/v1/completions", lambda t: {"prompt": [t], "max_tokens": 1, "stream": True}),
    ("/v1/completions", lambda t: {"prompt": "Hi", "max_tokens": 1, "stop": [t]}),
    ("/v1/embeddings", lambda t: {"input": t}),
    ("/v1/embeddings", lambda t: {"input": ["x", t], "input_type": "query", "model": t or None}),
    ("/v1/messages", lambda t: {"max_tokens": 1, "system": t,
                                "messages": [{"role": "user", "content": t or "?"}]}),
    ("/v1/messages", lambda t: {"max_tokens": 1, "stream": True, "stop_sequences": [t or "?"],
                                "messages": [{"role": "user", "content": [{"type": "text", "text": t}]}]}),
    ("/v1/messages/count_tokens", lambda t: {"messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": t, "name": t, "input": {t: t}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": t, "content": t}]}]}),
    ("/v1/responses", lambda t: {"input": t or "?", "instructions": t, "max_output_tokens": 1}),
    ("/v1/responses", lambda t: {"input": [{"role": "user", "content": [{"type": "input_text", "text": t or "?"}]}],
                                 "max_output_tokens": 1, "stream": True,
                                 "tools": [{"type": "file_search", "vector_store_ids": ["notes"]}]}),
    ("/v1/responses", lambda t: {"input": "Hi", "tools": [{"type": "file_search", "vector_store_ids": [t]}]}),
    ("/tokenize", lambda t: {"content": t, "with_pieces": True}),
    ("/tokenize", lambda t: {"messages": [{"role": "user", "content": t or "?"}]}),
    ("/v1/collections/notes/search", lambda t: {"query": t, "k": 2}),
    ("/v1/collections/notes/search", lambda t: {"query": t, "mode": "keyword"}),
]


@pytest.mark.parametrize("path,body", TEXT_FIELDS, ids=[f"{p}-{i}" for i, (p, _) in enumerate(TEXT_FIELDS)])
def test_any_text_in_any_field_is_an_answer_never_a_500(server: str, path: str,
                                                        body: Callable[[str], dict[str, object]]) -> None:
    """Arbitrary Unicode in a text field: a 200 or an OpenAI-shaped 4xx, and the keep-alive
    connection stays up for the next request (a server error used to reset it)."""
    with httpx.Client(base_url=server, timeout=60) as client:
        @settings(max_examples=TEXT_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(text=ANY_TEXT)
        def check(text: str) -> None:
            # ensure_ascii: lone surrogates travel as \ud83d escapes, as JavaScript sends them
            r = client.post(path, content=json.dumps(body(text)).encode(),
                            headers={"Content-Type": "application/json"})
            assert r.status_code < 500, (r.status_code, r.text[:300])
            if r.headers["content-type"].startswith("application/json"):
                answer = r.json()
                if r.status_code >= 400 and path.startswith("/v1/messages"):  # Anthropic's shape
                    assert answer["type"] == "error" and set(answer["error"]) == {"type", "message"}
                elif r.status_code >= 400:
                    assert set(answer["error"]) == {"message", "type", "param", "code"}
                    assert answer["error"]["code"], answer
            else:
                last = r.text.rstrip().splitlines()
                ends = {"/v1/messages": ("event: message_stop",),
                        "/v1/responses": ("event: response.completed", "event: response.incomplete")}
                frame = [line for line in last if line.startswith(("event:", "data: [DONE]"))][-1]
                assert r.status_code == 200 and frame in ends.get(path, ("data: [DONE]",)), r.text[-300:]
            assert client.get("/health").status_code == 200  # the same connection still serves

        check()


def test_search_path_names_of_any_text(server: str) -> None:
    with httpx.Client(base_url=server, timeout=60) as client:
        @settings(max_examples=TEXT_EXAMPLES, deadline=None, derandomize=True, database=None)
        @given(name=st.text(st.characters(exclude_categories=[]), min_size=1, max_size=70))
        def check(name: str) -> None:
            quoted = quote(name.encode("utf-16", "surrogatepass").decode("utf-16", "replace"), safe="")
            r = client.post(f"/v1/collections/{quoted}/search", json={"query": "volcano"})
            assert r.status_code in (200, 400, 404), (r.status_code, r.text[:300])

        check()
