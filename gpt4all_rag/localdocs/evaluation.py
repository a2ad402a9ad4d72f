"""Retrieval quality of a LocalDocs configuration on a labelled data set in BEIR format.

Data format (BEIR, Thakur et al., "BEIR: A Heterogeneous Benchmark for Zero-shot Evaluation
of Information Retrieval Models", NeurIPS 2021 Datasets and Benchmarks; the layout of its
``GenericDataLoader``), in one folder:

* ``corpus.jsonl``: one JSON object per line, ``{"_id": str, "title": str, "text": str}``
  (``title`` may be missing or empty);
* ``queries.jsonl``: ``{"_id": str, "text": str}`` per line (other keys are ignored);
* ``qrels/<split>.tsv``: tab-separated ``query-id``, ``corpus-id``, ``score`` (an integer),
  after a header line ``query-id corpus-id score``.

Metrics are document-level: the chunks a search returns are mapped to the corpus documents
they come from and de-duplicated in rank order (a document's rank is that of its best
chunk), so a search for ``k`` chunks yields a ranking of at most ``k`` documents. With
``R(q)`` the relevant documents of query ``q`` (qrels score >= 1, as BEIR's ``pytrec_eval``
counts them) and ``D(q)`` the ranked documents:

* ``Recall@k(q) = |R(q) ∩ D(q)[:k]| / |R(q)|`` (BEIR's ``recall_k``);
* ``RR@k(q) = 1 / rank`` of the first relevant document within ``D(q)[:k]``, 0 if none
  (MRR@10 is the official metric of MS MARCO passage ranking, Nguyen et al. 2016, and of
  BEIR's ``evaluate_custom(..., "mrr")``);
* each metric is averaged over the queries that have at least one relevant document.

Queries listed in the qrels but not in ``queries.jsonl``, and qrels naming documents missing
from the corpus, are errors that name the offending ids: a broken data set is reported, not
half-evaluated.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import CollectionNotFoundError, DatasetError, InvalidParameterError

__all__ = [
    "BeirDataset", "DatasetError", "EvaluationReport", "Metrics", "evaluate_localdocs",
    "evaluate_run", "load_beir", "recall_at_k", "reciprocal_rank", "retrieve", "write_corpus",
]


@dataclass(frozen=True)
class BeirDataset:
    """A labelled retrieval data set.

    Attributes:
        corpus: ``{doc_id: (title, text)}`` in file order.
        queries: ``{query_id: text}`` for the queries that have qrels, in file order.
        qrels: ``{query_id: {doc_id: score}}``; a score >= 1 means relevant.
        name: the folder's name.
    """

    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    name: str = ""


@dataclass(frozen=True)
class Metrics:
    """Mean document-level metrics over ``n_queries`` queries (see the module docstring)."""

    recall_at_1: float
    recall_at_10: float
    mrr_at_10: float
    n_queries: int

    def as_dict(self) -> dict[str, float]:
        return {"Recall@1": self.recall_at_1, "Recall@10": self.recall_at_10,
                "MRR@10": self.mrr_at_10}

    def __str__(self) -> str:
        return "  ".join(f"{k} {v:.3f}" for k, v in self.as_dict().items()) + \
            f"  ({self.n_queries} queries)"


@dataclass
class EvaluationReport:
    """What :func:`evaluate_localdocs` measured.

    Attributes:
        metrics: the scores.
        run: ``{query_id: [doc_id, ...]}``, the document ranking of every query.
        n_documents: corpus documents written and indexed.
        n_chunks: chunks in the collection.
        index_s: seconds spent indexing (embedding included).
        search_s: seconds spent running every query.
        settings: the LocalDocs settings and search parameters used.
    """

    metrics: Metrics
    run: dict[str, list[str]]
    n_documents: int
    n_chunks: int
    index_s: float
    search_s: float
    settings: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- loading

def load_beir(data_dir: str | os.PathLike[str], split: str = "test") -> BeirDataset:
    """Read a BEIR data folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).

    Args:
        data_dir: the folder.
        split: which qrels file to read (``"test"``: ``qrels/test.tsv``).

    Returns:
        A :class:`BeirDataset` holding only the queries that appear in the qrels.

    Raises:
        DatasetError: (a ValueError) a file is missing or unreadable; a line is not a JSON
            object or lacks ``_id`` / ``text``; an id repeats; a qrels line does not have three
            tab-separated fields with an integer score; the header is not
            ``query-id corpus-id score``; the qrels name an unknown query or document; no
            query has a relevant document.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DatasetError(f"BEIR data folder {str(root)!r} does not exist")
    corpus: dict[str, tuple[str, str]] = {}
    for where, obj in _jsonl(root / "corpus.jsonl"):
        doc_id = _field(obj, "_id", where)
        if doc_id in corpus:
            raise DatasetError(f"{where}: duplicate document id {doc_id!r}")
        title = obj.get("title") or ""
        if not isinstance(title, str):
            raise DatasetError(f"{where}: 'title' must be a string, got {type(title).__name__}")
        corpus[doc_id] = (title, _field(obj, "text", where, allow_empty=True))
    if not corpus:
        raise DatasetError(f"{root / 'corpus.jsonl'}: no documents")
    queries: dict[str, str] = {}
    for where, obj in _jsonl(root / "queries.jsonl"):
        query_id = _field(obj, "_id", where)
        if query_id in queries:
            raise DatasetError(f"{where}: duplicate query id {query_id!r}")
        queries[query_id] = _field(obj, "text", where)
    qrels = _read_qrels(root / "qrels" / f"{split}.tsv")
    unknown_q = sorted(set(qrels) - set(queries))
    if unknown_q:
        raise DatasetError(f"qrels/{split}.tsv names {len(unknown_q)} query id(s) missing from "
                           f"queries.jsonl, e.g. {unknown_q[:3]}")
    unknown_d = sorted({d for rels in qrels.values() for d in rels} - set(corpus))
    if unknown_d:
        raise DatasetError(f"qrels/{split}.tsv names {len(unknown_d)} document id(s) missing "
                           f"from corpus.jsonl, e.g. {unknown_d[:3]}")
    if not any(s >= 1 for rels in qrels.values() for s in rels.values()):
        raise DatasetError(f"qrels/{split}.tsv has no relevant (score >= 1) judgement")
    return BeirDataset(corpus, {q: t for q, t in queries.items() if q in qrels}, qrels,
                       root.resolve().name)


def _jsonl(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    try:
        f = open(path, encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with f:
        try:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path.name} line {number}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{where}: not JSON ({exc.msg})") from exc
                if not isinstance(obj, dict):
                    raise DatasetError(f"{where}: expected a JSON object, got {type(obj).__name__}")
                yield where, obj
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _field(obj: Mapping[str, Any], key: str, where: str, allow_empty: bool = False) -> str:
    if key not in obj:
        raise DatasetError(f"{where}: missing {key!r}")
    value = obj[key]
    if isinstance(value, int) and not isinstance(value, bool) and key == "_id":
        value = str(value)  # some BEIR sets write numeric ids
    if not isinstance(value, str):
        raise DatasetError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise DatasetError(f"{where}: {key!r} is empty")
    return value


_HEADER = ["query-id", "corpus-id", "score"]


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    try:
        f = open(path, encoding="utf-8", newline="")
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from exc
    qrels: dict[str, dict[str, int]] = {}
    with f:
        try:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    rows_numbered = [(n, r) for n, r in enumerate(rows, 1) if any(c.strip() for c in r)]
    if not rows_numbered:
        raise DatasetError(f"{path}: empty")
    number, header = rows_numbered[0]
    if [c.strip() for c in header] != _HEADER:
        raise DatasetError(f"{path.name} line {number}: expected the header "
                           f"'query-id<TAB>corpus-id<TAB>score', got {header!r}")
    for number, row in rows_numbered[1:]:
        where = f"{path.name} line {number}"
        if len(row) != 3:
            raise DatasetError(f"{where}: expected 3 tab-separated fields, got {len(row)}: {row!r}")
        query_id, doc_id, score = (c.strip() for c in row)
        if not query_id or not doc_id:
            raise DatasetError(f"{where}: empty query or corpus id")
        if not re.fullmatch(r"-?\d+", score):
            raise DatasetError(f"{where}: score must be an integer, got {score!r}")
        qrels.setdefault(query_id, {})[doc_id] = int(score)
    if not qrels:
        raise DatasetError(f"{path}: no judgements after the header")
    return qrels


# --------------------------------------------------------------------------- metrics

def recall_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """``|relevant ∩ ranked[:k]| / |relevant|`` (0.0 when nothing is relevant).

    Args:
        ranked: document ids, best first, without repeats.
        relevant: the relevant document ids.
        k: the cut-off (>= 1).

    Raises:
        InvalidParameterError: ``k < 1``.
    """
    _check_k(k)
    wanted = set(relevant)
    if not wanted:
        return 0.0
    return len(wanted.intersection(ranked[:k])) / len(wanted)


def reciprocal_rank(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """``1 / rank`` (1-based) of the first relevant id in ``ranked[:k]``, else 0.0.

    Raises:
        InvalidParameterError: ``k < 1``.
    """
    _check_k(k)
    wanted = set(relevant)
    for rank, doc_id in enumerate(ranked[:k], 1):
        if doc_id in wanted:
            return 1.0 / rank
    return 0.0


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidParameterError(f"k must be a positive integer, got {k!r}")


def evaluate_run(run: Mapping[str, Sequence[str]],
                 qrels: Mapping[str, Mapping[str, int]]) -> Metrics:
    """Recall@1, Recall@10 and MRR@10 of a run, averaged over the judged queries.

    Args:
        run: ``{query_id: [doc_id, ...]}``, best first; repeated ids count once, at their
            first rank. A judged query missing from the run scores 0.
        qrels: ``{query_id: {doc_id: score}}``; score >= 1 is relevant. Queries without a
            relevant document are not counted.

    Returns:
        :class:`Metrics`.

    Raises:
        InvalidParameterError: no query in ``qrels`` has a relevant document.
    """
    judged = {q: {d for d, s in rels.items() if s >= 1} for q, rels in qrels.items()}
    judged = {q: rel for q, rel in judged.items() if rel}
    if not judged:
        raise InvalidParameterError("no query has a relevant document: nothing to evaluate")
    r1 = r10 = mrr = 0.0
    for query_id, relevant in judged.items():
        ranked = _dedupe(run.get(query_id, ()))
        r1 += recall_at_k(ranked, relevant, 1)
        r10 += recall_at_k(ranked, relevant, 10)
        mrr += reciprocal_rank(ranked, relevant, 10)
    n = len(judged)
    return Metrics(r1 / n, r10 / n, mrr / n, n)


def _dedupe(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


# --------------------------------------------------------------------------- LocalDocs

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def write_corpus(dataset: BeirDataset, folder: str | os.PathLike[str]) -> dict[str, str]:
    """Write one Markdown file per corpus document: ``# title`` (if any), a blank line, text.

    File names are the document ids with characters outside ``[A-Za-z0-9._-]`` replaced by
    ``_`` (a numeric suffix keeps colliding names apart), plus ``.md``. Documents whose text
    and title are both blank are not written (nothing to index).

    Args:
        dataset: the data set.
        folder: where to write (created if needed; existing files of the same name are
            replaced).

    Returns:
        ``{absolute path: doc_id}`` of the files written.
    """
    root = Path(folder).resolve()
    root.mkdir(parents=True, exist_ok=True)
    paths: dict[str, str] = {}
    used: set[str] = set()
    for doc_id, (title, text) in dataset.corpus.items():
        if not text.strip() and not title.strip():
            continue
        stem = _UNSAFE.sub("_", doc_id).strip("._-")[:120] or "doc"
        name, n = stem, 1
        while name.lower() in used:
            n += 1
            name = f"{stem}-{n}"
        used.add(name.lower())
        path = root / f"{name}.md"
        heading = " ".join(title.split())
        body = f"# {heading}\n\n{text.strip()}\n" if heading else f"{text.strip()}\n"
        path.write_text(body, encoding="utf-8")
        paths[str(path)] = doc_id
    return paths


def retrieve(search: Callable[[str], Sequence[Any]], queries: Mapping[str, str],
             path_to_doc: Mapping[str, str]) -> dict[str, list[str]]:
    """Run every query and map the chunks found to document ids, de-duplicated in rank order.

    Args:
        search: returns chunks (objects with a ``path`` attribute, such as
            :class:`~gpt4all_rag.localdocs.SearchResult`), best first, for a query.
        queries: ``{query_id: text}``.
        path_to_doc: ``{absolute path: doc_id}`` from :func:`write_corpus`. Chunks of other
            files are ignored.

    Returns:
        ``{query_id: [doc_id, ...]}``.
    """
    run: dict[str, list[str]] = {}
    for query_id, text in queries.items():
        docs = (path_to_doc.get(r.path) for r in search(text))
        run[query_id] = _dedupe(d for d in docs if d is not None)
    return run


def evaluate_localdocs(dataset: BeirDataset, *, mode: str = "hybrid", k: int = 10,
                       candidates: int | None = None,
                       work_dir: str | os.PathLike[str] | None = None,
                       collection: str = "beir-eval", progress: bool | None = None,
                       **localdocs_kwargs: Any) -> EvaluationReport:
    """Index a BEIR corpus into a fresh LocalDocs collection and score every query.

    The corpus documents are written as Markdown files (:func:`write_corpus`) into
    ``<work_dir>/docs`` (deleted first if it exists) and indexed into a fresh collection of an
    embedded Chroma database in ``<work_dir>/chroma``, or of the Chroma server at
    ``chroma_url`` if one is passed (a collection of that name is deleted first, in either
    place). Then each query is searched for ``k`` chunks and the chunks are mapped to the
    documents they come from.

    Args:
        dataset: from :func:`load_beir`.
        mode: ``"hybrid"``, ``"dense"`` or ``"keyword"`` (see :meth:`LocalDocs.search`).
        k: chunks retrieved per query (default 10); the document ranking is at most ``k``
            long, so with ``k < 10`` Recall@10 and MRR@10 only see ``k`` results.
        candidates: results each ranking contributes to hybrid fusion (None: LocalDocs'
            default).
        work_dir: folder for the files and the database (None: a temporary folder, removed
            afterwards).
        collection: collection name.
        progress: bars over indexing and the queries (:mod:`tqdm.auto`). None: in a Jupyter
            kernel and when stderr is a terminal; True: always; False: never.
        **localdocs_kwargs: passed to :class:`~gpt4all_rag.localdocs.LocalDocs`
            (``embedding_model``, ``model_path``, ``chunk_tokens``, ``overlap_tokens``,
            ``n_threads``, ``chroma_url``, prefixes). ``persist_directory`` and ``reindex`` are
            chosen here.

    Returns:
        An :class:`EvaluationReport`.

    Raises:
        InvalidParameterError: bad ``mode``, ``k``, ``progress`` or LocalDocs settings.
        StoreError: Chroma failed.
        ModelNotFoundError, ModelLoadError: the embedding model is unavailable.
    """
    from .._progress import progress_bar, show_progress
    from .localdocs import LocalDocs

    show = show_progress(progress)
    if mode not in ("hybrid", "dense", "keyword"):
        raise InvalidParameterError(f"mode must be 'hybrid', 'dense' or 'keyword', got {mode!r}")
    _check_k(k)
    for key in ("persist_directory", "reindex"):
        if key in localdocs_kwargs:
            raise InvalidParameterError(f"{key} is chosen by evaluate_localdocs; pass work_dir")
    temporary = work_dir is None
    root = Path(tempfile.mkdtemp(prefix="g4r-eval-") if temporary else work_dir)  # type: ignore[arg-type]
    try:
        docs_dir = root / "docs"
        if docs_dir.exists():
            shutil.rmtree(docs_dir)
        path_to_doc = write_corpus(dataset, docs_dir)
        with LocalDocs(collection, persist_directory=root / "chroma", **localdocs_kwargs) as ld:
            try:
                ld.remove()
            except CollectionNotFoundError:
                pass  # already fresh
            start = time.perf_counter()
            ld.index(docs_dir, progress=show)
            index_s = time.perf_counter() - start
            start = time.perf_counter()
            with progress_bar(enabled=show, total=len(dataset.queries), desc="queries",
                              unit="query") as bar:
                def search(query: str) -> Sequence[Any]:
                    found = ld.search(query, k, mode=mode, candidates=candidates)  # type: ignore[arg-type]
                    bar.update(1)
                    return found

                run = retrieve(search, dataset.queries, path_to_doc)
            search_s = time.perf_counter() - start
            n_chunks = int(ld.stats()["chunks"])
            settings = {"mode": mode, "k": k, "candidates": candidates,
                        "embedding_model": ld.embedding_model, "chunk_tokens": ld.chunk_tokens,
                        "overlap_tokens": ld.overlap_tokens}
        return EvaluationReport(evaluate_run(run, dataset.qrels), run, len(path_to_doc),
                                n_chunks, index_s, search_s, settings)
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
