"""``gpt4all-rag index | search | ask | collections``: LocalDocs from the command line.

``--json`` (each command) prints one JSON object on stdout with these keys:

* ``index``: ``collection``, ``indexed``, ``unchanged``, ``removed`` (lists of paths),
  ``skipped`` (``[{"path", "reason"}]``), ``n_chunks``.
* ``search``: ``collection``, ``query``, ``mode``, ``k``, ``results``: a list of ``{"rank",
  "text", "score", "path", "title", "page", "start_line", "end_line", "heading", "chunk_id",
  "citation", "ranks", "origin", "metadata"}``.
* ``ask``: ``collection``, ``question``, ``model``, ``answer``, ``sources`` (as ``results``).
* ``collections`` / ``collections list``: ``collections``: a list of ``{"name", "documents",
  "chunks", "embedding_model", "dimensionality", "chunk_tokens", "overlap_tokens", "chunker",
  "schema", "revision", "updated_at"}``; ``collections show NAME``: ``collection`` (one such object) and
  ``documents`` (``[{"path", "title", "n_chunks", "state", "origin", "size_bytes",
  "mtime"}]``); ``collections remove NAME``: ``removed`` (the name).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..engine.sampling import SamplingParams
from .common import (cli_errors, echo_json, json_option, load_chat_model, localdocs_options,
                     model_options, open_localdocs, store_options)

# localdocs_options and open_localdocs live in .common; other command modules import them here.
__all__ = ["ask", "collections", "index", "localdocs_options", "open_localdocs", "search"]


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
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads of the embedding model [default: automatic]. Beside another "
                   "busy process, give each a share of the CPUs (README, Threads).")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bars [default: bars when stderr is a terminal].")
@click.option("--verbose", "-v", is_flag=True,
              help="Also print where the time went (scan, read, chunk, embed, store) and how "
                   "many threads embedded.")
@json_option("Print the report as one JSON object (collection, indexed, unchanged, removed, "
             "skipped, n_chunks, timings).")
def index(paths: tuple[Path, ...], collection: str, persist_dir: Path | None,
          chroma_url: str | None, embedding_model: str | None, embedding_model_path: Path | None,
          extensions: tuple[str, ...], chunk_tokens: int | None, overlap_tokens: int | None,
          reindex: bool, threads: int | None, quiet: bool, verbose: bool, as_json: bool) -> None:
    """Index the documents under PATHS into a collection (incrementally).

    Reads .txt .md .rst .html .pdf .docx and source-code files. Unchanged files are skipped,
    changed ones re-indexed, deleted ones removed. Files that cannot be read are listed with
    the reason.
    """
    ld = open_localdocs(collection, persist_dir, chroma_url, embedding_model, embedding_model_path,
                        chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens, reindex=reindex,
                        n_threads=threads)
    with cli_errors(), ld:
        report = ld.index([str(p) for p in paths], extensions=extensions or None,
                          progress=False if quiet else None)
    if as_json:
        echo_json({"collection": collection, **report.as_dict()})
        return
    _echo_skipped(report.skipped)
    click.echo(f"{collection}: {report.summary()}")
    if verbose:
        beside = "in a thread beside it" if report.read_ahead else "in line (no CPU spare)"
        click.echo(f"time {report.timing_summary()}\nembedding threads: {report.n_threads} "
                   f"({report.encoder}'s graph); reading and chunking {beside}")


#: Skipped files named per reason; the rest are counted (``--json`` lists them all).
SKIPPED_SHOWN = 5


def _echo_skipped(skipped: list[tuple[str, str]]) -> None:
    """Each skipped file with its reason on stderr, at most SKIPPED_SHOWN per reason."""
    by_reason: dict[str, list[str]] = {}
    for path, reason in skipped:
        by_reason.setdefault(reason, []).append(path)
    for reason, found in by_reason.items():
        for path in found[:SKIPPED_SHOWN]:
            click.echo(f"skipped {path}: {reason}", err=True)
        if len(found) > SKIPPED_SHOWN:
            click.echo(f"skipped {len(found) - SKIPPED_SHOWN} more: {reason} (--json lists them)", err=True)


@click.command("search")
@click.argument("query")
@localdocs_options
@click.option("-k", "k", type=click.IntRange(min=1), default=5, show_default=True,
              help="Number of results.")
@click.option("--mode", type=click.Choice(["hybrid", "dense", "keyword"]), default="hybrid",
              show_default=True, help="Dense + BM25 fused, dense only, or BM25 only.")
@json_option("Print the results as one JSON object (collection, query, mode, k, results).")
def search(query: str, collection: str, persist_dir: Path | None, chroma_url: str | None,
           embedding_model: str | None, embedding_model_path: Path | None, k: int, mode: str,
           as_json: bool) -> None:
    """Retrieve the chunks that best match QUERY (no language model involved).

    QUERY "-" reads the query from standard input.
    """
    query = _text_argument(query, "QUERY")
    ld = open_localdocs(collection, persist_dir, chroma_url, embedding_model, embedding_model_path)
    with cli_errors(), ld:
        results = ld.search(query, k, mode=mode)  # type: ignore[arg-type]
    if as_json:
        echo_json({"collection": collection, "query": query, "mode": mode, "k": k,
                   "results": results.as_dicts()})
        return
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
@json_option("Print one JSON object (collection, question, model, answer, sources) when the "
             "answer is complete, instead of streaming it.")
def ask(question: str, collection: str, persist_dir: Path | None, chroma_url: str | None,
        embedding_model: str | None, embedding_model_path: Path | None, model: str,
        model_path: Path | None, n_ctx: int, threads: int | None, device: str | None,
        sampling: SamplingParams, allow_download: bool, k: int, system_message: str,
        as_json: bool) -> None:
    """Answer QUESTION from a collection: streams the answer, then numbered sources.

    QUESTION "-" reads the question from standard input (e.g. echo "..." | gpt4all-rag ask -).
    """
    from ..localdocs import SearchResults, format_sources

    question = _text_argument(question, "QUESTION")
    ld = open_localdocs(collection, persist_dir, chroma_url, embedding_model, embedding_model_path)
    with cli_errors(), ld, load_chat_model(model, model_path, n_ctx, threads, device,
                                           allow_download) as llm:
        pieces: list[str] = []
        with llm.chat_session(system_message=system_message, localdocs=ld, localdocs_k=k):
            for piece in llm.generate(question, streaming=True, **sampling.generate_kwargs()):
                if as_json:
                    pieces.append(piece)
                else:
                    click.echo(piece, nl=False)
                    sys.stdout.flush()
        sources = SearchResults(llm.last_sources)
    if as_json:
        echo_json({"collection": collection, "question": question, "model": model,
                   "answer": "".join(pieces), "sources": sources.as_dicts()})
        return
    click.echo()
    if sources:
        click.echo("\nSources:")
        click.echo(format_sources(sources))
    else:
        click.echo("\n(no matching documents in the collection)")


def _text_argument(value: str, name: str) -> str:
    """``value``, or standard input when it is ``-``; refuses an empty text."""
    from_stdin = value == "-"
    if from_stdin:
        value = sys.stdin.read()
    if not value.strip():
        raise click.UsageError(f"{name} is empty" + (" (nothing on standard input)" if from_stdin else ""))
    return value.strip()


@click.group("collections", invoke_without_command=True)
@store_options
@json_option("Print the listing as one JSON object (collections: [...]).")
@click.pass_context
def collections(ctx: click.Context, persist_dir: Path | None, chroma_url: str | None,
                as_json: bool) -> None:
    """List LocalDocs collections (or show / remove one)."""
    ctx.obj = {"persist_dir": persist_dir, "chroma_url": chroma_url, "as_json": as_json}
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_collections_cmd)


@collections.command("list")
@json_option("Print one JSON object: collections, a list of {name, documents, chunks, "
             "embedding_model, dimensionality, chunk_tokens, overlap_tokens, chunker, schema, "
             "revision, updated_at}.")
@click.pass_context
def list_collections_cmd(ctx: click.Context, as_json: bool = False) -> None:
    """List collections with their document and chunk counts."""
    from ..localdocs import list_collections

    with cli_errors():
        rows = list_collections(ctx.obj["persist_dir"], ctx.obj["chroma_url"])
    if as_json or ctx.obj["as_json"]:
        echo_json({"collections": list(rows)})
        return
    if not rows:
        click.echo("no collections")
    for row in rows:
        click.echo(f"{row['name']}: {row['documents']} documents, {row['chunks']} chunks, "
                   f"{row['embedding_model'] or '?'}")


@collections.command("show")
@click.argument("name")
@json_option("Print one JSON object: collection (as in 'list') and documents.")
@click.pass_context
def show_collection(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show how a collection was built and what it holds."""
    from ..localdocs import list_collections, store

    with cli_errors():
        client = store.make_client(ctx.obj["persist_dir"], ctx.obj["chroma_url"])
        st = store.Store(client, name, create=False)
        records = st.file_records()
        info = next((r for r in list_collections(ctx.obj["persist_dir"], ctx.obj["chroma_url"])
                     if r["name"] == name), None)
    if as_json or ctx.obj["as_json"]:
        echo_json({"collection": info, "documents": [
            {"path": r.path, "title": r.title, "n_chunks": r.n_chunks, "state": r.state,
             "origin": r.origin, "size_bytes": r.size_bytes, "mtime": r.mtime}
            for _, r in sorted(records.items())]})
        return
    click.echo(f"collection {name}: {len(records)} documents, {st.count()} chunks")
    for key, value in sorted(st.build_info.items()):
        click.echo(f"  {key}: {value}")
    for path in sorted(records):
        rec = records[path]
        click.echo(f"  {path} ({rec.n_chunks} chunks{'' if rec.state == 'done' else ', unfinished'})")


@collections.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option("Print one JSON object: removed (the name).")
@click.pass_context
def remove_collection(ctx: click.Context, name: str, yes: bool, as_json: bool) -> None:
    """Delete a collection and its bookkeeping (the documents themselves are untouched)."""
    from ..localdocs import store

    with cli_errors():  # an unknown name fails here, before anything is asked
        client = store.make_client(ctx.obj["persist_dir"], ctx.obj["chroma_url"])
        st = store.Store(client, name, create=False)
    if not yes:
        click.confirm(f"Delete collection {name!r} ({st.count()} chunks)?", abort=True)
    with cli_errors():
        st.delete_collection()
    if as_json or ctx.obj["as_json"]:
        echo_json({"removed": name})
        return
    click.echo(f"removed {name}")
