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


def test_a_seated_request_no_longer_counts_as_waiting(tmp_path: Path) -> None:
    """Was (Python 3.11, whose ``wait_for`` runs the seat's acquisition in a task of its own): a
    request stayed counted as waiting for a step of the event loop after it had its seat, so
    two requests arriving in that step saw one seat taken and ``max_queue`` waiters, and the
    second got a spurious ``queue_full`` although only one request waited."""
    pool = ModelPool(ServerConfig(model_path=tmp_path, persist_directory=tmp_path / "db",
                                  parallel=1, max_queue=2))
    seated, release = asyncio.Event(), asyncio.Event()
    outcomes: list[str] = []

    async def request(hold: bool) -> None:
        try:
            async with pool.admit("m.gguf"):
                if hold:
                    seated.set()
                    await release.wait()
            outcomes.append("served")
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test checks
            outcomes.append(f"{type(exc).__name__}: {exc}")

    async def main() -> None:
        first = asyncio.create_task(request(hold=True))
        await asyncio.sleep(0)  # it starts taking the free seat; the others come a step later
        others = [asyncio.create_task(request(hold=False)) for _ in range(2)]
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(first, *others)

    asyncio.run(main())
    assert outcomes == ["served"] * 3, outcomes
