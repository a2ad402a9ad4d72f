"""Retrieval evaluation: metrics on hand-computed rankings, the BEIR loader on good and bad
files, corpus files and the document mapping of chunk results."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpt4all_rag.commands.evaluate import evaluate
from gpt4all_rag.errors import InvalidParameterError
from gpt4all_rag.localdocs.evaluation import (BeirDataset, DatasetError, Metrics,
                                              evaluate_localdocs, evaluate_run, load_beir,
                                              recall_at_k, reciprocal_rank, retrieve,
                                              write_corpus)

# --------------------------------------------------------------------------- metrics


def test_recall_at_k_counts_relevant_documents_in_the_cut_off() -> None:
    ranked = ["d3", "d1", "d7", "d2"]
    assert recall_at_k(ranked, {"d1", "d2"}, 1) == 0.0
    assert recall_at_k(ranked, {"d1", "d2"}, 2) == 0.5
    assert recall_at_k(ranked, {"d1", "d2"}, 4) == 1.0
    assert recall_at_k(ranked, {"d1", "d2"}, 10) == 1.0  # a short ranking is not an error
    assert recall_at_k(ranked, {"d3"}, 1) == 1.0
    assert recall_at_k([], {"d3"}, 10) == 0.0
    assert recall_at_k(ranked, set(), 10) == 0.0


def test_reciprocal_rank_is_one_over_the_first_relevant_rank_within_k() -> None:
    ranked = ["a", "b", "c", "d"]
    assert reciprocal_rank(ranked, {"a"}, 10) == 1.0
    assert reciprocal_rank(ranked, {"c", "d"}, 10) == pytest.approx(1 / 3)
    assert reciprocal_rank(ranked, {"d"}, 3) == 0.0  # beyond the cut-off
    assert reciprocal_rank(ranked, {"z"}, 10) == 0.0


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "3"])
def test_metric_cut_offs_must_be_positive_integers(k: object) -> None:
    with pytest.raises(InvalidParameterError, match="k must be a positive integer"):
        recall_at_k(["a"], {"a"}, k)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="k must be a positive integer"):
        reciprocal_rank(["a"], {"a"}, k)  # type: ignore[arg-type]


def test_evaluate_run_averages_hand_computed_scores() -> None:
    # q1: relevant d1 at rank 1                -> R@1 1,  R@10 1,   RR 1
    # q2: relevant d5, d6; d6 at rank 3 only   -> R@1 0,  R@10 1/2, RR 1/3
    # q3: relevant d9 at rank 11 (beyond 10)   -> R@1 0,  R@10 0,   RR 0
    # q4: not in the run                       -> all 0
    # q5: judged non-relevant only (score 0)   -> not counted
    run = {
        "q1": ["d1", "d2"],
        "q2": ["d2", "d3", "d6", "d7"],
        "q3": [f"x{i}" for i in range(10)] + ["d9"],
        "q5": ["d1"],
    }
    qrels = {"q1": {"d1": 1}, "q2": {"d5": 1, "d6": 2}, "q3": {"d9": 1}, "q4": {"d1": 1},
             "q5": {"d1": 0}}
    m = evaluate_run(run, qrels)
    assert m.n_queries == 4
    assert m.recall_at_1 == pytest.approx(1 / 4)
    assert m.recall_at_10 == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert m.mrr_at_10 == pytest.approx((1 + 1 / 3 + 0 + 0) / 4)
    assert m.as_dict() == {"Recall@1": m.recall_at_1, "Recall@10": m.recall_at_10,
                           "MRR@10": m.mrr_at_10}
    assert "MRR@10 0.333" in str(m)


def test_evaluate_run_counts_a_repeated_document_once_at_its_first_rank() -> None:
    # Chunks of d1 fill ranks 1-3: the document ranking is [d1, d2, d3], so d3 is rank 3.
    m = evaluate_run({"q": ["d1", "d1", "d1", "d2", "d3"]}, {"q": {"d3": 1}})
    assert m == Metrics(recall_at_1=0.0, recall_at_10=1.0, mrr_at_10=pytest.approx(1 / 3),
                        n_queries=1)
    # Eleven chunks but only 2 documents: the relevant one is still within the top 10.
    m = evaluate_run({"q": ["d1"] * 10 + ["d2"]}, {"q": {"d2": 1}})
    assert m.recall_at_10 == 1.0 and m.mrr_at_10 == 0.5


def test_evaluate_run_without_relevant_judgements_is_an_error() -> None:
    with pytest.raises(InvalidParameterError, match="no query has a relevant document"):
        evaluate_run({"q": ["d"]}, {"q": {"d": 0}})


# --------------------------------------------------------------------------- loader


def write_beir(root: Path, corpus: list | None = None, queries: list | None = None,
               qrels: str | None = None, split: str = "test") -> Path:
    corpus = corpus if corpus is not None else [
        {"_id": "d1", "title": "Bees", "text": "Bees overwinter as a cluster."},
        {"_id": "d2", "title": "", "text": "Lighthouses use Fresnel lenses."},
        {"_id": "d3", "text": "No title key at all."},
    ]
    queries = queries if queries is not None else [
        {"_id": "q1", "text": "how do bees survive winter", "extra": 1},
        {"_id": "q2", "text": "lighthouse lens"},
        {"_id": "q3", "text": "a query without judgements"},
    ]
    if qrels is None:
        qrels = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td3\t0\n"
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in corpus),
        encoding="utf-8")
    (root / "queries.jsonl").write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in queries),
        encoding="utf-8")
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / f"{split}.tsv").write_text(qrels, encoding="utf-8")
    return root


def test_load_beir_reads_corpus_queries_and_qrels(tmp_path: Path) -> None:
    ds = load_beir(write_beir(tmp_path / "tiny"))
    assert ds.name == "tiny"
    assert ds.corpus == {"d1": ("Bees", "Bees overwinter as a cluster."),
                         "d2": ("", "Lighthouses use Fresnel lenses."),
                         "d3": ("", "No title key at all.")}
    assert ds.queries == {"q1": "how do bees survive winter", "q2": "lighthouse lens"}
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 0}}


def test_load_beir_reads_other_splits_numeric_ids_and_blank_lines(tmp_path: Path) -> None:
    root = write_beir(tmp_path, corpus=[{"_id": 7, "text": "seven"}, ""],
                      queries=[{"_id": "q", "text": "7?"}],
                      qrels="query-id\tcorpus-id\tscore\n\nq\t7\t1\n", split="dev")
    ds = load_beir(root, split="dev")
    assert ds.corpus == {"7": ("", "seven")} and ds.qrels == {"q": {"7": 1}}


@pytest.mark.parametrize("corpus, message", [
    (["{not json"], r"corpus.jsonl line 1: not JSON"),
    (["[1, 2]"], r"corpus.jsonl line 1: expected a JSON object, got list"),
    ([{"title": "t", "text": "x"}], r"corpus.jsonl line 1: missing '_id'"),
    ([{"_id": "d1", "title": "t"}], r"corpus.jsonl line 1: missing 'text'"),
    ([{"_id": "d1", "text": 3}], r"'text' must be a string, got int"),
    ([{"_id": "d1", "title": ["x"], "text": "x"}], r"'title' must be a string"),
    ([{"_id": "", "text": "x"}], r"'_id' is empty"),
    ([{"_id": "d1", "text": "a"}, {"_id": "d1", "text": "b"}],
     r"corpus.jsonl line 2: duplicate document id 'd1'"),
    ([], r"corpus.jsonl: no documents"),
])
def test_load_beir_rejects_a_bad_corpus(tmp_path: Path, corpus: list, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_beir(write_beir(tmp_path, corpus=corpus))


@pytest.mark.parametrize("queries, message", [
    ([{"_id": "q1"}], r"queries.jsonl line 1: missing 'text'"),
    ([{"_id": "q1", "text": "  "}], r"queries.jsonl line 1: 'text' is empty"),
    ([{"_id": "q1", "text": "a"}, {"_id": "q1", "text": "b"}], r"duplicate query id 'q1'"),
    ([{"_id": "q1", "text": "a"}], r"names 1 query id\(s\) missing from queries.jsonl.*'q2'"),
])
def test_load_beir_rejects_bad_queries(tmp_path: Path, queries: list, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_beir(write_beir(tmp_path, queries=queries))


@pytest.mark.parametrize("qrels, message", [
    ("", r"test.tsv: empty"),
    ("q1\td1\t1\n", r"test.tsv line 1: expected the header"),
    ("query-id\tcorpus-id\tscore\n", r"no judgements after the header"),
    ("query-id\tcorpus-id\tscore\nq1 d1 1\n", r"line 2: expected 3 tab-separated fields, got 1"),
    ("query-id\tcorpus-id\tscore\nq1\td1\n", r"line 2: expected 3 tab-separated fields, got 2"),
    ("query-id\tcorpus-id\tscore\nq1\td1\thigh\n", r"line 2: score must be an integer, got 'high'"),
    ("query-id\tcorpus-id\tscore\nq1\t\t1\n", r"line 2: empty query or corpus id"),
    ("query-id\tcorpus-id\tscore\nq1\td9\t1\n",
     r"names 1 document id\(s\) missing from corpus.jsonl, e.g. \['d9'\]"),
    ("query-id\tcorpus-id\tscore\nq1\td1\t0\n", r"no relevant \(score >= 1\) judgement"),
])
def test_load_beir_rejects_bad_qrels(tmp_path: Path, qrels: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        load_beir(write_beir(tmp_path, qrels=qrels))


def test_load_beir_names_missing_files_and_folders(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_beir(tmp_path / "nowhere")
    root = write_beir(tmp_path)
    with pytest.raises(DatasetError, match=r"cannot read .*qrels/dev.tsv"):
        load_beir(root, split="dev")
    (root / "queries.jsonl").unlink()
    with pytest.raises(DatasetError, match=r"cannot read .*queries.jsonl"):
        load_beir(root)


def test_load_beir_rejects_text_that_is_not_utf8(tmp_path: Path) -> None:
    root = write_beir(tmp_path)
    (root / "corpus.jsonl").write_bytes(b'{"_id": "d1", "text": "caf\xe9"}\n')
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_beir(root)


def test_dataset_error_is_a_value_error() -> None:
    assert issubclass(DatasetError, ValueError)


# --------------------------------------------------------------------------- corpus files


def test_write_corpus_writes_one_markdown_file_per_document(tmp_path: Path) -> None:
    ds = BeirDataset(corpus={"json#basic-usage": ("json > Basic Usage", "Serialize obj.\n"),
                             "json/basic usage": ("", "Other text."),
                             "JSON#BASIC-USAGE": ("Upper", "Case clash on some systems."),
                             "empty": ("", "   ")},
                     queries={}, qrels={})
    paths = write_corpus(ds, tmp_path / "docs")
    assert sorted(paths.values()) == ["JSON#BASIC-USAGE", "json#basic-usage", "json/basic usage"]
    files = {Path(p).name: p for p in paths}
    assert sorted(files) == ["JSON_BASIC-USAGE-2.md", "json_basic-usage.md", "json_basic_usage.md"]
    assert all(Path(p).is_absolute() and Path(p).parent == (tmp_path / "docs").resolve()
               for p in paths)
    first = Path(files["json_basic-usage.md"]).read_text(encoding="utf-8")
    assert first == "# json > Basic Usage\n\nSerialize obj.\n"
    assert Path(files["json_basic_usage.md"]).read_text(encoding="utf-8") == "Other text.\n"


@dataclass
class FakeResult:
    path: str


def test_retrieve_maps_chunks_to_documents_in_rank_order() -> None:
    hits = {"bees": ["/c/a.md", "/c/a.md", "/elsewhere.md", "/c/b.md", "/c/a.md"],
            "none": []}
    run = retrieve(lambda q: [FakeResult(p) for p in hits[q]], {"q1": "bees", "q2": "none"},
                   {"/c/a.md": "A", "/c/b.md": "B"})
    assert run == {"q1": ["A", "B"], "q2": []}


# --------------------------------------------------------------------------- command


def test_evaluate_command_reports_a_bad_data_set_without_a_traceback(tmp_path: Path) -> None:
    root = write_beir(tmp_path, qrels="query-id\tcorpus-id\tscore\nq1\td1\tx\n")
    result = CliRunner().invoke(evaluate, [str(root), "--quiet"])
    assert result.exit_code == 1
    assert "score must be an integer, got 'x'" in result.output
    assert "Traceback" not in result.output


def test_evaluate_command_checks_its_options(tmp_path: Path) -> None:
    root = write_beir(tmp_path)
    result = CliRunner().invoke(evaluate, [str(root), "--mode", "fuzzy"])
    assert result.exit_code == 2 and "fuzzy" in result.output
    result = CliRunner().invoke(evaluate, [str(root), "--k", "0"])
    assert result.exit_code == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "fuzzy"}, "mode must be"),
    ({"k": 0}, "k must be a positive integer"),
    ({"persist_directory": "/tmp/x"}, "persist_directory is chosen by evaluate_localdocs"),
    ({"reindex": True}, "reindex is chosen by evaluate_localdocs"),
])
def test_evaluate_localdocs_checks_arguments_before_any_work(tmp_path: Path, kwargs: dict,
                                                             message: str) -> None:
    ds = load_beir(write_beir(tmp_path / "data"))
    with pytest.raises(InvalidParameterError, match=message):
        evaluate_localdocs(ds, work_dir=tmp_path / "work", **kwargs)
    assert not (tmp_path / "work").exists()
