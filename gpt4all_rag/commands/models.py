"""``gpt4all-rag models``: list the catalogue, download model files, show where they live."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .. import errors
from ..models import catalogue as _models
from .common import MODEL_PATH_HELP, cli_errors

__all__ = ["models"]



def _model_dir(model_path: Path | None) -> Path:
    return model_path if model_path is not None else _models.default_model_directory()


def _human_size(value: object) -> str:
    """A catalogue ``filesize`` (bytes) in decimal units; ``?`` if it is not a number."""
    try:
        size = float(str(value))
    except ValueError:
        return "?"
    if size < 1000:
        return f"{size:.0f} B"
    for unit in ("KB", "MB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} GB"


@click.group(name="models")
def models() -> None:
    """List, download and locate model files (GPT4All's models3.json catalogue)."""


@models.command(name="list", short_help="List the catalogue, marking installed models.")
@click.option(
    "--url", default=None, help="Catalogue URL [default: $GPT4ALL_RAG_CATALOG_URL or gpt4all.io]."
)
@click.option(
    "--model-path",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=MODEL_PATH_HELP,
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the catalogue as JSON, with 'installed'."
)
def list_command(url: str | None, model_path: Path | None, as_json: bool) -> None:
    """List the models of the catalogue; '*' marks files present in the model directory.

    Files in the model directory that the catalogue does not know are listed after it.
    Offline, with no cached catalogue, the installed files are listed and a note on stderr
    says the catalogue was unreachable.
    """
    directory = _model_dir(model_path)
    unreachable = None
    try:
        entries = _models.list_models(url)
    except errors.DownloadError as exc:  # offline: what is on disk still answers
        entries, unreachable = [], str(exc)
    known = {entry["filename"] for entry in entries}
    for entry in entries:
        entry["installed"] = (directory / entry["filename"]).is_file()
    try:
        local = sorted(
            p.name
            for p in directory.iterdir()
            if p.is_file() and p.suffix in (".gguf", ".bin") and p.name not in known
        )
    except OSError:  # the directory does not exist (yet)
        local = []
    if unreachable is not None:
        click.echo(f"the catalogue is unreachable ({unreachable}); listing the installed models",
                   err=True)
    if as_json:
        click.echo(json.dumps({"models": entries, "other_files": local,
                               "catalog_error": unreachable}, indent=2))
        return
    if not entries and unreachable is None:
        click.echo("The catalogue is empty.")
    for entry in entries:
        mark = "*" if entry["installed"] else " "
        size = _human_size(entry.get("filesize")) if "filesize" in entry else ""
        name = entry.get("name", "")
        click.echo(f"{mark} {entry['filename']:<50} {size:>9}  {name}".rstrip())
    if local:
        click.echo(f"\nOther model files in {directory}:")
        for filename in local:
            click.echo(f"* {filename}")
    click.echo(f"\n* = installed in {directory}")


@models.command(name="download", short_help="Download a model unless it is present.")
@click.argument("name")
@click.option(
    "--model-path",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=MODEL_PATH_HELP + " Created if it is the default.",
)
@click.option(
    "--url",
    default=None,
    help="Download the file from this URL instead of the catalogue's (no size or MD5 check).",
)
@click.option("--catalog-url", default=None, help="Catalogue URL [default: as for 'list'].")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def download_command(
    name: str,
    model_path: Path | None,
    url: str | None,
    catalog_url: str | None,
    quiet: bool,
) -> None:
    """Download model NAME (a catalogue file name) unless it is already present.

    The file is checked against the catalogue's size and MD5, and only a complete file is
    ever placed under its final name. Prints the path of the model file.
    """
    with cli_errors():
        config = _models.retrieve_model(
            name,
            model_path,
            allow_download=True,
            verbose=not quiet,
            catalog_url=catalog_url,
            download_url=url,
        )
    click.echo(config["path"])


@models.command(name="path", short_help="Print the default model directory.")
def path_command() -> None:
    """Print the directory where model files live by default."""
    click.echo(str(_models.default_model_directory()))
