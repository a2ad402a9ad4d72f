"""gpt4all_rag.aio.iterate_in_thread: the bridge from blocking generation streams to asyncio.

Each stream holds its worker thread for its whole life, so the bridge must not draw its threads
from a bounded pool: a server with 8 parallel sequences on a 2-core machine (whose default
executor has 6 workers) must run all 8 streams at once.
"""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from gpt4all_rag.aio import iterate_in_thread


def test_more_concurrent_streams_than_the_default_executor_has_workers() -> None:
    n = min(32, (os.cpu_count() or 1) + 4) + 3  # one more than asyncio's default executor + 2
    everyone = threading.Barrier(n, timeout=20)

    def stream(i: int):
        everyone.wait()  # returns only when all n streams run at the same time
        yield i
        yield i + 100

    async def consume(i: int) -> list[int]:
        return [x async for x in iterate_in_thread(lambda: stream(i))]

    async def main() -> list[list[int]]:
        return await asyncio.gather(*(consume(i) for i in range(n)))

    assert asyncio.run(main()) == [[i, i + 100] for i in range(n)]


def test_leaving_early_closes_the_iterator_in_its_thread() -> None:
    closed: list[str] = []

    def stream():
        try:
            for i in range(1000):
                yield i
        finally:
            closed.append(threading.current_thread().name)

    async def main() -> list[int]:
        got = []
        agen = iterate_in_thread(stream)
        async for x in agen:
            got.append(x)
            if x == 2:
                break
        await agen.aclose()
        return got

    assert asyncio.run(main()) == [0, 1, 2]
    assert closed and closed[0] != threading.current_thread().name


def test_errors_reach_the_consumer() -> None:
    def stream():
        yield 1
        raise ValueError("bad")

    async def main() -> list[int]:
        return [x async for x in iterate_in_thread(stream)]

    with pytest.raises(ValueError, match="bad"):
        asyncio.run(main())
