"""Task prefixes and Matryoshka support of known embedding models, as data.

An embedding model is recognised by its GGUF ``general.name`` (matched case-insensitively
against :attr:`EmbeddingRule.pattern`). The rule says which task prefixes the model was trained
with, which one embeds documents by default, which one embeds queries, and whether its vectors
may be truncated (Matryoshka representation learning). The prefix is written before the text
as ``prefix + ": "``, as GPT4All's backend and the model cards do.

Sources: GPT4All 2.8.2's embedding backend (the table of MiniLM, Nomic Embed, BGE and E5
prefixes), the Nomic Embed v1/v1.5 model cards (``search_document``, ``search_query``,
``clustering``, ``classification``; v1.5 Matryoshka dimensions 768/512/384/256/128 with layer
norm before truncation), the BGE model cards (query instruction "Represent this sentence for
searching relevant passages") and the E5 model cards (``passage`` / ``query``).

To support another model, append an :class:`EmbeddingRule` to :data:`RULES` (first match wins).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["EmbeddingRule", "RULES", "find_rule"]


@dataclass(frozen=True)
class EmbeddingRule:
    """How one family of embedding models is prompted.

    Attributes:
        family: a readable name of the family.
        pattern: regular expression searched in the lower-cased ``general.name``.
        document_prefix: the prefix used when ``prefix=None`` ("" means no prefix).
        query_prefix: the prefix for search queries ("" means no prefix).
        prefixes: every prefix the model accepts ("" included when a bare text is valid).
        matryoshka: whether ``dimensionality`` below the full size is supported (the vector is
            layer-normalised, truncated, then L2-normalised, as Nomic specifies for v1.5).
        chunk_tokens, overlap_tokens: the LocalDocs chunking a new collection gets with this
            model when none is given (model tokens). Models trained on short inputs retrieve
            better from short chunks.
    """

    family: str
    pattern: str
    document_prefix: str
    query_prefix: str
    prefixes: frozenset[str]
    matryoshka: bool = False
    chunk_tokens: int = 256
    overlap_tokens: int = 32

    def matches(self, model_name: str) -> bool:
        return re.search(self.pattern, model_name.lower()) is not None


_NOMIC_TASKS = frozenset({"search_document", "search_query", "clustering", "classification"})
_BGE_QUERY = "Represent this sentence for searching relevant passages"

#: Known families, first match wins.
RULES: list[EmbeddingRule] = [
    # all-MiniLM-L6-v2 was fine-tuned on inputs of at most 128 word pieces (model card). On the
    # Python-docs retrieval set (bench/bench_retrieval.py) 128/16-token chunks scored MRR@10
    # 0.842 against 0.790 for 256/32.
    EmbeddingRule("MiniLM", r"minilm", "", "", frozenset({""}), chunk_tokens=128, overlap_tokens=16),
    EmbeddingRule("Nomic Embed v1.5", r"nomic[-_ ]embed[-_ ]text[-_ ]v1[._]5", "search_document",
                  "search_query", _NOMIC_TASKS, matryoshka=True),
    EmbeddingRule("Nomic Embed v1", r"nomic[-_ ]embed[-_ ]text[-_ ]v1", "search_document",
                  "search_query", _NOMIC_TASKS),
    EmbeddingRule("BGE (English)", r"\bbge[-_ ].*\ben\b", "", _BGE_QUERY, frozenset({"", _BGE_QUERY})),
    EmbeddingRule("E5", r"\be5[-_ ]", "passage", "query", frozenset({"passage", "query"})),
]


def find_rule(model_name: str | None) -> EmbeddingRule | None:
    """The rule of the first family whose pattern matches ``model_name``, or ``None``."""
    if not model_name:
        return None
    return next((r for r in RULES if r.matches(model_name)), None)
