"""Read a sentence-transformers BERT checkpoint into the form llama.cpp's BERT loader reads.

:func:`read_checkpoint` reads and checks ``config.json``, the pooling of the
sentence-transformers pipeline (``modules.json``, ``1_Pooling/config.json``), the WordPiece
vocabulary with its special tokens and normaliser options, and ``model.safetensors``, and
returns a :class:`Checkpoint`: tensors renamed to GGUF names and cast to the output type, the
vocabulary in llama.cpp's phantom-space form. :mod:`gpt4all_rag.models.convert` writes it as a GGUF
file; the layout (and the llama.cpp sources it follows) is described there.

Reads numpy arrays with ``safetensors`` and names tensors with the ``gguf`` package; no torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from safetensors import SafetensorError, safe_open

from ..errors import ModelLoadError

__all__ = ["ARCH", "BertConfig", "Checkpoint", "Vocab", "read_checkpoint"]

#: The llama.cpp architecture a checkpoint is read for.
ARCH = gguf.MODEL_ARCH.BERT

# llama.cpp's WPM tokenizer prepends this to every word before looking pieces up.
_PHANTOM_SPACE = "\u2581"
# WordPiece's prefix of a word-internal piece.
_CONTINUATION = "##"

# Checkpoint tensors that llama.cpp's BERT graph does not use (position ids are implicit; the
# pooler and masked-LM heads are not part of a sentence-transformers embedding).
_SKIPPED_PREFIXES = ("pooler.", "cls.predictions.", "cls.seq_relationship.")
_SKIPPED_NAMES = frozenset({"embeddings.position_ids"})

# sentence-transformers modules that do not change what llama.cpp computes.
_TRANSFORMER_MODULE = "sentence_transformers.models.Transformer"
_POOLING_MODULE = "sentence_transformers.models.Pooling"
_NORMALIZE_MODULE = "sentence_transformers.models.Normalize"

# Special tokens: (role, tokenizer_config key, BERT default text).
_SPECIAL_ROLES: tuple[tuple[str, str, str], ...] = (
    ("cls", "cls_token", "[CLS]"),
    ("sep", "sep_token", "[SEP]"),
    ("unk", "unk_token", "[UNK]"),
    ("pad", "pad_token", "[PAD]"),
    ("mask", "mask_token", "[MASK]"),
)


@dataclass(frozen=True)
class BertConfig:
    """The hyper-parameters of a BERT encoder, read from ``config.json``."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float


@dataclass(frozen=True)
class Vocab:
    """A WordPiece vocabulary in llama.cpp's form.

    Attributes:
        tokens: token texts in id order, in phantom-space form (see :mod:`gpt4all_rag.models.convert`).
        types: ``gguf.TokenType`` value of each token.
        special: id of each special role (``cls``, ``sep``, ``unk``, ``pad``, ``mask``).
        lowercase: whether the BertNormalizer lowercases the input.
        strip_accents: whether it removes accents (NFD, then drops combining marks).
    """

    tokens: list[str]
    types: list[int]
    special: dict[str, int]
    lowercase: bool
    strip_accents: bool


@dataclass(frozen=True)
class Checkpoint:
    """Everything read from a checkpoint folder, ready to be written."""

    config: BertConfig
    pooling: gguf.PoolingType
    vocab: Vocab
    tensors: dict[str, np.ndarray]


def read_checkpoint(src: Path, outtype: str) -> Checkpoint:
    """Read and check the checkpoint in folder ``src``.

    Args:
        src: the checkpoint folder (it exists).
        outtype: ``"f16"`` and ``"q8_0"`` cast matrices (but ``token_types.weight``) to
            float16 (the converter quantizes the blocks' matrices of a ``"q8_0"`` file from
            there), ``"f32"`` keeps everything float32 (see
            :func:`~gpt4all_rag.models.convert.convert_sentence_transformer`).

    Returns:
        What :mod:`gpt4all_rag.models.convert` writes.

    Raises:
        ModelLoadError: not a BERT sentence-transformers checkpoint the converter supports
            (the cases are listed under
            :func:`~gpt4all_rag.models.convert.convert_sentence_transformer`).
    """
    config = _read_config(src)
    return Checkpoint(config, _read_pooling(src), _read_vocab(src, config),
                      _read_tensors(src, config, outtype))


def _read_json(path: Path, what: str) -> Any:
    """Parse a JSON file of the checkpoint; ModelLoadError names ``what`` if that fails."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ModelLoadError(f"not a sentence-transformers checkpoint: {what} missing ({path})") \
            from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {what} ({path}): {exc}") from exc


def _positive_int(cfg: dict[str, Any], key: str, default: int | None = None) -> int:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ModelLoadError(f"config.json: {key} must be a positive integer, got {value!r}")
    return value


def _read_config(src: Path) -> BertConfig:
    """Read and check ``config.json`` of a BERT checkpoint."""
    cfg = _read_json(src / "config.json", "config.json")
    if not isinstance(cfg, dict):
        raise ModelLoadError("config.json must hold a JSON object")
    archs = cfg.get("architectures") or []
    if cfg.get("model_type") != "bert" and "BertModel" not in archs:
        raise ModelLoadError(
            f"not a BERT checkpoint: model_type={cfg.get('model_type')!r}, "
            f"architectures={archs!r} (expected model_type 'bert' / BertModel)")
    position_type = cfg.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise ModelLoadError(
            f"unsupported position_embedding_type {position_type!r}: llama.cpp's BERT uses "
            "absolute learned positions")
    act = cfg.get("hidden_act", "gelu")
    if act not in ("gelu", "gelu_new", "gelu_pytorch_tanh"):
        raise ModelLoadError(f"unsupported hidden_act {act!r}: llama.cpp's BERT uses GELU")
    eps = cfg.get("layer_norm_eps", 1e-12)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise ModelLoadError(f"config.json: layer_norm_eps must be in (0, 1), got {eps!r}")
    config = BertConfig(
        vocab_size=_positive_int(cfg, "vocab_size"),
        hidden_size=_positive_int(cfg, "hidden_size"),
        intermediate_size=_positive_int(cfg, "intermediate_size"),
        num_layers=_positive_int(cfg, "num_hidden_layers"),
        num_heads=_positive_int(cfg, "num_attention_heads"),
        max_positions=_positive_int(cfg, "max_position_embeddings"),
        type_vocab_size=_positive_int(cfg, "type_vocab_size", 2),
        layer_norm_eps=float(eps),
    )
    if config.hidden_size % config.num_heads:
        raise ModelLoadError(
            f"config.json: hidden_size {config.hidden_size} is not a multiple of "
            f"num_attention_heads {config.num_heads}")
    return config


def _read_pooling(src: Path) -> gguf.PoolingType:
    """The pooling type of the sentence-transformers pipeline (``modules.json``).

    Only Transformer -> Pooling (-> Normalize) pipelines are accepted: any other module
    (``Dense``, ``LayerNorm`` ...) would change the vector in a way llama.cpp does not compute.
    L2 normalisation is left to the caller (Embed4All normalises anyway).
    """
    pooling_dir = src / "1_Pooling"
    modules_path = src / "modules.json"
    if modules_path.is_file():
        modules = _read_json(modules_path, "modules.json")
        if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
            raise ModelLoadError("modules.json must hold a list of objects")
        pooling_dirs = []
        for module in modules:
            kind = str(module.get("type", ""))
            if kind == _POOLING_MODULE:
                pooling_dirs.append(src / str(module.get("path", "")))
            elif kind not in (_TRANSFORMER_MODULE, _NORMALIZE_MODULE):
                raise ModelLoadError(
                    f"unsupported sentence-transformers module {kind!r} in modules.json: only "
                    "Transformer, Pooling and Normalize can be expressed in a llama.cpp GGUF")
        if len(pooling_dirs) != 1:
            raise ModelLoadError(
                f"modules.json must list exactly one Pooling module, found {len(pooling_dirs)}")
        pooling_dir = pooling_dirs[0]
    elif not (pooling_dir / "config.json").is_file():
        raise ModelLoadError(
            f"not a sentence-transformers checkpoint: neither modules.json nor "
            f"1_Pooling/config.json in {src}")
    pooling = _read_json(pooling_dir / "config.json", "the pooling configuration")
    if not isinstance(pooling, dict):
        raise ModelLoadError("the pooling configuration must hold a JSON object")
    modes = {key[len("pooling_mode_"):].removesuffix("_token").removesuffix("_tokens")
             for key, value in pooling.items()
             if key.startswith("pooling_mode_") and value is True}
    if isinstance(pooling.get("pooling_mode"), str):  # newer sentence-transformers spelling
        modes.add(pooling["pooling_mode"])
    if modes == {"mean"}:
        return gguf.PoolingType.MEAN
    if modes == {"cls"}:
        return gguf.PoolingType.CLS
    raise ModelLoadError(
        f"unsupported pooling {sorted(modes) or 'none'}: llama.cpp's BERT supports mean or CLS "
        "pooling alone")


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or ``{"content": ...}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _read_vocab(src: Path, config: BertConfig) -> Vocab:
    """Read the WordPiece vocabulary, special tokens and normaliser options of the checkpoint."""
    tok_json, tok_config = _tokenizer_files(src)
    pieces = _wordpiece_pieces(src, tok_json)
    if len(pieces) > config.vocab_size:
        raise ModelLoadError(
            f"the vocabulary has {len(pieces)} tokens but config.json says vocab_size "
            f"{config.vocab_size}")

    index: dict[str, int] = {}
    for i, piece in enumerate(pieces):
        index.setdefault(piece, i)
    special: dict[str, int] = {}
    for role, key, default in _SPECIAL_ROLES:
        text = _token_text(tok_config.get(key)) or default
        if text not in index:
            raise ModelLoadError(f"the {key} {text!r} is not in the vocabulary")
        special[role] = index[text]

    control = {special[r] for r in ("cls", "sep", "pad", "mask")}
    control.update(added["id"] for added in tok_json.get("added_tokens") or []
                   if isinstance(added, dict) and added.get("special")
                   and isinstance(added.get("id"), int))
    tokens: list[str] = []
    types: list[int] = []
    for i, piece in enumerate(pieces):
        if i == special["unk"]:
            kind = gguf.TokenType.UNKNOWN
        elif i in control:
            kind = gguf.TokenType.CONTROL
        else:
            kind = gguf.TokenType.NORMAL
        tokens.append(_phantom_space(piece, kind))
        types.append(int(kind))
    for i in range(len(pieces), config.vocab_size):  # rows without a token, as llama.cpp does
        tokens.append(f"[PAD{i}]")
        types.append(int(gguf.TokenType.UNUSED))
    lowercase, strip_accents = _normalizer_options(tok_json, tok_config)
    return Vocab(tokens, types, special, lowercase, strip_accents)


def _tokenizer_files(src: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``tokenizer.json`` (checked to be WordPiece) and the merged special-token settings of
    ``special_tokens_map.json`` and ``tokenizer_config.json``; empty dicts where missing."""
    tok_json: dict[str, Any] = {}
    if (src / "tokenizer.json").is_file():
        loaded = _read_json(src / "tokenizer.json", "tokenizer.json")
        tok_json = loaded if isinstance(loaded, dict) else {}
        kind = (tok_json.get("model") or {}).get("type")
        if kind not in (None, "WordPiece"):
            raise ModelLoadError(
                f"tokenizer.json holds a {kind} tokenizer; llama.cpp's BERT needs WordPiece")
    tok_config: dict[str, Any] = {}
    for file_name in ("special_tokens_map.json", "tokenizer_config.json"):
        if (src / file_name).is_file():
            loaded = _read_json(src / file_name, file_name)
            if isinstance(loaded, dict):
                tok_config.update(loaded)
    return tok_json, tok_config


def _wordpiece_pieces(src: Path, tok_json: dict[str, Any]) -> list[str]:
    """The WordPiece tokens in id order: ``vocab.txt`` (one per line), else ``tokenizer.json``."""
    if (src / "vocab.txt").is_file():
        try:
            text = (src / "vocab.txt").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelLoadError(f"cannot read vocab.txt: {exc}") from exc
        pieces = text.split("\n")
        if pieces and pieces[-1] == "":
            pieces.pop()
        return [p.removesuffix("\r") for p in pieces]
    vocab = (tok_json.get("model") or {}).get("vocab")
    if not isinstance(vocab, dict):
        raise ModelLoadError(
            f"not a BERT checkpoint: no WordPiece vocabulary (vocab.txt or tokenizer.json) "
            f"in {src}")
    by_id = {i: t for t, i in vocab.items() if isinstance(i, int)}
    if sorted(by_id) != list(range(len(vocab))):
        raise ModelLoadError("tokenizer.json: the WordPiece ids are not 0..n-1")
    return [by_id[i] for i in range(len(by_id))]


def _normalizer_options(tok_json: dict[str, Any],
                        tok_config: dict[str, Any]) -> tuple[bool, bool]:
    """``(lowercase, strip_accents)`` of the BertNormalizer (tokenizer.json, else the
    tokenizer_config.json flags; uncased by default). As in Hugging Face's BertNormalizer,
    ``strip_accents`` unset means "same as lowercase"."""
    normalizer = tok_json.get("normalizer") or {}
    if normalizer.get("type") == "BertNormalizer":
        lowercase = bool(normalizer.get("lowercase", True))
        strip = normalizer.get("strip_accents")
    else:
        lowercase = bool(tok_config.get("do_lower_case", True))
        strip = tok_config.get("strip_accents")
    return lowercase, lowercase if strip is None else bool(strip)


def _phantom_space(piece: str, kind: gguf.TokenType) -> str:
    """A WordPiece token in the form llama.cpp's WPM tokenizer looks up.

    llama.cpp prepends U+2581 to every word and then matches pieces greedily; so a word-initial
    piece ``tok`` is stored as ``"\\u2581tok"`` and a continuation ``##tok`` as ``tok``.
    Control and unknown tokens are matched as whole special tokens and stay unchanged.
    """
    if kind in (gguf.TokenType.CONTROL, gguf.TokenType.UNKNOWN):
        return piece
    if piece.startswith(_CONTINUATION) and piece != _CONTINUATION:
        return piece.removeprefix(_CONTINUATION)
    return _PHANTOM_SPACE + piece


def _expected_shapes(config: BertConfig) -> dict[str, tuple[int, ...]]:
    """numpy shapes of the GGUF tensors llama.cpp's BERT loader requires (plus token types).

    numpy's ``(rows, cols)`` is GGUF's ``ne = (cols, rows)``; e.g. ``blk.N.ffn_up.weight`` is
    ``(n_ff, n_embd)`` here and ``{n_embd, n_ff}`` in ``src/models/bert.cpp``.
    """
    d, ff = config.hidden_size, config.intermediate_size
    names = gguf.TENSOR_NAMES
    t = gguf.MODEL_TENSOR
    shapes: dict[str, tuple[int, ...]] = {
        f"{names[t.TOKEN_EMBD]}.weight": (config.vocab_size, d),
        f"{names[t.TOKEN_TYPES]}.weight": (config.type_vocab_size, d),
        f"{names[t.POS_EMBD]}.weight": (config.max_positions, d),
        f"{names[t.TOKEN_EMBD_NORM]}.weight": (d,),
        f"{names[t.TOKEN_EMBD_NORM]}.bias": (d,),
    }
    per_layer = {
        t.ATTN_Q: (d, d), t.ATTN_K: (d, d), t.ATTN_V: (d, d), t.ATTN_OUT: (d, d),
        t.FFN_UP: (ff, d), t.FFN_DOWN: (d, ff),
    }
    norms = (t.ATTN_OUT_NORM, t.LAYER_OUT_NORM)
    for bid in range(config.num_layers):
        for tensor, shape in per_layer.items():
            base = names[tensor].format(bid=bid)
            shapes[f"{base}.weight"] = shape
            shapes[f"{base}.bias"] = (shape[0],)
        for tensor in norms:
            base = names[tensor].format(bid=bid)
            shapes[f"{base}.weight"] = (d,)
            shapes[f"{base}.bias"] = (d,)
    return shapes


def _read_tensors(src: Path, config: BertConfig, outtype: str) -> dict[str, np.ndarray]:
    """Read ``model.safetensors``, rename to GGUF names and cast to the output types."""
    path = src / "model.safetensors"
    if not path.is_file():
        raise ModelLoadError(f"not a supported checkpoint: model.safetensors missing in {src}")
    name_map = gguf.get_tensor_name_map(ARCH, config.num_layers)
    expected = _expected_shapes(config)
    token_types = f"{gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.TOKEN_TYPES]}.weight"
    tensors: dict[str, np.ndarray] = {}
    try:
        with safe_open(str(path), framework="np") as f:
            for key in f.keys():
                hf_name = key.removeprefix("bert.")
                if hf_name in _SKIPPED_NAMES or hf_name.startswith(_SKIPPED_PREFIXES):
                    continue
                gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if gguf_name is None or gguf_name not in expected:
                    raise ModelLoadError(f"model.safetensors: unexpected tensor {key!r}")
                data = f.get_tensor(key)
                if data.dtype.kind != "f":
                    raise ModelLoadError(
                        f"model.safetensors: tensor {key!r} has dtype {data.dtype}, "
                        "expected floating point")
                if tuple(data.shape) != expected[gguf_name]:
                    raise ModelLoadError(
                        f"model.safetensors: tensor {key!r} has shape {tuple(data.shape)}, "
                        f"expected {expected[gguf_name]} from config.json")
                if gguf_name in tensors:
                    raise ModelLoadError(f"model.safetensors: tensor {key!r} appears twice")
                data = data.astype(np.float32)
                if outtype != "f32" and data.ndim > 1 and gguf_name != token_types:
                    data = data.astype(np.float16)
                    if not np.isfinite(data).all():
                        raise ModelLoadError(
                            f"tensor {key!r} overflows float16; convert with outtype='f32'")
                tensors[gguf_name] = np.ascontiguousarray(data)
    except ModelLoadError:
        raise
    except (SafetensorError, TypeError, ValueError, OSError) as exc:
        # a corrupt file, or a dtype numpy cannot represent (bfloat16)
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    missing = sorted(set(expected) - set(tensors) - {token_types})
    if missing:
        raise ModelLoadError(
            f"model.safetensors lacks {len(missing)} tensor(s) llama.cpp's BERT needs, e.g. "
            f"{', '.join(missing[:3])}")
    return tensors
