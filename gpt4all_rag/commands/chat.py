"""``gpt4all-rag chat``: talk to a local model in the terminal, streaming its replies."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import GPT4AllRagError
from ..engine.sampling import SamplingParams
from .common import load_chat_model, model_options

__all__ = ["chat"]

@click.command("chat")
@model_options
@click.option("--system", "system_message", default=None,
              help="System message [default: the model's own].")
@click.option("--prompt", "-p", "prompts", multiple=True,
              help="Send this message and exit instead of reading from the terminal (repeatable: "
                   "one turn each).")
@click.option("--collection", "-c", default=None,
              help="Answer with LocalDocs: retrieve excerpts from this collection every turn.")
@click.option("--persist-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the embedded Chroma database (with --collection).")
@click.option("--chroma-url", help="Chroma server http://HOST:PORT (with --collection).")
@click.option("-k", "k", type=click.IntRange(min=1), default=3, show_default=True,
              help="Excerpts per turn (with --collection).")
def chat(model: str, model_path: Path | None, n_ctx: int, threads: int | None,
         device: str | None, sampling: SamplingParams, allow_download: bool,
         system_message: str | None, prompts: tuple[str, ...], collection: str | None,
         persist_dir: Path | None, chroma_url: str | None, k: int) -> None:
    """Chat with a local model; replies stream as they are generated.

    Without --prompt, reads one message per line from the terminal; an empty line or EOF ends
    the session. The conversation is kept in the model's context window (the oldest turns are
    left out when it fills up). With --collection, each turn retrieves excerpts from that
    LocalDocs collection and the sources are listed after each reply.
    """
    localdocs = None
    if collection is not None:
        from .common import open_localdocs

        localdocs = open_localdocs(collection, persist_dir, chroma_url, None, None)
    try:
        llm = load_chat_model(model, model_path, n_ctx, threads, device, allow_download)
    except GPT4AllRagError as exc:
        raise click.ClickException(str(exc)) from exc
    interactive = not prompts
    with llm, llm.chat_session(system_message=system_message, localdocs=localdocs, localdocs_k=k):
        messages = iter(prompts) if prompts else _read_lines()
        for message in messages:
            if interactive and not message.strip():
                break
            try:
                for piece in llm.generate(message, streaming=True, **sampling.generate_kwargs()):
                    click.echo(piece, nl=False)
                    sys.stdout.flush()
            except GPT4AllRagError as exc:
                raise click.ClickException(str(exc)) from exc
            click.echo()
            if localdocs is not None and llm.last_sources:
                from ..localdocs import format_sources

                click.echo(format_sources(llm.last_sources))


def _read_lines():  # type: ignore[no-untyped-def]
    while True:
        try:
            line = input("> " if sys.stdin.isatty() else "")
        except EOFError:
            return
        yield line
