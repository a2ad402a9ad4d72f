"""LocalDocs over the Model Context Protocol, with the ``mcp`` SDK's own client: ``gpt4all-rag
mcp`` over stdio and ``/mcp`` of a real ``gpt4all-rag serve`` (streamable HTTP, behind the API
key), and langchain-mcp-adapters loading the tools into a LangChain tool-calling step."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from gpt4all_rag.localdocs import LocalDocs
from tests.conftest import SMOLLM2

from .openai_server import running_openai_server

KEY = "mcp-key-1"
EXE = str(Path(sys.executable).with_name("gpt4all-rag"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mcp")
    docs = root / "docs"
    docs.mkdir()
    lines = [f"Line {i} of the volcano log." for i in range(1, 301)]
    lines[149] = "Krakatoa erupted on 27 August 1883, heard 4,800 km away."
    (docs / "volcano.md").write_text("# Volcano log\n\n" + "\n".join(lines) + "\n")
    (docs / "bread.md").write_text("# Bread\n\nA sourdough starter is fed flour and water daily.\n")
    (root / "secret.txt").write_text("not indexed: never readable through MCP\n")
    with LocalDocs("notes", persist_directory=root / "db", model_path=model_dir) as ld:
        ld.index(docs, progress=False)
    (root / "more").mkdir()
    (root / "more" / "trains.md").write_text("# Trains\n\nThe Shinkansen opened in 1964.\n")
    return {"root": root, "db": root / "db", "docs": docs}


async def _session_calls(session: ClientSession, corpus: dict[str, Path]) -> dict[str, Any]:
    """The checks every transport shares; returns what the caller checks further."""
    await session.initialize()
    tools = {t.name: t for t in (await session.list_tools()).tools}
    assert {"search", "list_collections", "read_document"} <= set(tools)
    assert tools["search"].description and tools["search"].inputSchema["properties"]["query"]
    assert "mode" in tools["search"].inputSchema["properties"]
    hits = (await session.call_tool("search", {"query": "When did Krakatoa erupt?", "k": 3,
                                               "mode": "keyword"})).structuredContent["result"]
    best = hits[0]
    assert best["path"] == str(corpus["docs"] / "volcano.md") and "1883" in best["excerpt"]
    assert best["citation"].startswith(best["path"]) and best["start_line"] is not None
    span = (await session.call_tool("read_document", {"path": best["path"], "start_line": 150,
                                                      "end_line": 154})).structuredContent
    assert span["text"].splitlines()[2].startswith("Krakatoa erupted")  # file line 152
    assert span["total_lines"] == 302 and not span["truncated"]
    bounded = (await session.call_tool("read_document", {"path": best["path"]})).structuredContent
    assert bounded["end_line"] == 200 and bounded["truncated"]
    rows = (await session.call_tool("list_collections", {})).structuredContent["result"]
    notes = next(r for r in rows if r["name"] == "notes")
    assert notes["documents"] == 2 and notes["chunks"] > 0 and notes["updated_at"] > 0
    errors = [await session.call_tool("read_document", {"path": str(corpus["root"] / "secret.txt")}),
              await session.call_tool("read_document", {"path": "/etc/passwd"}),
              await session.call_tool("read_document", {"path": best["path"], "start_line": 999}),
              await session.call_tool("search", {"query": "x", "collections": ["no-such-thing"]}),
              await session.call_tool("search", {"query": "x", "collections": ["../etc"]}),
              await session.call_tool("search", {"query": "", "k": 0})]
    for result in errors:
        assert result.isError and result.content[0].text
    assert "not an indexed document" in errors[0].content[0].text
    return {"tools": tools}


def test_stdio_server(corpus: dict[str, Path], model_dir: Path) -> None:
    async def main() -> None:
        params = StdioServerParameters(command=EXE, args=["mcp", "--persist-dir", str(corpus["db"]),
                                                          "--model-path", str(model_dir)])
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            seen = await _session_calls(session, corpus)
            assert "index_folder" not in seen["tools"]  # off unless the server allows it

    asyncio.run(main())


def test_stdio_server_that_may_index(corpus: dict[str, Path], model_dir: Path, tmp_path: Path) -> None:
    async def main() -> None:
        params = StdioServerParameters(command=EXE, args=["mcp", "--persist-dir", str(corpus["db"]),
                                                          "--model-path", str(model_dir), "--allow-index"])
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            done = await session.call_tool("index_folder", {"path": str(corpus["root"] / "more"),
                                                            "collection": "trains"})
            assert not done.isError and done.structuredContent["n_chunks"] >= 1
            hits = (await session.call_tool("search", {"query": "Shinkansen", "collections": ["trains"]}))
            assert hits.structuredContent["result"][0]["path"].endswith("trains.md")
            missing = await session.call_tool("index_folder", {"path": str(tmp_path / "nope"),
                                                               "collection": "trains"})
            assert missing.isError and "no such file or folder" in missing.content[0].text

    asyncio.run(main())


@pytest.fixture(scope="module")
def server(corpus: dict[str, Path], model_dir: Path) -> Iterator[str]:
    with running_openai_server(model_dir, "--model", SMOLLM2, "--persist-dir", str(corpus["db"]),
                               env={"GPT4ALL_RAG_API_KEY": KEY}) as url:
        yield url


def test_http_server_behind_the_key(server: str, corpus: dict[str, Path]) -> None:
    assert httpx.post(server + "/mcp", json={}).status_code == 401
    assert httpx.post(server + "/mcp", json={}, headers={"Host": "evil.example", "x-api-key": "no"}
                      ).status_code == 401

    async def main() -> None:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as http, \
                streamable_http_client(server + "/mcp", http_client=http) as (read, write, _), \
                ClientSession(read, write) as session:
            seen = await _session_calls(session, corpus)
            assert "index_folder" not in seen["tools"]

    asyncio.run(main())


def test_langchain_mcp_adapters_tools_in_a_tool_calling_step(server: str, model_dir: Path) -> None:
    from langchain_gpt4all_rag import ChatGPT4All
    from langchain_mcp_adapters.client import MultiServerMCPClient

    async def main() -> None:
        client = MultiServerMCPClient({"localdocs": {
            "transport": "streamable_http", "url": server + "/mcp",
            "headers": {"Authorization": f"Bearer {KEY}"}}})
        tools = {t.name: t for t in await client.get_tools()}
        assert {"search", "list_collections", "read_document"} <= set(tools)
        llm = ChatGPT4All(model=SMOLLM2, model_path=str(model_dir), temperature=0, max_tokens=60)
        try:
            step = llm.bind_tools([tools["search"]], tool_choice="search").invoke(
                "Search my documents: when did Krakatoa erupt?")
        finally:
            llm.close()
        call = step.tool_calls[0]
        assert call["name"] == "search" and isinstance(call["args"].get("query"), str)
        found = await tools["search"].ainvoke({**call["args"], "query": "Krakatoa", "mode": "keyword"})
        assert "1883" in str(found)

    asyncio.run(main())
