"""``gpt4all-rag serve``: the OpenAI-compatible server (uvicorn running gpt4all_rag.server)."""

from __future__ import annotations

import socket
from pathlib import Path

import click

from ..embed4all import DEFAULT_MODEL_NAME
from .common import MODEL_PATH_HELP, cli_errors

__all__ = ["serve"]


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback by default; 0.0.0.0 exposes it).")
@click.option("--port", type=click.IntRange(1, 65535), default=4891, show_default=True,
              help="Port (4891 is GPT4All Desktop's).")
@click.option("--model", "-m", default=None,
              help="Chat model loaded at start and used when a request names none.")
@click.option("--embedding-model", default=DEFAULT_MODEL_NAME, show_default=True,
              help="Embedding model used when a request names none.")
@click.option("--model-path", type=click.Path(file_okay=False, path_type=Path), help=MODEL_PATH_HELP)
@click.option("--api-key", envvar="GPT4ALL_RAG_API_KEY", default=None,
              help="Require 'Authorization: Bearer KEY' on every endpoint but /health "
                   "[env: GPT4ALL_RAG_API_KEY].")
@click.option("--chroma-url", default=None, help="LocalDocs on a Chroma server http://HOST:PORT.")
@click.option("--persist-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the embedded LocalDocs database.")
@click.option("--n-ctx", type=click.IntRange(min=64), default=None,
              help="Context window of chat models, per parallel request.")
@click.option("--parallel", type=click.IntRange(min=1, max=64), default=4, show_default=True,
              help="Requests one chat model serves at once, decoded together (each holds a "
                   "KV cache of --n-ctx tokens).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads per model.")
@click.option("--max-loaded-models", type=click.IntRange(min=1), default=2, show_default=True,
              help="Chat and embedding models held in memory at once; the least recently used "
                   "idle one is unloaded for another.")
@click.option("--max-queue", type=click.IntRange(min=0), default=16, show_default=True,
              help="Requests that may wait for a busy model (more get 503).")
@click.option("--queue-timeout", "queue_timeout_s", type=click.FloatRange(min=0.1), default=60.0,
              show_default=True, help="Seconds a request waits before it gets 503.")
@click.option("--max-tokens-limit", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Largest max_tokens a request may ask for.")
@click.option("--cors-origin", "cors_origins", multiple=True,
              help="Allow this origin by CORS (repeatable; CORS is off without one).")
@click.option("--allowed-host", "allowed_hosts", multiple=True,
              help="Also serve requests whose Host header is this name (repeatable; '*' for any). "
                   "Loopback names and IP addresses are always served; other names get 400 "
                   "unless an API key is set (DNS rebinding protection).")
@click.option("--read-timeout", "read_timeout_s", type=click.FloatRange(min=0.1), default=30.0,
              show_default=True, help="Seconds a request's headers and body may take to arrive "
                                      "(slower clients are disconnected).")
@click.option("--max-connections", type=click.IntRange(min=1), default=256, show_default=True,
              help="Open connections and requests at most (more get 503).")
@click.option("--mcp-allow-index", is_flag=True,
              help="Let MCP clients at /mcp index folders (the index_folder tool; it writes).")
@click.option("--allow-download/--offline", default=False, show_default=True,
              help="Let requests download catalogue models that are missing.")
def serve(host: str, port: int, model: str | None, embedding_model: str, model_path: Path | None,
          api_key: str | None, chroma_url: str | None, persist_dir: Path | None, n_ctx: int | None,
          parallel: int, threads: int | None, max_loaded_models: int, max_queue: int, queue_timeout_s: float,
          max_tokens_limit: int, cors_origins: tuple[str, ...], allowed_hosts: tuple[str, ...],
          read_timeout_s: float, max_connections: int, mcp_allow_index: bool, allow_download: bool) -> None:
    """Serve the OpenAI API (chat, completions, embeddings) with LocalDocs on HOST:PORT.

    Ctrl-C stops it cleanly. Point any OpenAI client at http://HOST:PORT/v1.
    """
    import uvicorn

    from ..engine import native as _native
    from ..server import ServerConfig, create_app
    from ..server.guards import deadline_protocol

    sock = _listen(host, port)  # a busy port fails now, before any model loads

    # Before any worker thread allocates: a long-lived server with a thread per request keeps
    # its memory bounded (figures in limit_malloc_arenas).
    _native.limit_malloc_arenas(2)
    from ..server.pool import ModelPool

    config = ServerConfig(model_path=model_path, model=model, embedding_model=embedding_model,
                          allow_download=allow_download, n_threads=threads, parallel=parallel,
                          max_loaded_models=max_loaded_models, max_queue=max_queue,
                          queue_timeout_s=queue_timeout_s, max_tokens_limit=max_tokens_limit,
                          api_key=api_key or None, cors_origins=list(cors_origins),
                          persist_directory=persist_dir, chroma_url=chroma_url, host=host,
                          allowed_hosts=list(allowed_hosts), read_timeout_s=read_timeout_s,
                          max_connections=max_connections, mcp_allow_index=mcp_allow_index)
    if n_ctx is not None:
        config.n_ctx = n_ctx
    pool = ModelPool(config)
    if model is not None:
        with cli_errors():
            pool.preload(pool.resolve(model))  # loaded before the first request
    click.echo(f"gpt4all-rag serving the OpenAI API on http://{host}:{port}/v1"
               f"{' (API key required)' if config.api_key else ''}", err=True)
    server = uvicorn.Server(uvicorn.Config(
        create_app(config, pool), host=host, port=port, log_level="warning",
        http=deadline_protocol(read_timeout_s), limit_concurrency=max_connections))
    server.run(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to HOST:PORT (uvicorn listens on it).

    Raises:
        click.ClickException: the address is taken or not this machine's.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
