"""Retrieval: dense nearest neighbours from Chroma fused with BM25 keyword ranking.

Hybrid retrieval (the default) takes the top ``candidates`` chunks of each ranking and fuses
their scores by a convex combination of min-max normalised scores
(:func:`convex_score_fusion`: ``alpha * dense + (1 - alpha) * keyword``, ``alpha = 0.5``;
Bruch, Gai and Ingber, "An Analysis of Fusion Functions for Hybrid Retrieval", ACM TOIS 42(1),
2023, found it ahead of RRF). Reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009:
score = sum over rankings of ``1 / (rrf_k + rank)``, rank starting at 1, ``rrf_k = 60``), which
GPT4All's desktop LocalDocs uses with SQLite FTS5, stays available (``fusion="rrf"``). On the
project's three labelled sets (``bench/bench_levers.py``, ``bench/bench_retrieval.py``) the
convex combination raised MRR@10 over RRF on each set (mean +0.015) and Recall@10 too.

The keyword index is BM25 (Robertson and Zaragoza 2009; ``k1 = 1.5``, ``b = 0.75``, the
``bm25s`` package) built from the chunk texts stored in the Chroma collection itself, so it is
the same on every machine that shares a Chroma server. It is built on the first keyword query
and rebuilt when the collection's revision counter changes; each build is persisted in a local
cache folder (:mod:`gpt4all_rag.localdocs.keyword_cache`), so a fresh process loads the index
of the current revision instead of reading every chunk again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Collection, Literal, Mapping, Sequence

import numpy as np

from .. import paths
from ..errors import InvalidParameterError
from .keyword_cache import KeywordCache
from .records import StoredChunk
from .store import Store

#: The most results one search returns (hybrid search asks Chroma for 4k candidates, and
#: Chroma's counts are 32-bit).
MAX_K = 10_000


def check_k(k: Any) -> None:
    """Raises InvalidParameterError unless ``k`` is an integer from 1 to :data:`MAX_K`."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidParameterError(f"k must be an integer from 1 to {MAX_K:,}, got {k!r}")


__all__ = ["MAX_K", "check_k", "KeywordIndex", "SearchResult", "SearchResults", "convex_score_fusion", "search_collections",
           "hybrid_search", "keyword_query", "reciprocal_rank_fusion"]

logger = logging.getLogger("gpt4all_rag.localdocs")

RRF_K = 60
#: Weight of the dense ranking in :func:`convex_score_fusion` (the keyword ranking gets the rest).
DENSE_WEIGHT = 0.5
#: Query terms the keyword side scores at most (the first ones, after tokenizing): BM25's cost
#: grows with a query's terms, and a question needs far fewer; a pasted page costs no more
#: than this. The dense side reads at most its model's context (the first window).
MAX_KEYWORD_TERMS = 256
Mode = Literal["hybrid", "dense", "keyword"]
Fusion = Literal["convex", "rrf"]


@dataclass(frozen=True)
class SearchResult:
    """A retrieved chunk.

    Attributes:
        text: the chunk's text.
        score: ``"hybrid"``: fused score (convex fusion: in [0, 1]; ``fusion="rrf"``: the RRF
            score); ``"dense"``: cosine similarity in [-1, 1]; ``"keyword"``: BM25 score.
            Higher is better.
        path: absolute path of the source document.
        title: the document's title.
        page: 1-based PDF page, or None.
        start_line, end_line: 1-based inclusive line span in the file, or None (HTML, DOCX).
        heading: heading path at the chunk ("Install > Linux"), or None.
        chunk_id: the chunk's id in the collection (``<doc_id>:<index>``).
        ranks: the chunk's rank (1-based) in each ranking that found it, e.g.
            ``{"dense": 2, "keyword": 1}``.
        origin: ``"file"`` (a chunk of an indexed file) or ``"text"`` (a text added with
            :meth:`~gpt4all_rag.localdocs.LocalDocs.add_texts`).
        metadata: an added text's own metadata, exactly as given; ``{}`` for file chunks.
        embedding: the chunk's vector (``list[float]``, unit length) where the search was
            asked for it (``search_by_vector(..., with_embeddings=True)``), else None.
    """

    text: str
    score: float
    path: str
    title: str
    page: int | None
    start_line: int | None
    end_line: int | None
    heading: str | None
    chunk_id: str
    ranks: dict[str, int] = field(default_factory=dict)
    origin: str = "file"
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    embedding: list[float] | None = field(default=None, repr=False, compare=False)

    def location(self) -> str:
        """Where the chunk is: ``"page 3"``, ``"lines 10-24"`` or ``""``."""
        if self.page is not None:
            return f"page {self.page}"
        if self.start_line is not None and self.end_line is not None:
            return f"line {self.start_line}" if self.start_line == self.end_line else \
                f"lines {self.start_line}-{self.end_line}"
        return ""

    def citation(self) -> str:
        """``path, page 3`` / ``path, lines 10-24`` / ``path``."""
        where = self.location()
        return f"{self.path}, {where}" if where else self.path

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data, the keys of ``gpt4all-rag search --json``: ``text``,
        ``score``, ``path``, ``title``, ``page``, ``start_line``, ``end_line``, ``heading``,
        ``chunk_id``, ``citation``, ``ranks``, ``origin``, ``metadata``."""
        return {"text": self.text, "score": self.score, "path": self.path, "title": self.title,
                "page": self.page, "start_line": self.start_line, "end_line": self.end_line,
                "heading": self.heading, "chunk_id": self.chunk_id, "citation": self.citation(),
                "ranks": dict(self.ranks), "origin": self.origin, "metadata": dict(self.metadata)}

    def _repr_html_(self) -> str:
        from .display import search_results_html

        return search_results_html([self])

    @classmethod
    def from_stored(cls, chunk: StoredChunk, score: float, ranks: dict[str, int]) -> "SearchResult":
        """A result from a stored chunk (metadata as :mod:`~gpt4all_rag.localdocs.store`
        writes it)."""
        m = chunk.metadata
        own = m.get("g4r_metadata")
        return cls(text=chunk.text, score=float(score), path=str(m.get("path", "")),
                   title=str(m.get("title", "")), page=_opt_int(m.get("page")),
                   start_line=_opt_int(m.get("start_line")), end_line=_opt_int(m.get("end_line")),
                   heading=m.get("heading"), chunk_id=chunk.chunk_id, ranks=dict(ranks),
                   origin=str(m.get("origin", "file")),
                   metadata=json.loads(own) if isinstance(own, str) else {},
                   embedding=None if chunk.embedding is None else list(chunk.embedding))


class SearchResults(list[SearchResult]):
    """A list of :class:`SearchResult`, best first, that Jupyter shows as a table.

    It is a plain ``list`` in every other way (indexing, iteration, ``==`` with lists).
    """

    def as_dicts(self) -> list[dict[str, Any]]:
        """Each result's :meth:`SearchResult.as_dict`, with ``rank`` (1-based) first."""
        return [{"rank": i, **r.as_dict()} for i, r in enumerate(self, start=1)]

    def _repr_html_(self) -> str:
        from .display import search_results_html

        return search_results_html(self)


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def search_collections(collections: Sequence[Any], query: str, k: int = 4, *,
                       mode: Mode = "hybrid", candidates: int | None = None,
                       filter: Any = None) -> SearchResults:  # noqa: A002 - LocalDocs.search's name
    """Search several LocalDocs collections and fuse their results into one list of ``k``.

    The one way several collections are searched together: the server's ``localdocs`` field,
    ``chat_session(localdocs=[...])`` and the integrations call it.

    Scores are not compared across collections: each collection's are on its own scale (hybrid
    scores are normalised per collection and per query, so every collection's best hit scores
    about 1.0, and BM25 scores depend on each collection's statistics). Their rankings are
    fused instead, by reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009:
    ``sum 1 / (60 + rank)``), which needs only ranks; equal fused scores keep the order of
    ``collections``.

    Args:
        collections: :class:`~gpt4all_rag.localdocs.LocalDocs` objects (anything with their
            ``search``), at least one.
        query: the search text.
        k: results to return (>= 1); each collection is asked for ``k``.
        mode, candidates, filter: as for ``LocalDocs.search``, in every collection.

    Returns:
        At most ``k`` results, best first. One collection: its own results and scores;
        several: each result's ``score`` is its fused RRF score.

    Raises:
        InvalidParameterError: no collection, or as ``LocalDocs.search``.
        CollectionNotFoundError, StoreError: as ``LocalDocs.search``.
    """
    if not collections:
        raise InvalidParameterError("search_collections needs at least one collection")
    per = [list(ld.search(query, k, mode=mode, candidates=candidates, filter=filter))
           for ld in collections]
    if len(per) == 1:
        return SearchResults(per[0])
    fused = reciprocal_rank_fusion({str(i): [f"{i}:{j}" for j in range(len(r))]
                                    for i, r in enumerate(per)})
    out = SearchResults()
    for key, score, _ in fused[:k]:
        i, j = map(int, key.split(":"))
        out.append(replace(per[i][j], score=score))
    return out


def reciprocal_rank_fusion(rankings: dict[str, Sequence[str]], rrf_k: int = RRF_K) -> list[tuple[str, float, dict[str, int]]]:
    """Fuse ranked id lists: ``[(id, score, {ranking: rank})]`` by descending score.

    Ties are broken by the best single rank, then by id, so the order is deterministic.
    """
    scores: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    for name, ids in rankings.items():
        for rank, cid in enumerate(ids, start=1):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (rrf_k + rank)
            ranks.setdefault(cid, {})[name] = rank
    return sorted(((cid, s, ranks[cid]) for cid, s in scores.items()),
                  key=lambda t: (-t[1], min(t[2].values()), t[0]))


def convex_score_fusion(rankings: dict[str, Sequence[tuple[str, float]]],
                        weights: Mapping[str, float]) -> list[tuple[str, float, dict[str, int]]]:
    """Fuse scored rankings by a convex combination of min-max normalised scores.

    Each ranking's scores are scaled to [0, 1] over its own candidates (best 1, worst 0; all
    1 when they are equal); a candidate missing from a ranking gets 0 there; the fused score
    is ``sum(weights[name] * scaled)``. This is the convex combination (CC) with min-max
    normalisation of Bruch, Gai and Ingber, "An Analysis of Fusion Functions for Hybrid
    Retrieval" (ACM TOIS 42(1), 2023), which they found ahead of RRF in and out of domain.

    Args:
        rankings: ``{name: [(id, score), ...]}``, each best first (higher score is better).
        weights: ``{name: weight}`` for every ranking (usually summing to 1).

    Returns:
        ``[(id, fused score, {ranking: rank})]`` by descending score; ties broken by the best
        single rank, then by id, so the order is deterministic.
    """
    scores: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    for name, items in rankings.items():
        if not items:
            continue
        values = [s for _, s in items]
        low, span = min(values), max(values) - min(values)
        for rank, (cid, score) in enumerate(items, start=1):
            scaled = (score - low) / span if span > 0 else 1.0
            scores[cid] = scores.get(cid, 0.0) + weights[name] * scaled
            ranks.setdefault(cid, {})[name] = rank
    return sorted(((cid, s, ranks[cid]) for cid, s in scores.items()),
                  key=lambda t: (-t[1], min(t[2].values()), t[0]))


_QUESTION_OPENER = re.compile(
    r"^\s*(?:(?:what|which|who|where|when|why|how)(?:'s)?\b(?:\s+(?:is|are|was|were|do|does|did|"
    r"can|could|should|would|will|i|you|we|one|to|the|a|an|of|kind|sort|type|many|much|about)\b)*"
    r"|(?:is|are|can|could|does|do|should)\s+(?:there|it|i|you|we)\b(?:\s+(?:a|an|the|to|way)\b)*)",
    re.I)


def keyword_query(query: str) -> str:
    """The query as the keyword side searches it: without a question opener ("What is",
    "How do I", "Is there a way to") and a final question mark, so that BM25 does not match
    documents on "what" or "how" (bm25s' English stop words keep them); the query unchanged
    when nothing else would remain. The dense side sees the whole question.

    Measured (``bench/bench_levers.py``): no change on the three labelled sets (their queries
    are not questions); on their term queries asked as "What is X?", MRR@10 0.784 -> 0.797.
    """
    rest = _QUESTION_OPENER.sub("", query).strip().rstrip("?").strip()
    return rest or query


class KeywordIndex:
    """BM25 over a store's chunk texts, rebuilt when the store's revision changes.

    The index of a revision is loaded from the local cache when it is there and written to it
    after a build (:mod:`~gpt4all_rag.localdocs.keyword_cache`), under a file lock so that
    processes starting together build it once. An index is neither loaded nor written while
    the collection is being written (``g4r_writing``, see
    :meth:`~gpt4all_rag.localdocs.store.Store.content_state`), nor written when the content
    state changed while it was being built: a cached entry always holds the content of its
    revision.

    Args:
        store: the collection.
        cache_directory: root of the cache (None: :func:`gpt4all_rag.paths.bm25_cache_directory`,
            ``$GPT4ALL_RAG_BM25_CACHE`` else ``~/.cache/gpt4all-rag/bm25``).

    Thread-safe: concurrent searches share one index; a rebuild happens once.
    """

    def __init__(self, store: Store, *, cache_directory: str | os.PathLike[str] | None = None) -> None:
        self.store = store
        self.cache_directory = os.fspath(cache_directory) if cache_directory is not None \
            else str(paths.bm25_cache_directory())
        self._lock = threading.Lock()
        self._state: tuple[int, bool] | None = None
        self._cache: KeywordCache | None = None
        self._ids: list[str] = []
        self._bm25: Any = None
        #: Where the current index came from: ``"cache"``, ``"built"`` or None (none yet).
        self.source: str | None = None

    def _ensure(self) -> None:
        state = self.store.content_state()
        with self._lock:
            if self._state == state:
                return
            revision, writing = state
            if self._cache is None:
                self._cache = KeywordCache(self.cache_directory, self.store.cache_identity)
            cache = self._cache
            if writing:  # content in flux: build for this process only
                self._set(state, *self._build(), "built")
                return
            loaded = cache.load(revision)
            if loaded is not None:
                self._set(state, loaded.ids, loaded.bm25, "cache")
                return
            lock = self._acquire(cache)
            try:
                loaded = cache.load(revision) if lock is not None else None  # another process's
                if loaded is not None:
                    self._set(state, loaded.ids, loaded.bm25, "cache")
                    return
                ids, bm25 = self._build()
                if lock is not None and bm25 is not None and self.store.content_state() == state:
                    cache.save(revision, ids, bm25)
                self._set(state, ids, bm25, "built")
            finally:
                if lock is not None:
                    lock.release()

    @staticmethod
    def _acquire(cache: KeywordCache) -> Any:
        """The cache's file lock, acquired; None when that fails (logged: no persisting)."""
        from filelock import Timeout

        try:
            lock = cache.lock()
            lock.acquire()
            return lock
        except (OSError, Timeout) as exc:
            logger.warning("keyword index cache %s unavailable (%s: %s); building without it",
                           cache.folder, type(exc).__name__, exc)
            return None

    def _set(self, state: tuple[int, bool], ids: list[str], bm25: Any, source: str) -> None:
        self._state, self._ids, self._bm25, self.source = state, ids, bm25, source

    def _build(self) -> tuple[list[str], Any]:
        """BM25 over every chunk of the store: ``(ids, index)``; index None when no chunk has a
        term (none at all, or only stopwords)."""
        import bm25s

        ids, texts = [], []
        for chunk in self.store.all_chunks():
            ids.append(chunk.chunk_id)
            texts.append(chunk.text)
        if not texts:
            return ids, None
        tokens = bm25s.tokenize(texts, stopwords="en", show_progress=False)
        if not tokens.vocab:  # only stopwords and punctuation: no term to score (bm25s fails)
            return ids, None
        retriever = bm25s.BM25(k1=1.5, b=0.75)
        retriever.index(tokens, show_progress=False)
        return ids, retriever

    def search(self, query: str, k: int, *,
               allowed: Collection[str] | None = None) -> list[tuple[str, float]]:
        """Top ``k`` chunk ids by BM25 score (only chunks sharing a term with the query).

        Args:
            query: the query text (a question opener is dropped first, :func:`keyword_query`);
                only its first :data:`MAX_KEYWORD_TERMS` terms are scored.
            k: at most this many.
            allowed: only these chunk ids (a metadata filter's matches); None: all.

        Raises:
            StoreError: Chroma failed while the index was being loaded or built (a cache that
                cannot be read or written is logged and skipped, never raised).
        """
        self._ensure()
        if self._bm25 is None or k <= 0 or (allowed is not None and not allowed):
            return []
        import bm25s

        terms = bm25s.tokenize([keyword_query(query)], stopwords="en", show_progress=False,
                               return_ids=False)[0][:MAX_KEYWORD_TERMS]
        if not terms:
            return []
        k = min(k, len(self._ids))
        mask = None
        if allowed is not None:
            keep = set(allowed)
            mask = np.fromiter((cid in keep for cid in self._ids), dtype=np.float32, count=len(self._ids))
        docs, scores = self._bm25.retrieve([terms], k=k, show_progress=False, n_threads=1,
                                           weight_mask=mask)
        return [(self._ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]


def hybrid_search(store: Store, keyword_index: KeywordIndex, embed_query: Callable[[str], Sequence[float]],
                  query: str, k: int = 4, *, mode: Mode = "hybrid", candidates: int | None = None,
                  rrf_k: int = RRF_K, where: Mapping[str, Any] | None = None,
                  fusion: Fusion = "convex", dense_weight: float = DENSE_WEIGHT) -> SearchResults:
    """Retrieve the ``k`` best chunks for ``query``.

    Args:
        store: the collection.
        keyword_index: its BM25 index.
        embed_query: the query embedding function (with the model's query prefix).
        query: the question, non-empty.
        k: number of results (>= 1).
        mode: ``"hybrid"`` (dense + BM25, fused), ``"dense"`` or ``"keyword"``.
        candidates: how many results each ranking contributes before fusion (default
            ``max(4 * k, 20)``).
        rrf_k: the RRF constant (``fusion="rrf"`` only).
        where: a Chroma metadata filter (:func:`~gpt4all_rag.localdocs.filters.to_where`):
            both rankings only see the chunks it matches.
        fusion: ``"convex"`` (default: :func:`convex_score_fusion` of cosine similarities and
            BM25 scores) or ``"rrf"`` (:func:`reciprocal_rank_fusion`, GPT4All desktop's).
        dense_weight: the dense ranking's weight in convex fusion, in [0, 1] (default 0.5;
            BM25 gets ``1 - dense_weight``).

    Raises:
        InvalidParameterError: empty query, k outside 1..MAX_K, unknown mode or fusion, ``dense_weight``
            outside [0, 1].
    """
    if not isinstance(query, str) or not query.strip():
        raise InvalidParameterError("the query must be a non-empty string")
    check_k(k)
    if mode not in ("hybrid", "dense", "keyword"):
        raise InvalidParameterError(f"mode must be 'hybrid', 'dense' or 'keyword', got {mode!r}")
    if fusion not in ("convex", "rrf"):
        raise InvalidParameterError(f"fusion must be 'convex' or 'rrf', got {fusion!r}")
    if isinstance(dense_weight, bool) or not isinstance(dense_weight, (int, float)) \
            or not 0.0 <= dense_weight <= 1.0:
        raise InvalidParameterError(f"dense_weight must be a number in [0, 1], got {dense_weight!r}")
    n = candidates or max(4 * k, 20)
    dense: list[tuple[str, float]] = []
    keyword: list[tuple[str, float]] = []
    if mode == "dense":
        found = store.query(np.asarray(embed_query(query), dtype=np.float64), k, where=where)
        return SearchResults(SearchResult.from_stored(c, s, {"dense": i})
                             for i, (c, s) in enumerate(found, 1))
    if mode == "hybrid":
        # Candidates by id only: the texts and metadata of the k fused results are read after.
        dense = store.nearest_ids(np.asarray(embed_query(query), dtype=np.float64), n, where=where)
    if mode in ("hybrid", "keyword"):
        allowed = store.ids_matching(where) if where else None
        keyword = keyword_index.search(query, n if mode == "hybrid" else k, allowed=allowed)
        if mode == "keyword":
            chunks = store.get_chunks([cid for cid, _ in keyword])
            return SearchResults(SearchResult.from_stored(chunks[cid], s, {"keyword": i})
                                 for i, (cid, s) in enumerate(keyword, 1) if cid in chunks)
    if fusion == "rrf":
        fused = reciprocal_rank_fusion({"dense": [cid for cid, _ in dense],
                                        "keyword": [cid for cid, _ in keyword]}, rrf_k)[:k]
    else:
        fused = convex_score_fusion({"dense": dense, "keyword": keyword},
                                    {"dense": dense_weight, "keyword": 1.0 - dense_weight})[:k]
    known = store.get_chunks([cid for cid, _, _ in fused])
    return SearchResults(SearchResult.from_stored(known[cid], score, ranks)
                         for cid, score, ranks in fused if cid in known)
