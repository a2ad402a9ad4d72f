"""``gpt4all-rag evaluate``: retrieval quality of LocalDocs on a labelled BEIR data set."""

from __future__ import annotations

from pathlib import Path

import click

from ..embed4all import DEFAULT_MODEL_NAME
from .common import cli_errors, echo_json, json_option

__all__ = ["evaluate"]


@click.command("evaluate")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", default="test", show_default=True,
              help="Qrels file to use: DATA_DIR/qrels/SPLIT.tsv.")
@click.option("--mode", type=click.Choice(["hybrid", "dense", "keyword"]), default="hybrid",
              show_default=True, help="Retrieval mode (hybrid: dense + BM25 scores fused).")
@click.option("--k", "-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Chunks retrieved per query (Recall@10 and MRR@10 see at most k documents).")
@click.option("--candidates", type=click.IntRange(min=1), default=None,
              help="Results each ranking contributes to hybrid fusion [default: max(4k, 20)].")
@click.option("--chunk-tokens", type=click.IntRange(min=16), default=None,
              help="Chunk size of the evaluated index, in embedding-model tokens [default: "
                   "LocalDocs' choice for the model: 128 for all-MiniLM-L6-v2, else 256].")
@click.option("--overlap-tokens", type=click.IntRange(min=0), default=None,
              help="Overlap of consecutive chunks in tokens [default: 16 for all-MiniLM-L6-v2, "
                   "else 32; chunk size / 8 when only --chunk-tokens is given].")
@click.option("--embedding-model", help=f"GGUF embedding model [default: {DEFAULT_MODEL_NAME}].")
@click.option("--embedding-model-path", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the embedding model [default: the model directory].")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for embedding [default: automatic].")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the corpus files (WORK_DIR/docs, replaced) and the index "
                   "(WORK_DIR/chroma, collection rebuilt) here [default: a temporary folder, "
                   "deleted afterwards].")
@json_option("Print the results as one JSON object.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bars [default: bars when stderr is a terminal].")
def evaluate(data_dir: Path, split: str, mode: str, k: int, candidates: int | None,
             chunk_tokens: int | None, overlap_tokens: int | None, embedding_model: str | None,
             embedding_model_path: Path | None, threads: int | None, work_dir: Path | None,
             as_json: bool, quiet: bool) -> None:
    """Index the BEIR data set in DATA_DIR into a fresh collection and score every query.

    DATA_DIR holds corpus.jsonl ({"_id", "title", "text"} per line), queries.jsonl ({"_id",
    "text"}) and qrels/SPLIT.tsv (query-id, corpus-id, score, with a header line). Prints
    Recall@1, Recall@10 and MRR@10 over documents (chunks mapped to the documents they come
    from, repeats removed in rank order).
    """
    from ..localdocs.evaluation import evaluate_localdocs, load_beir

    with cli_errors():
        dataset = load_beir(data_dir, split)
        if not as_json:
            click.echo(f"{dataset.name}: {len(dataset.corpus)} documents, "
                       f"{len(dataset.queries)} queries", err=True)
        report = evaluate_localdocs(
            dataset, mode=mode, k=k, candidates=candidates, work_dir=work_dir,
            progress=False if quiet or as_json else None, embedding_model=embedding_model,
            model_path=embedding_model_path, chunk_tokens=chunk_tokens,
            overlap_tokens=overlap_tokens, n_threads=threads)
    if as_json:
        echo_json({
            "dataset": dataset.name, "split": split, **report.metrics.as_dict(),
            "n_queries": report.metrics.n_queries, "n_documents": report.n_documents,
            "n_chunks": report.n_chunks, "index_s": round(report.index_s, 3),
            "search_s": round(report.search_s, 3), **report.settings})
        return
    s = report.settings
    click.echo(f"mode {s['mode']}, k {s['k']}, {s['embedding_model']}, chunks of "
               f"{s['chunk_tokens']} tokens ({s['overlap_tokens']} overlap)")
    click.echo(f"indexed {report.n_documents} documents into {report.n_chunks} chunks in "
               f"{report.index_s:.1f} s; {report.metrics.n_queries} queries in "
               f"{report.search_s:.1f} s")
    for name, value in report.metrics.as_dict().items():
        click.echo(f"{name:<10} {value:.4f}")
