"""Progress bars of long jobs (indexing, downloads, evaluation): one rule, one bar factory.

The rule, for every ``progress`` argument of gpt4all-rag:

* ``None`` (the default): show bars in a Jupyter kernel and when stderr is a terminal; stay
  quiet otherwise (pipes, log files, CI).
* ``True``: always show them; ``False``: never.

Bars are :mod:`tqdm.auto`'s: a widget in Jupyter (with ``ipywidgets`` installed; text bars
otherwise), text on stderr elsewhere.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["in_notebook", "progress_bar", "show_progress"]


def in_notebook() -> bool:
    """Whether this process is a Jupyter (IPython) kernel."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def show_progress(progress: bool | None) -> bool:
    """Apply the rule of the module docstring to a ``progress`` argument.

    Raises:
        InvalidParameterError: ``progress`` is not None, True or False.
    """
    if progress is None:
        return in_notebook() or _stderr_is_a_terminal()
    if not isinstance(progress, bool):
        from .errors import InvalidParameterError

        raise InvalidParameterError(f"progress must be None, True or False, got {progress!r}")
    return progress


def progress_bar(*, enabled: bool, **kwargs: Any) -> Any:
    """A :class:`tqdm.auto.tqdm` bar (``total``, ``desc``, ``unit`` ... as for tqdm), disabled
    unless ``enabled``. Use it as a context manager or close it."""
    from tqdm.auto import tqdm

    return tqdm(disable=not enabled, **kwargs)


def _stderr_is_a_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False
