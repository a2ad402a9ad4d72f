"""Subcommands of the ``gpt4all-rag`` CLI, one module per command group."""
