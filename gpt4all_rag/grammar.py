"""Constrained generation: JSON schemas to GBNF grammars for ``GPT4All.generate(grammar=...)``.

The conversion is llama.cpp's own algorithm (``json-schema-to-grammar``), in the pure-Python
port that llama-cpp-python ships (``llama_cpp/llama_grammar.py``). That file is not part of
this repository: the build takes it from the same pinned llama-cpp-python source distribution
that carries llama.cpp, and installs it as ``gpt4all_rag/_llama_grammar.py``.

Supported: objects (properties, required, additionalProperties), arrays (items, min/maxItems),
strings (enum, const, pattern, minLength/maxLength, formats date/time/uuid), numbers, integers,
booleans, null, anyOf/oneOf/allOf, local ``$ref``.
"""

from __future__ import annotations

import importlib
import json
from typing import Any, Mapping

from .errors import GrammarError

__all__ = ["json_schema_to_gbnf"]


def _converter() -> Any:
    try:
        return importlib.import_module("gpt4all_rag._llama_grammar")
    except ImportError as exc:
        raise GrammarError(
            "JSON-schema conversion is not available in this build: gpt4all_rag/_llama_grammar.py "
            "is installed by the default build (it comes with the pinned llama-cpp-python sdist); "
            "builds against G4R_LLAMA_CPP_DIR do not have it") from exc


def json_schema_to_gbnf(schema: Mapping[str, Any] | str) -> str:
    """Convert a JSON schema into a GBNF grammar whose start symbol is ``root``.

    Args:
        schema: the schema as a dict or as JSON text (e.g. ``Model.model_json_schema()``).

    Returns:
        The grammar; pass it as ``GPT4All.generate(..., grammar=...)``.

    Raises:
        GrammarError: (a ValueError) the schema is not valid JSON, not an object, or uses a
            construct the converter does not support.
    """
    if isinstance(schema, str):
        try:
            parsed = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise GrammarError(f"the schema is not valid JSON: {exc}") from exc
    else:
        parsed = schema
    if not isinstance(parsed, Mapping):
        raise GrammarError(f"a JSON schema must be an object, got {type(parsed).__name__}")
    try:
        text = json.dumps(parsed)
    except (TypeError, ValueError) as exc:
        raise GrammarError(f"the schema cannot be serialised as JSON: {exc}") from exc
    module = _converter()
    try:
        return module.json_schema_to_gbnf(text)
    except (KeyError, ValueError, TypeError, AttributeError, RecursionError,
            NotImplementedError, AssertionError) as exc:
        raise GrammarError(f"cannot convert the JSON schema: {type(exc).__name__}: {exc}") from exc
