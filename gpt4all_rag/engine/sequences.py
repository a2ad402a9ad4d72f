"""Admission of callers to a model's parallel sequences.

A generation model holds ``n_parallel`` sequences (``GPT4All(n_parallel=...)``); every
generation, chat completion or log-likelihood call holds one for as long as it runs (a stream:
until it is exhausted or closed), and the native library evaluates the held sequences' tokens
together (``g4r.h``, "Parallel sequences"). :class:`SequencePool` hands them out:

- in arrival order: a caller that finds none free waits in a FIFO queue;
- bounded: at most ``max_waiting`` callers wait, and each at most ``wait_timeout`` seconds;
  both end in :class:`~gpt4all_rag.errors.ModelBusyError`;
- cache-aware: a free sequence whose last prompt the caller's prompt continues (a
  conversation's next turn, the same prompt again) is chosen first, the longest such; else
  the one whose reuse discards the fewest cached tokens (an empty one; then the longest shared
  prefix; then the least recently used). So a chat session's next turn finds its
  conversation still in the KV cache while other sessions run, and a new conversation does
  not evict another's because they share a system prompt. llama.cpp's server (``tools/server``) chooses its slot by the longest
  common prefix too, above a similarity threshold.
"""

from __future__ import annotations

import collections
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Sequence

from .. import errors
from .native_model import NativeModel, NativeSequence

__all__ = ["CLOSE_IDLE_S", "SequencePool"]

#: Seconds a held sequence may go unused before :meth:`SequencePool.close` stops waiting for
#: it. A generating caller uses its sequence every token (milliseconds apart); a stream
#: nobody reads does not.
CLOSE_IDLE_S = 1.0


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class SequencePool:
    """The sequences of one :class:`~gpt4all_rag.engine.native.NativeModel`, handed to one caller
    at a time each.

    Args:
        model: a generation model loaded with ``n_seq`` sequences.
        max_waiting: callers that may wait at once (>= 0); one more gets ModelBusyError.
        wait_timeout: seconds a caller waits at most (None: as long as it takes).
    """

    def __init__(self, model: NativeModel, *, max_waiting: int, wait_timeout: float | None) -> None:
        self.model = model
        self.max_waiting = max_waiting
        self.wait_timeout = wait_timeout
        n = model.n_seq
        self._cond = threading.Condition()
        self._free: list[int] = list(range(n))
        self._holder: dict[int, int] = {}  # sequence -> thread ident
        self._cached: list[list[int]] = [[] for _ in range(n)]  # what each sequence last held
        self._prompt: list[int] = [0] * n  # ... of which its last caller's prompt
        self._used: list[float] = [0.0] * n
        self._queue: collections.deque[object] = collections.deque()
        self._closed = False

    @property
    def size(self) -> int:
        return len(self._cached)

    @property
    def waiting(self) -> int:
        """Callers waiting for a sequence now."""
        return len(self._queue)

    @property
    def busy(self) -> int:
        """Sequences held now."""
        return len(self._holder)

    def acquire(self, tokens: Sequence[int] = ()) -> NativeSequence:
        """Take a free sequence, waiting in line for one when all are held.

        Args:
            tokens: the prompt the caller will ingest (chooses the sequence with the longest
                cached prefix of it).

        Raises:
            ModelBusyError: ``max_waiting`` callers already wait, or ``wait_timeout`` passed.
            ConcurrentUseError: every sequence is held by this thread (it would wait for
                itself): exhaust or close one of its open streams first.
            ModelClosedError: the model was closed.
        """
        me = threading.get_ident()
        with self._cond:
            self._check_open()
            if not self._free or self._queue:
                if self._holder and all(t == me for t in self._holder.values()) and not self._free:
                    raise errors.ConcurrentUseError(
                        "this thread holds every sequence of this model with open streaming "
                        "generations; exhaust or close() one of them first (or load the model "
                        "with a larger n_parallel)")
                if len(self._queue) >= self.max_waiting:
                    raise errors.ModelBusyError(
                        f"all {self.size} sequences of this model are busy and {len(self._queue)} "
                        "callers already wait (max_waiting); retry later", reason="queue_full")
                ticket = object()
                self._queue.append(ticket)
                deadline = None if self.wait_timeout is None else time.monotonic() + self.wait_timeout
                try:
                    while not (self._free and self._queue[0] is ticket):
                        left = None if deadline is None else deadline - time.monotonic()
                        if left is not None and left <= 0:
                            raise errors.ModelBusyError(
                                f"waited {self.wait_timeout:g} s for a free sequence of this "
                                "model (wait_timeout); retry later", reason="timeout")
                        self._cond.wait(left)
                        self._check_open()
                finally:
                    self._queue.remove(ticket)
                    self._cond.notify_all()  # the next in line may be able to go now
            seq = self._choose(tokens)
            self._free.remove(seq)
            self._holder[seq] = me
            self._prompt[seq] = len(tokens)
            view = self.model.sequence(seq)
            view.touch()
            return view

    def _choose(self, tokens: Sequence[int]) -> int:
        shared = {s: _common_prefix(self._cached[s], tokens) for s in self._free}
        continued = [s for s in self._free if self._cached[s] and shared[s] >= self._prompt[s]]
        if continued:
            return max(continued, key=lambda s: shared[s])
        # Else the one whose eviction loses the fewest cached tokens (an empty one loses none).
        return min(self._free, key=lambda s: (len(self._cached[s]) - shared[s], -shared[s],
                                             self._used[s]))

    def release(self, view: NativeSequence, held: Sequence[int] = ()) -> None:
        """Give a sequence back; ``held`` is what its cache holds now (prompt and reply)."""
        with self._cond:
            if self._holder.pop(view.seq, None) is None:
                return
            self._cached[view.seq] = list(held)
            self._used[view.seq] = time.monotonic()
            self._free.append(view.seq)
            self._cond.notify_all()

    @contextmanager
    def hold(self, tokens: Sequence[int] = ()) -> Iterator[NativeSequence]:
        """:meth:`acquire` and :meth:`release` around a block (what it held: ``tokens``)."""
        view = self.acquire(tokens)
        try:
            yield view
        finally:
            self.release(view, tokens)

    def held_by_me(self) -> bool:
        """Does this thread hold a sequence (an open stream)?"""
        me = threading.get_ident()
        with self._cond:
            return any(t == me for t in self._holder.values())

    def close(self, close_model: bool = True) -> None:
        """Refuse new callers, wait until the sequences other threads hold and use are given
        back, then close the model (which waits for the calls in flight).

        A sequence is waited for while its holder uses it: a generation running in another
        thread finishes. One left unused for :data:`CLOSE_IDLE_S` seconds (a stream nobody
        reads, or whose thread has ended) is not: its stream sees the closed model at its next
        read (``ModelClosedError``). This thread's own streams see the closed model too (they
        would wait for themselves).
        """
        me = threading.get_ident()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            while True:
                others = [s for s, t in self._holder.items() if t != me]
                if not others:
                    break
                idle = min(self.model.sequence(s).idle_s() for s in others)
                if idle >= CLOSE_IDLE_S:
                    break
                self._cond.wait(CLOSE_IDLE_S - idle + 0.01)
            if close_model:
                self.model.close()

    def _check_open(self) -> None:
        if self._closed or self.model.closed:
            raise errors.ModelClosedError("the model was closed; create a new instance to use it")
