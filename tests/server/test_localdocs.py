"""LocalDocs end to end on real documents, against the embedded store and a real Chroma server.

One collection per backend is indexed once (module scope) from a folder holding a document
of every supported kind and a set of files that must be refused; the tests search it, check
the source spans against the files, reopen it (new object, new process, plain chromadb) and
check the errors users get.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gpt4all_rag.errors import (
    CollectionMismatchError,
    CollectionNotFoundError,
    InvalidParameterError,
    StoreError,
)
from gpt4all_rag.localdocs import (
    IndexReport,
    LocalDocs,
    SearchResult,
    build_prompt,
    format_sources,
)
from gpt4all_rag.localdocs.retrieval import Mode

from . import corpus
from .support import (
    N_THREADS,
    Backend,
    jsonable,
    open_localdocs,
    plain_client,
    run_worker,
    with_name,
)

MODES: tuple[Mode, ...] = ("hybrid", "dense", "keyword")
LINE_KINDS = (".md", ".txt", ".rst", ".py")
MINILM = "all-MiniLM-L6-v2.gguf2.f16.gguf"


@dataclass
class Indexed:
    """A collection indexed once for the module."""

    backend: Backend
    ld: LocalDocs
    report: IndexReport
    folder: Path
    paths: dict[str, Path]
    model_dir: Path


@pytest.fixture(scope="module")
def kinds_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("kinds")
    paths = corpus.write_kinds(folder)
    corpus.write_bad_files(folder)
    return folder, paths


@pytest.fixture(scope="module")
def indexed(module_backend: Backend, kinds_folder: tuple[Path, dict[str, Path]],
            embed_model_dir: Path) -> Iterator[Indexed]:
    folder, paths = kinds_folder
    ld = open_localdocs(module_backend, embed_model_dir)
    report = ld.index(folder, max_file_bytes=corpus.MAX_FILE_BYTES, progress=False)
    yield Indexed(module_backend, ld, report, folder, paths, embed_model_dir)
    ld.close()


# --------------------------------------------------------------------------- source checks

def file_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").replace("\r\n", "\n").split("\n")


def pdf_page_lines(path: Path, page: int) -> list[str]:
    import pypdf

    text = pypdf.PdfReader(str(path)).pages[page - 1].extract_text() or ""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").split("\n")


def visible_words(path: Path) -> set[str]:
    """Words of an HTML page's visible text or a DOCX file's paragraphs."""
    if path.suffix == ".html":
        from bs4 import BeautifulSoup

        soup = BeautifulSoup(path.read_bytes(), "html.parser")
        for tag in soup(["script", "style"]):
            tag.decompose()
        text = soup.get_text(" ")
    else:
        import docx

        text = " ".join(p.text for p in docx.Document(str(path)).paragraphs)
    return set(re.findall(r"\w+", text))


def assert_span_matches(r: SearchResult, lines: list[str]) -> None:
    """The chunk text is exactly the file's text from line start_line to end_line (it may
    start after the first line's beginning and end before the last line's end)."""
    assert r.start_line is not None and r.end_line is not None, r
    assert 1 <= r.start_line <= r.end_line <= len(lines), (r.start_line, r.end_line, len(lines))
    text_lines = r.text.split("\n")
    assert len(text_lines) == r.end_line - r.start_line + 1, (r.citation(), r.text)
    window = lines[r.start_line - 1:r.end_line]
    if len(text_lines) == 1:
        assert text_lines[0] in window[0], (r.citation(), r.text)
        return
    assert window[0].endswith(text_lines[0]), (r.citation(), text_lines[0], window[0])
    assert window[-1].startswith(text_lines[-1]), (r.citation(), text_lines[-1], window[-1])
    assert text_lines[1:-1] == window[1:-1], r.citation()


def assert_source(r: SearchResult) -> None:
    path = Path(r.path)
    assert path.is_absolute() and path.is_file(), r.path
    if path.suffix in LINE_KINDS:
        assert r.page is None
        assert_span_matches(r, file_lines(path))
        where = f"line {r.start_line}" if r.start_line == r.end_line else \
            f"lines {r.start_line}-{r.end_line}"
        assert r.citation() == f"{r.path}, {where}"
    elif path.suffix == ".pdf":
        assert r.page is not None and 1 <= r.page <= len(corpus.ASTRONOMY_PDF_PAGES)
        assert_span_matches(r, pdf_page_lines(path, r.page))
        assert r.citation() == f"{r.path}, page {r.page}"
    else:  # HTML and DOCX: converted text, no line numbers
        assert (r.page, r.start_line, r.end_line) == (None, None, None)
        assert r.citation() == r.path
        words = set(re.findall(r"\w+", r.text))
        assert words <= visible_words(path), words - visible_words(path)


# --------------------------------------------------------------------------- indexing


def test_index_reports_documents_and_refused_files(indexed: Indexed) -> None:
    report = indexed.report
    expected = sorted([str(p) for p in indexed.paths.values()]
                      + [str(indexed.folder / "nested" / "inside.md")])
    assert sorted(report.indexed) == expected
    assert report.unchanged == [] and report.removed == []
    skipped = dict(report.skipped)
    assert sorted(skipped) == sorted(str(indexed.folder / name) for name in corpus.BAD_FILES)
    for name, reason in corpus.BAD_FILES.items():
        got = skipped[str(indexed.folder / name)]
        assert reason in got, (name, got)
    stats = indexed.ld.stats()
    assert stats["chunks"] == report.n_chunks > len(expected)
    assert stats["documents"] == len(expected)
    assert stats["embedding_model"] == MINILM and stats["dimensionality"] == 384
    # the defaults for all-MiniLM-L6-v2 (its embedding rule): 128-token chunks, 16 overlap
    assert (stats["chunk_tokens"], stats["overlap_tokens"]) == (128, 16)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("probe", corpus.PROBES, ids=lambda p: f"{p.file}-p{p.page}")
def test_every_kind_is_found_by_a_query_about_it(indexed: Indexed, probe: corpus.Probe,
                                                 mode: Mode) -> None:
    results = indexed.ld.search(probe.query, k=3, mode=mode)
    assert results, probe.query
    best = results[0]
    assert best.path == str(indexed.paths[probe.file]), [r.citation() for r in results]
    assert best.page == probe.page
    assert probe.phrase in best.text
    if mode != "hybrid":
        assert best.ranks == {mode: 1}
    for r in results:
        assert_source(r)


@pytest.mark.parametrize("mode", MODES)
def test_scores_are_ordered_and_results_distinct(indexed: Indexed, mode: Mode) -> None:
    results = indexed.ld.search("honey bees and glaciers in winter", k=8, mode=mode)
    if mode == "keyword":  # only chunks that share a term with the query
        assert 3 <= len(results) <= 8
        assert all(re.search(r"(?i)honey|bees|glaciers|winter", r.text) for r in results)
    else:
        assert len(results) == 8
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    assert len({r.chunk_id for r in results}) == len(results)
    for rank, r in enumerate(results, start=1):
        if mode == "hybrid":
            assert set(r.ranks) <= {"dense", "keyword"} and r.ranks
            assert 0.0 <= r.score <= 1.0 + 1e-9  # convex fusion of min-max scaled scores
        else:
            assert r.ranks == {mode: rank}
        if mode == "dense":
            assert -1.0 <= r.score <= 1.0 + 1e-6
        assert_source(r)


def test_every_stored_chunk_has_a_true_source_span(indexed: Indexed) -> None:
    """Not only the top results: every chunk in the collection points at its real text."""
    chunks = plain_client(indexed.backend).get_collection(indexed.backend["collection"]).get(
        include=["documents", "metadatas"])
    assert len(chunks["ids"]) == indexed.ld.stats()["chunks"]
    for cid, text, meta in zip(chunks["ids"], chunks["documents"], chunks["metadatas"]):
        r = SearchResult(text=text, score=0.0, path=meta["path"], title=meta["title"],
                         page=meta.get("page"), start_line=meta.get("start_line"),
                         end_line=meta.get("end_line"), heading=meta.get("heading"), chunk_id=cid)
        assert cid == f"{meta['doc_id']}:{meta['chunk_index']:05d}"
        assert_source(r)


def test_k_bounds_the_number_of_results(indexed: Indexed) -> None:
    total = indexed.ld.stats()["chunks"]
    for mode in MODES:
        assert len(indexed.ld.search("Saturn rings ice", k=1, mode=mode)) == 1
    assert len(indexed.ld.search("Saturn rings ice", k=total + 50, mode="dense")) == total
    hybrid = indexed.ld.search("Saturn rings ice", k=total + 50)
    assert len({r.chunk_id for r in hybrid}) == len(hybrid) == total  # dense contributes all


def test_headings_titles_and_prompt(indexed: Indexed) -> None:
    bees = indexed.ld.search("bees cluster in winter and shiver", k=1)[0]
    assert bees.heading == "Keeping Honey Bees > Wintering"
    assert bees.title == "Keeping Honey Bees"
    chess = indexed.ld.search("Sicilian Defence 1.e4 c5", k=1)[0]
    assert chess.title == "Chess Openings for Beginners"
    assert chess.heading == "Chess Openings for Beginners > The Sicilian Defence"
    saturn = indexed.ld.search("rings of Saturn water ice", k=1)[0]
    assert saturn.title == "Notes on the Solar System"
    prompt = build_prompt("What are Saturn's rings made of?", [saturn, bees])
    assert f"[1] Notes on the Solar System ({saturn.path}, page 2)" in prompt
    assert f"[2] Keeping Honey Bees ({bees.citation()})" in prompt
    assert prompt.rstrip().endswith("What are Saturn's rings made of?")
    sources = format_sources([saturn, bees]).splitlines()
    assert sources[0].startswith(f"[1] {saturn.path}, page 2: \"")


# --------------------------------------------------------------------------- reopening


def test_a_new_object_sees_the_same_collection(indexed: Indexed) -> None:
    with LocalDocs(**indexed.backend, model_path=indexed.model_dir, n_threads=N_THREADS) as again:
        assert again.embedding_model == MINILM  # taken from the collection
        assert again.stats() == indexed.ld.stats()
        for probe in corpus.PROBES[:3]:
            for mode in MODES:
                first = indexed.ld.search(probe.query, k=3, mode=mode)
                second = again.search(probe.query, k=3, mode=mode)
                assert [r.chunk_id for r in second] == [r.chunk_id for r in first]
                assert [r.score for r in second] == pytest.approx([r.score for r in first],
                                                                  abs=1e-5)


def test_a_new_process_sees_the_same_collection(indexed: Indexed) -> None:
    queries = [p.query for p in corpus.PROBES]
    out = run_worker({"action": "search", "queries": queries,
                      "localdocs": jsonable(indexed.backend, indexed.model_dir)})
    assert out["stats"] == indexed.ld.stats()
    for query in queries:
        for mode in MODES:
            here = [[r.chunk_id, r.path, r.citation()]
                    for r in indexed.ld.search(query, k=3, mode=mode)]
            assert out["results"][query][mode] == here, (query, mode)


def _check_plain_query(out: dict[str, Any], indexed: Indexed, queries: list[str]) -> None:
    assert out["embedding_function"] == "LocalDocsEmbeddingFunction"
    assert out["ef_config"]["model_name"] == MINILM
    for query, ids, paths in zip(queries, out["ids"], out["paths"]):
        dense = indexed.ld.search(query, k=3, mode="dense")
        assert ids == [r.chunk_id for r in dense], query
        assert paths[0] == dense[0].path


def _plain_job(indexed: Indexed, queries: list[str], **extra: Any) -> dict[str, Any]:
    return {"action": "plain", "collection": indexed.backend["collection"], "queries": queries,
            "chroma_url": indexed.backend.get("chroma_url"),
            "persist_directory": indexed.backend.get("persist_directory"), **extra}


def _other_machine_env(tmp_path: Path, model_dir: Path) -> dict[str, str]:
    """The environment of a process on "another machine": another home, no gpt4all-rag
    variables but the documented GPT4ALL_MODEL_PATH (where that machine keeps its models)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GPT4ALL", "G4R_", "XDG_")) and k != "HOME"}
    return {**env, "HOME": str(tmp_path / "home"), "GPT4ALL_MODEL_PATH": str(model_dir)}


def test_plain_chromadb_in_a_new_process_rebuilds_the_embedding_function(
        indexed: Indexed, tmp_path: Path) -> None:
    # The documented way: import gpt4all_rag.localdocs, then plain chromadb calls; the model
    # is found through the reopening machine's own model directory, not the indexing one's.
    elsewhere = tmp_path / "models-elsewhere"
    elsewhere.mkdir()
    os.symlink(indexed.model_dir / MINILM, elsewhere / MINILM)
    queries = [corpus.PROBES[1].query, corpus.PROBES[6].query]
    out = run_worker(_plain_job(indexed, queries), env=_other_machine_env(tmp_path, elsewhere))
    _check_plain_query(out, indexed, queries)
    assert out["ef_config"] == {"model_name": MINILM, "document_prefix": None, "query_prefix": None}


def test_plain_chromadb_without_the_import_names_the_missing_function(
        indexed: Indexed, tmp_path: Path) -> None:
    out = run_worker(_plain_job(indexed, ["anything"], no_import=True),
                     env=_other_machine_env(tmp_path, indexed.model_dir))
    assert out["gpt4all_rag_imported"] is False
    assert "gpt4all-rag" in out["error"] and "not found" in out["error"]


def test_the_stored_embedding_config_names_the_model_not_a_folder(indexed: Indexed) -> None:
    collection = plain_client(indexed.backend).get_collection(indexed.backend["collection"])
    config = collection.configuration_json["embedding_function"]
    assert config["name"] == "gpt4all-rag"
    assert config["config"] == {"model_name": MINILM, "document_prefix": None, "query_prefix": None}
    assert str(indexed.model_dir) not in json.dumps(collection.configuration_json)


def test_plain_chromadb_query_texts_in_process(indexed: Indexed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPT4ALL_MODEL_PATH", str(indexed.model_dir))
    queries = [corpus.PROBES[0].query, corpus.PROBES[4].query]
    collection = plain_client(indexed.backend).get_collection(indexed.backend["collection"])
    ef = collection.configuration.get("embedding_function")
    result = collection.query(query_texts=queries, n_results=3, include=["metadatas"])
    _check_plain_query({"embedding_function": type(ef).__name__, "ef_config": ef.get_config(),
                        "ids": result["ids"],
                        "paths": [[m["path"] for m in ms] for ms in result["metadatas"]]},
                       indexed, queries)


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory: pytest.TempPathFactory, embed_model_dir: Path) -> Path:
    """A model folder with MiniLM under two names: the second counts as another model."""
    d = tmp_path_factory.mktemp("models")
    os.symlink(embed_model_dir / MINILM, d / MINILM)
    os.symlink(embed_model_dir / MINILM, d / "other-embedding-model.f16.gguf")
    return d


def test_another_embedding_model_is_refused(indexed: Indexed, other_model_dir: Path) -> None:
    with LocalDocs(**indexed.backend, model_path=other_model_dir, n_threads=N_THREADS,
                   embedding_model="other-embedding-model.f16.gguf") as other:
        with pytest.raises(CollectionMismatchError, match="embedding_model") as info:
            other.index(indexed.folder, max_file_bytes=corpus.MAX_FILE_BYTES)
        assert isinstance(info.value, ValueError)
        with pytest.raises(CollectionMismatchError, match="other-embedding-model"):
            other.search("bees")
    assert indexed.ld.stats()["chunks"] == indexed.report.n_chunks  # nothing was written


def test_other_chunking_is_refused_for_indexing_but_searchable(indexed: Indexed) -> None:
    with LocalDocs(**indexed.backend, model_path=indexed.model_dir, n_threads=N_THREADS,
                   chunk_tokens=256, overlap_tokens=32) as other:
        with pytest.raises(CollectionMismatchError, match="chunk_tokens"):
            other.index(indexed.folder, max_file_bytes=corpus.MAX_FILE_BYTES)
        # a query does not depend on chunking: searching works with any chunk settings
        found = other.search(corpus.PROBES[0].query, k=2)
        assert [r.chunk_id for r in found] == [r.chunk_id for r in indexed.ld.search(
            corpus.PROBES[0].query, k=2)]
        with pytest.raises(CollectionMismatchError):  # still refused after a search
            other.index(indexed.folder, max_file_bytes=corpus.MAX_FILE_BYTES)
    assert indexed.ld.stats()["chunks"] == indexed.report.n_chunks


def test_reindex_rebuilds_with_new_settings(backend: Backend, tmp_path: Path,
                                            embed_model_dir: Path, other_model_dir: Path) -> None:
    folder = tmp_path / "docs"
    paths = corpus.write_texts(folder, ("beekeeping.md", "volcanoes.rst"))
    with open_localdocs(backend, embed_model_dir) as ld:
        first = ld.index(folder)
        assert len(first.indexed) == len(paths)
    with open_localdocs(backend, embed_model_dir, chunk_tokens=48, overlap_tokens=8) as small:
        with pytest.raises(CollectionMismatchError):
            small.index(folder)
    with open_localdocs(backend, embed_model_dir, chunk_tokens=48, overlap_tokens=8,
                        reindex=True) as small:
        report = small.index(folder)
        assert sorted(report.indexed) == sorted(map(str, paths.values()))
        stats = small.stats()
        assert (stats["chunk_tokens"], stats["overlap_tokens"]) == (48, 8)
        assert stats["chunks"] == report.n_chunks > first.n_chunks
        again = small.index(folder)  # reindex only drops a collection built differently
        assert again.indexed == [] and len(again.unchanged) == len(paths)
    with open_localdocs(backend, embed_model_dir) as reopened:  # no settings: the collection's
        assert (reopened.chunk_tokens, reopened.overlap_tokens) == (48, 8)
        assert reopened.index(folder).indexed == []
    with open_localdocs(backend, other_model_dir, embedding_model="other-embedding-model.f16.gguf",
                        reindex=True) as other:
        report = other.index(folder)
        assert len(report.indexed) == len(paths)
        assert other.stats()["embedding_model"] == "other-embedding-model.f16.gguf"
        assert other.search(corpus.PROBES[2].query, k=1)[0].path == str(paths["volcanoes.rst"])
    with open_localdocs(backend, embed_model_dir, embedding_model=MINILM) as old:
        with pytest.raises(CollectionMismatchError):
            old.index(folder)


# --------------------------------------------------------------------------- errors


def test_search_on_a_collection_never_indexed(backend: Backend, tmp_path: Path,
                                              embed_model_dir: Path) -> None:
    with open_localdocs(backend, embed_model_dir) as ld:
        for mode in MODES:
            with pytest.raises(CollectionNotFoundError, match=backend["collection"]) as info:
                ld.search("anything at all", mode=mode)
            assert isinstance(info.value, LookupError)
        with pytest.raises(CollectionNotFoundError):
            ld.stats()
        with pytest.raises(CollectionNotFoundError):
            ld.remove()
        # the object stays usable: index, then search
        (tmp_path / "docs").mkdir()
        (tmp_path / "docs" / "tide.md").write_text(
            "# Tides\n\nThe Moon's gravity raises two bulges of water that sweep around the "
            "Earth, giving most coasts two high tides a day.\n", encoding="utf-8")
        assert len(ld.index(tmp_path / "docs").indexed) == 1
        assert ld.search("why are there two high tides", k=1)[0].path.endswith("tide.md")
        ld.remove()
        with pytest.raises(CollectionNotFoundError):
            ld.search("tides")


@pytest.mark.parametrize("name", ["", "ab", "-abc", "abc-", "a b c", "x" * 64, "foo..bar",
                                  "name__files", "naïve", 123, None])
def test_invalid_collection_names(backend: Backend, embed_model_dir: Path, name: Any) -> None:
    with pytest.raises(InvalidParameterError) as info:
        LocalDocs(**{**backend, "collection": name}, model_path=embed_model_dir)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("kwargs", [{"query": ""}, {"query": "   \n"}, {"query": None},
                                    {"k": 0}, {"k": -3}, {"k": True}, {"k": 2.5}, {"k": "3"},
                                    {"k": 2**30}, {"k": 2**32, "mode": "dense"},  # was an OverflowError
                                    {"mode": "fuzzy"}, {"mode": "DENSE"}, {"mode": None}])
def test_bad_search_arguments_keep_the_object_usable(indexed: Indexed,
                                                     kwargs: dict[str, Any]) -> None:
    args = {"query": "rings of Saturn", "k": 2, "mode": "hybrid", **kwargs}
    with pytest.raises(InvalidParameterError) as info:
        indexed.ld.search(args.pop("query"), **args)
    assert isinstance(info.value, ValueError)
    assert indexed.ld.search("rings of Saturn", k=1)[0].page == 2


def test_bad_settings_are_refused(backend: Backend, embed_model_dir: Path) -> None:
    for kwargs in ({"chunk_tokens": 8}, {"chunk_tokens": 256.0}, {"overlap_tokens": -1},
                   {"chunk_tokens": 64, "overlap_tokens": 64}):
        with pytest.raises(InvalidParameterError):
            LocalDocs(**backend, model_path=embed_model_dir, **kwargs)
    with LocalDocs(**backend, model_path=embed_model_dir, chunk_tokens=64) as ld:
        assert (ld.chunk_tokens, ld.overlap_tokens) == (64, 8)  # an eighth of the chunk
    with LocalDocs(**backend, model_path=embed_model_dir, overlap_tokens=200) as ld:
        with pytest.raises(InvalidParameterError, match="smaller than the chunk size"):
            ld.chunk_tokens  # noqa: B018  (MiniLM's default chunk is 128 tokens)
    with pytest.raises(InvalidParameterError, match="chroma_url"):
        LocalDocs(backend["collection"], chroma_url="ftp://127.0.0.1:1", model_path=embed_model_dir)


def test_unreachable_server_is_a_store_error(embed_model_dir: Path) -> None:
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StoreError, match=f"127.0.0.1:{port}"):
        LocalDocs("nowhere", chroma_url=f"http://127.0.0.1:{port}", model_path=embed_model_dir)


def test_collections_are_separate(indexed: Indexed, tmp_path: Path) -> None:
    """Two collections on one store do not see each other's documents."""
    other = with_name(indexed.backend, "sep")
    (tmp_path / "one.txt").write_text("Kelp forests grow in cold, nutrient-rich coastal water.\n",
                                      encoding="utf-8")
    with open_localdocs(other, indexed.model_dir) as ld:
        ld.index(tmp_path)
        assert ld.stats()["documents"] == 1
        assert {r.path for r in ld.search("bees", k=5)} == {str(tmp_path / "one.txt")}
        ld.remove()
    assert all(r.path != str(tmp_path / "one.txt") for r in indexed.ld.search("kelp forests", k=5))
