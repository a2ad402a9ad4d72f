"""``gpt4all-rag index | search | ask | collections``: LocalDocs from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import click

from ..errors import GPT4AllRagError
from .chat import load_chat_model, model_options

__all__ = ["ask", "collections", "index", "localdocs_options", "open_localdocs", "search"]


def localdocs_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every command that opens a LocalDocs collection."""
    options = [
        click.option("--collection", "-c", default="default", show_default=True,
                     help="LocalDocs collection name."),
        click.option("--persist-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Folder of the embedded Chroma database [default: "
                          "$GPT4ALL_RAG_LOCALDOCS_DIR or ~/.local/share/gpt4all-rag/localdocs]."),
        click.option("--chroma-url", help="Use the Chroma server at http://HOST:PORT instead."),
        click.option("--embedding-model", help="GGUF embedding model [default: the collection's, "
                                               "else all-MiniLM-L6-v2.gguf2.f16.gguf]."),
        click.option("--embedding-model-path", type=click.Path(file_okay=False, path_type=Path),
                     help="Folder of the embedding model [default: the model directory]."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def open_localdocs(collection: str, persist_dir: Path | None, chroma_url: str | None,
                   embedding_model: str | None, embedding_model_path: Path | None,
                   **kwargs: Any) -> Any:
    """Open a LocalDocs collection, turning errors into click errors."""
    from ..localdocs import LocalDocs

    try:
        return LocalDocs(collection, persist_directory=persist_dir, chroma_url=chroma_url,
                         embedding_model=embedding_model, model_path=embedding_model_path, **kwargs)
    except GPT4AllRagError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("index")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@localdocs_options
@click.option("--ext", "extensions", multiple=True,
              help="Only these file extensions (repeatable, e.g. --ext md --ext pdf).")
@click.option("--chunk-tokens", type=click.IntRange(min=16), default=None,
              help="Target chunk size in embedding-model tokens [default: the collection's, or "
                   "the embedding model's: 128 for all-MiniLM-L6-v2, 256 for others].")
@click.option("--overlap-tokens", type=click.IntRange(min=0), default=None,
              help="Tokens shared by consecutive chunks [default: the collection's, or the "
                   "model's: 16 for all-MiniLM-L6-v2, 32 for others; chunk size / 8 with "
                   "--chunk-tokens].")
@click.option("--reindex", is_flag=True,
              help="Rebuild the collection if it was built with other settings.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def index(paths: tuple[Path, ...], collection: str, persist_dir: Path | None,
          chroma_url: str | None, embedding_model: str | None, embedding_model_path: Path | None,
          extensions: tuple[str, ...], chunk_tokens: int | None, overlap_tokens: int | None,
          reindex: bool, quiet: bool) -> None:
    """Index the documents under PATHS into a collection (incrementally).

    Reads .txt .md .rst .html .pdf .docx and source-code files. Unchanged files are skipped,
    changed ones re-indexed, deleted ones removed. Files that cannot be read are listed with
    the reason.
    """
    ld = open_localdocs(collection, persist_dir, chroma_url, embedding_model, embedding_model_path,
                        chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens, reindex=reindex)
    try:
        with ld:
            report = ld.index([str(p) for p in paths], extensions=extensions or None,
                              progress=None if not quiet else False)
    except GPT4AllRagError as exc:
        raise click.ClickException(str(exc)) from exc
    for path, reason in report.skipped:
        click.echo(f"skipped {path}: {reason}", err=True)
    click.echo(f"{collection}: {report.summary()}")


@click.command("search")
@click.argument("query")
@localdocs_options
@click.option("-k", "k", type=click.IntRange(min=1), default=5, show_default=True,
              help="Number of results.")
@click.option("--mode", type=click.Choice(["hybrid", "dense", "keyword"]), default="hybrid",
              show_default=True, help="Dense + BM25 fused, dense only, or BM25 only.")
def search(query: str, collection: str, persist_dir: Path | None, chroma_url: str | None,
           embedding_model: str | None, embedding_model_path: Path | None, k: int, mode: str) -> None:
    """Retrieve the chunks that best match QUERY (no language model involved)."""
    ld = open_localdocs(collection, persist_dir, chroma_url, embedding_model, embedding_model_path)
    try:
        with ld:
            results = ld.search(query, k, mode=mode)  # type: ignore[arg-type]
    except GPT4AllRagError as exc:
        raise click.ClickException(str(exc)) from exc
    if not results:
        click.echo("no results")
    for i, r in enumerate(results, start=1):
        click.echo(f"[{i}] {r.citation()}  (score {r.score:.4f})")
        if r.heading:
            click.echo(f"    {r.heading}")
        excerpt = " ".join(r.text.split())
        click.echo(f"    {excerpt[:300]}{'…' if len(excerpt) > 300 else ''}")


@click.command("ask")
@click.argument("question")
@localdocs_options
@model_options
@click.option("-k", "k", type=click.IntRange(min=1), default=3, show_default=True,
              help="Excerpts given to the model.")
@click.option("--system", "system_message", default="You are a helpful assistant. Answer from "
              "the provided context and cite it.", show_default=True, help="System message.")
def ask(question: str, collection: str, persist_dir: Path | None, chroma_url: str | None,
        embedding_model: str | None, embedding_model_path: Path | None, model: str,
        model_path: Path | None, n_ctx: int, threads: int | None, device: str | None, temp: float,
        max_tokens: int, allow_download: bool, k: int, system_message: str) -> None:
    """Answer QUESTION from a collection: streams the answer, then numbered sources."""
    from ..localdocs import format_sources

    ld = open_localdocs(collection, persist_dir, chroma_url, embedding_model, embedding_model_path)
    try:
        with ld, load_chat_model(model, model_path, n_ctx, threads, device, allow_download) as llm:
            with llm.chat_session(system_message=system_message, localdocs=ld, localdocs_k=k):
                for piece in llm.generate(question, max_tokens=max_tokens, temp=temp,
                                          repeat_penalty=1.1, streaming=True):
                    click.echo(piece, nl=False)
                    sys.stdout.flush()
            click.echo()
            if llm.last_sources:
                click.echo("\nSources:")
                click.echo(format_sources(llm.last_sources))
            else:
                click.echo("\n(no matching documents in the collection)")
    except GPT4AllRagError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("collections", invoke_without_command=True)
@click.option("--persist-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the embedded Chroma database.")
@click.option("--chroma-url", help="Use the Chroma server at http://HOST:PORT instead.")
@click.pass_context
def collections(ctx: click.Context, persist_dir: Path | None, chroma_url: str | None) -> None:
    """List LocalDocs collections (or show / remove one)."""
    ctx.obj = {"persist_dir": persist_dir, "chroma_url": chroma_url}
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_collections_cmd)


@collections.command("list")
@click.pass_context
def list_collections_cmd(ctx: click.Context) -> None:
    """List collections with their document and chunk counts."""
    from ..localdocs import store

    try:
        client = store.make_client(ctx.obj["persist_dir"], ctx.obj["chroma_url"])
        rows = store.list_collections(client)
    except GPT4AllRagError as exc:
        raise click.ClickException(str(exc)) from exc
    if not rows:
        click.echo("no collections")
    for row in rows:
        click.echo(f"{row['name']}: {row['documents']} documents, {row['chunks']} chunks, "
                   f"{row.get('embedding_model', '?')}")


@collections.command("show")
@click.argument("name")
@click.pass_context
def show_collection(ctx: click.Context, name: str) -> None:
    """Show how a collection was built and what it holds."""
    from ..localdocs import store

    try:
        client = store.make_client(ctx.obj["persist_dir"], ctx.obj["chroma_url"])
        st = store.Store(client, name, create=False)
        records = st.file_records()
    except GPT4AllRagError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"collection {name}: {len(records)} documents, {st.count()} chunks")
    for key, value in sorted(st.build_info.items()):
        click.echo(f"  {key}: {value}")
    for path in sorted(records):
        rec = records[path]
        click.echo(f"  {path} ({rec.n_chunks} chunks{'' if rec.state == 'done' else ', unfinished'})")


@collections.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def remove_collection(ctx: click.Context, name: str, yes: bool) -> None:
    """Delete a collection and its bookkeeping (the documents themselves are untouched)."""
    from ..localdocs import store

    if not yes:
        click.confirm(f"Delete collection {name!r}?", abort=True)
    try:
        client = store.make_client(ctx.obj["persist_dir"], ctx.obj["chroma_url"])
        store.Store(client, name, create=False).delete_collection()
    except GPT4AllRagError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"removed {name}")
