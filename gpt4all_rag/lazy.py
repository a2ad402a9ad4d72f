"""A value built on first use: the lazily loaded model every adapter and collection holds.

Framework adapters are built in loops (LangChain's standard tests build a model ten times), so
they load weights on first use, not when constructed, and must do so once when several threads
ask at the same moment, and refuse use after ``close()``. :class:`Lazy` is that pattern, once.
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

from .errors import ModelClosedError

__all__ = ["Lazy"]

T = TypeVar("T")


class Lazy(Generic[T]):
    """A value built by ``build()`` on the first :meth:`get`, under a lock (so once, however
    many threads ask), and freed by :meth:`close`.

    Args:
        build: makes the value; its exceptions reach the caller of :meth:`get`, and the next
            :meth:`get` tries again.
        free: called with the value by :meth:`close` when this object owns it (built it, or
            was given it with ``owned=True``); None frees nothing.
        what: how errors name the owner (``"this GPT4AllRag (model.gguf)"``).

    Thread safety: every method may be called from any thread; :meth:`close` during another
    thread's :meth:`get` lets that call return the value or raise ModelClosedError.
    """

    def __init__(self, build: Callable[[], T], *, free: Callable[[T], None] | None = None,
                 what: str = "this object") -> None:
        self._build, self._free, self.what = build, free, what
        self._value: T | None = None
        self._owned = True
        self._closed = False
        self._lock = threading.Lock()

    def get(self) -> T:
        """The value, built now if it was not yet.

        Raises:
            ModelClosedError: :meth:`close` was called.
            Whatever ``build`` raises.
        """
        value = self._value
        if value is not None and not self._closed:
            return value
        with self._lock:
            if self._closed:
                raise ModelClosedError(f"{self.what} was closed; create a new one to use it")
            if self._value is None:
                self._value = self._build()
                self._owned = True
            return self._value

    def set(self, value: T, *, owned: bool = False) -> None:
        """Use ``value`` instead of building one (``owned``: :meth:`close` frees it)."""
        with self._lock:
            self._value, self._owned = value, owned

    @property
    def loaded(self) -> bool:
        """Whether the value exists and :meth:`close` was not called."""
        return self._value is not None and not self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    def peek(self) -> T | None:
        """The value if it was built (and not closed), without building it."""
        return self._value if not self._closed else None

    def close(self) -> None:
        """Refuse later :meth:`get` calls and free the value if owned. Idempotent."""
        with self._lock:
            self._closed = True
            value, self._value = self._value, None
            owned = self._owned
        if value is not None and owned and self._free is not None:
            self._free(value)

    def reset(self) -> None:
        """Free the value (if owned) and build a new one on the next :meth:`get` (not closed)."""
        with self._lock:
            value, self._value = self._value, None
            owned = self._owned
        if value is not None and owned and self._free is not None:
            self._free(value)
