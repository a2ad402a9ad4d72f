"""Constrained generation: JSON schemas to GBNF grammars for ``GPT4All.generate(grammar=...)``.

The conversion is llama.cpp's own (``common/json-schema-to-grammar.cpp``), compiled into our
native library and reached through ``g4r_json_schema_to_grammar``: every build has it,
including builds against your own llama.cpp tree (``G4R_LLAMA_CPP_DIR``).

Supported: objects (properties, required, additionalProperties), arrays (items, prefixItems,
minItems, maxItems), strings (enum, const, pattern, minLength, maxLength, formats date, time,
date-time, uuid), integers (minimum, maximum, exclusiveMinimum, exclusiveMaximum), numbers,
booleans, null, anyOf/oneOf/allOf, local ``$ref``. Strings never contain raw control
characters, so the output always parses as JSON. A regex ``pattern`` the converter cannot
enforce (not anchored with ``^...$``, lookarounds, ...) admits any string; the conversion then
logs a warning on the ``gpt4all_rag.native`` logger naming the pattern.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from . import native as _native
from ..errors import GrammarError, InvalidParameterError

__all__ = ["json_schema_to_gbnf"]


def json_schema_to_gbnf(schema: Mapping[str, Any] | str) -> str:
    """Convert a JSON schema into a GBNF grammar whose start symbol is ``root``.

    Args:
        schema: the schema as a dict or as JSON text (e.g. ``Model.model_json_schema()``).

    Returns:
        The grammar; pass it as ``GPT4All.generate(..., grammar=...)``.

    Raises:
        GrammarError: (a ValueError) the schema is not valid JSON, not an object, or uses a
            construct the converter does not support (the message says which).
        NativeLibraryError: the native library is missing or cannot be loaded.
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
    try:
        return _native.json_schema_to_grammar(text)
    except InvalidParameterError as exc:
        raise GrammarError(f"cannot convert the JSON schema: {exc}") from exc
