"""LocalDocs searches go through the server's admission like model requests: the search
endpoint and a chat's ``localdocs`` retrieval share :data:`SEARCH`'s seats and queue bounds.
The app runs in process (httpx's ASGI transport); no model is loaded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from gpt4all_rag.server.app import create_app
from gpt4all_rag.server.pool import SEARCH, ModelPool, ServerConfig


def test_searches_wait_for_a_seat_like_model_requests(tmp_path: Path) -> None:
    (tmp_path / "chat.gguf").write_bytes(b"")  # resolves; never loaded (refused before)
    config = ServerConfig(model_path=tmp_path, persist_directory=tmp_path / "db", parallel=1,
                          max_queue=0)
    pool = ModelPool(config)
    chat = {"model": "chat.gguf", "messages": [{"role": "user", "content": "cats?"}],
            "localdocs": {"collections": ["notes"]}}

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=create_app(config, pool))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            async with pool.admit(SEARCH):  # the only seat is taken and no one may wait
                held = [await client.post("/v1/collections/notes/search", json={"query": "cats"}),
                        await client.post("/v1/chat/completions", json=chat)]
            free = await client.post("/v1/collections/notes/search", json={"query": "cats"})
            return [*held, free]

    search, retrieval, free = asyncio.run(main())
    for r in (search, retrieval):
        assert r.status_code == 503 and r.json()["error"]["code"] == "queue_full", r.text
    assert free.status_code == 404 and free.json()["error"]["code"] == "collection_not_found"
