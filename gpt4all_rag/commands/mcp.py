"""``gpt4all-rag mcp``: LocalDocs as a Model Context Protocol server over stdio (the transport
desktop agent hosts start; ``gpt4all-rag serve`` has the same server at ``/mcp``)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import MODEL_PATH_HELP, store_options

__all__ = ["mcp"]


@click.command("mcp")
@store_options
@click.option("--model-path", type=click.Path(file_okay=False, path_type=Path), help=MODEL_PATH_HELP)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads of the embedding model.")
@click.option("--allow-index", is_flag=True,
              help="Offer the index_folder tool, which lets the agent index folders (it writes).")
def mcp(persist_dir: Path | None, chroma_url: str | None, model_path: Path | None,
        threads: int | None, allow_index: bool) -> None:
    """Serve LocalDocs to an agent over stdio (MCP): search, list_collections, read_document
    and, with --allow-index, index_folder.

    An agent host starts it as a command, e.g. {"command": "gpt4all-rag", "args": ["mcp"]}.
    """
    from ..server.mcp import localdocs_mcp
    from ..server.pool import ModelPool, ServerConfig

    config = ServerConfig(model_path=model_path, persist_directory=persist_dir, chroma_url=chroma_url,
                          n_threads=threads)
    pool = ModelPool(config)
    try:
        localdocs_mcp(pool, allow_index=allow_index).run("stdio")
    finally:
        pool.close()
