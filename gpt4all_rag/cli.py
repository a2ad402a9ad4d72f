"""The ``gpt4all-rag`` command.

Each command group lives in its own module under :mod:`gpt4all_rag.commands`; this module only
assembles them. Run ``gpt4all-rag --help`` for the list.
"""

from __future__ import annotations

import importlib

import click

# (module under gpt4all_rag.commands, attribute) of every command, in --help order.
_COMMANDS: tuple[tuple[str, str], ...] = (
    ("localdocs", "index"),
    ("localdocs", "ask"),
    ("chat", "chat"),
    ("localdocs", "search"),
    ("localdocs", "collections"),
    ("evaluate", "evaluate"),
    ("models", "models"),
    ("convert", "convert"),
    ("serve", "serve"),
    ("mcp", "mcp"),
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gpt4all-rag")
def main() -> None:
    """Local language models for your documents: index folders, ask questions, get sources."""


for _module, _attr in _COMMANDS:  # several commands may share one module
    main.add_command(getattr(importlib.import_module(f"gpt4all_rag.commands.{_module}"), _attr))


if __name__ == "__main__":  # pragma: no cover
    main()
