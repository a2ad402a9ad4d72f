"""Run a blocking iterator in a worker thread and consume it from asyncio without blocking
(the bridge every async front uses: the LangChain and LlamaIndex classes and the server).

gpt4all-rag generation is pulled token by token from a synchronous generator that holds one
of the model's sequences between ``next()`` calls of one thread. The worker thread owns the
generator for its whole life (it starts, advances and closes it), and hands each item to the
event loop through an :class:`asyncio.Queue`. Leaving the ``async for`` early (``break``,
cancellation, ``aclose()``) tells the worker to close the generator, which stops generation
and frees its sequence; the async generator waits for that without blocking the loop.

Each iteration gets a thread of its own rather than one of the event loop's default executor:
a stream holds its thread for its whole life, and that executor has only ``cpu_count + 4``
workers (6 on 2 cores), so an eighth concurrent stream would wait for the first to end.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import TypeVar, cast

__all__ = ["iterate_in_thread"]

T = TypeVar("T")

_DONE = object()


async def iterate_in_thread(make_iterator: Callable[[], Iterator[T]]) -> AsyncGenerator[T, None]:
    """Yield the items of ``make_iterator()``, which is created and advanced in a worker thread.

    Args:
        make_iterator: called once in the worker thread; its iterator's ``close()`` (when it
            has one) is called in that same thread when iteration ends for any reason.

    Yields:
        The iterator's items, in order, as soon as each is produced.

    Raises:
        BaseException: whatever ``make_iterator`` or the iterator raised, re-raised in the
            consumer's task.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[object, BaseException | None]] = asyncio.Queue()
    stop = threading.Event()

    def send(item: object, exc: BaseException | None = None) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (item, exc))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            stop.set()

    def work() -> None:
        iterator: Iterator[T] | None = None
        error: BaseException | None = None
        try:
            iterator = make_iterator()
            for item in iterator:
                if stop.is_set():
                    break
                send(item)
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer, re-raised there)
            error = exc
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                try:
                    close()
                except BaseException as exc:  # noqa: BLE001  (same)
                    error = error or exc
            send(_DONE, error)

    finished: asyncio.Future[None] = loop.create_future()

    def run() -> None:
        try:
            context.run(work)
        finally:
            try:
                loop.call_soon_threadsafe(lambda: finished.done() or finished.set_result(None))
            except RuntimeError:  # the loop is closed
                pass

    context = contextvars.copy_context()  # keeps instrumentation spans of the caller
    threading.Thread(target=run, name="gpt4all-rag-stream", daemon=True).start()
    try:
        while True:
            item, exc = await queue.get()
            if item is _DONE:
                if exc is not None:
                    raise exc
                return
            yield cast(T, item)
    finally:
        stop.set()
        await asyncio.shield(finished)
