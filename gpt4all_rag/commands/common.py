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
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from ..errors import GPT4AllRagError

__all__ = ["cli_errors", "echo_json", "json_option", "localdocs_options", "open_localdocs",
           "store_options"]


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
                                               "else all-MiniLM-L6-v2.gguf2.f16.gguf].")(f)
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
