"""``python -m gpt4all_rag``: the ``gpt4all-rag`` command (see :mod:`gpt4all_rag.cli`)."""

from .cli import main

if __name__ == "__main__":  # pragma: no cover - run by the interpreter
    main(prog_name="gpt4all-rag")
