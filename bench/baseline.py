"""Another checkout of gpt4all-rag beside this one, for before/after ratios taken in one run.

A refactoring is judged by running the same benchmark on the commit before it and on this tree,
interleaved (bench/rounds.py), on the same machine at the same time. Make the baseline once:

    git worktree add /tmp/g4r-base <commit>
    cp <site-packages>/gpt4all_rag/*.so <site-packages>/gpt4all_rag/*.json /tmp/g4r-base/gpt4all_rag/

(the built native library of that commit: copy it before rebuilding this tree), then pass
``--baseline /tmp/g4r-base`` to ``bench_generate.py`` or ``bench_server.py``.

:func:`command` runs a module of a tree's ``gpt4all_rag`` (its Python files and its native
library), however this virtual environment's editable install points elsewhere.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["command"]

# Drops the editable install's import hooks, puts the tree first on sys.path, points the native
# loader at the tree's library, then runs argv[2] (a module name or a .py file) with the rest
# of argv as its arguments.
_BOOT = r"""
import os, runpy, sys
tree, library, target = sys.argv[1], sys.argv[2], sys.argv[3]
sys.argv = [target] + sys.argv[4:]
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower() and "skbc" not in repr(f).lower()]
sys.path.insert(0, tree)
os.environ["GPT4ALL_RAG_NATIVE_LIB"] = library
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""


def library(tree: Path) -> Path:
    """The native library of the checkout at ``tree``: its own copy, else (this tree, built
    by an editable install) the one the installed package loads."""
    own = tree / "gpt4all_rag" / "libgpt4all_rag.so"
    if own.is_file():
        return own
    import gpt4all_rag

    found = [Path(p) / own.name for p in gpt4all_rag.__path__ if (Path(p) / own.name).is_file()]
    if not found:
        raise FileNotFoundError(f"no built libgpt4all_rag.so for {tree}")
    return found[0]


def command(tree: Path, target: str, *args: str) -> list[str]:
    """The command that runs ``target`` (a module such as ``gpt4all_rag``, or a script path)
    with ``args`` on the checkout at ``tree``."""
    return [sys.executable, "-c", _BOOT, str(tree), str(library(tree)), target, *args]
