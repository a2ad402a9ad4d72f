"""Metadata filters for LocalDocs searches, turned into Chroma ``where`` clauses.

A filter is a dict of conditions that must all hold (one key: one condition):

* ``{"extension": ".md"}``: a value matches exactly; ``{"extension": [".md", ".rst"]}``: a list
  matches any of its values.
* ``{"page": {"$gte": 3}}``: Chroma's operators (``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``,
  ``$lte``, ``$in``, ``$nin``) as they are.
* ``{"$or": [{...}, {...}]}`` and ``{"$and": [...]}``: combinations of filters.

Keys: ``path`` (as stored: an indexed file's absolute path, an added text's ``source`` or
``path``), ``extension`` (``".md"`` or ``"md"``, any case), ``title``, ``heading`` (the full heading path
as stored, ``"Install > Linux"``), ``page``, ``start_line``, ``end_line``, ``origin``
(``"file"`` or ``"text"``), ``doc_id``, and the keys of the metadata given to
:meth:`~gpt4all_rag.localdocs.LocalDocs.add_texts` (such as ``source``).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import InvalidParameterError

__all__ = ["Filter", "to_where"]

Filter = Mapping[str, Any]
"""A metadata filter (see the module docstring)."""

_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"})
_SCALARS = (str, int, float, bool)


def to_where(filter: Filter | None) -> dict[str, Any] | None:  # noqa: A002 - LangChain's name
    """The Chroma ``where`` clause of a filter; None for no filter (None or ``{}``).

    Raises:
        InvalidParameterError: the filter is not a dict, a key is empty or an unknown
            ``$`` operator, a value is None or not a string, number or bool, or ``$and`` /
            ``$or`` is not a non-empty list of filters.
    """
    if filter is None:
        return None
    if not isinstance(filter, Mapping):
        raise InvalidParameterError(f"a filter must be a dict such as {{'extension': '.md'}}, got {filter!r}")
    clauses = [_clause(key, value) for key, value in filter.items()]
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _clause(key: Any, value: Any) -> dict[str, Any]:
    if key in ("$and", "$or"):
        if not isinstance(value, (list, tuple)) or not value:
            raise InvalidParameterError(f"{key} needs a non-empty list of filters, got {value!r}")
        parts = [to_where(f) for f in value]
        parts = [p for p in parts if p is not None]
        if not parts:
            raise InvalidParameterError(f"{key} needs at least one non-empty filter, got {value!r}")
        return parts[0] if len(parts) == 1 else {key: parts}
    if not isinstance(key, str) or not key or key.startswith("$"):
        raise InvalidParameterError(f"invalid filter key {key!r}: use a metadata name such as "
                                    "'path', 'extension', 'title' or 'heading', or $and / $or")
    if isinstance(value, Mapping):
        if not value or not set(value) <= _OPERATORS:
            raise InvalidParameterError(f"filter on {key!r}: unknown operator in {value!r}; use "
                                        f"{sorted(_OPERATORS)}")
        return {key: {op: _values(key, v) if op in ("$in", "$nin") else _value(key, v)
                      for op, v in value.items()}}
    if isinstance(value, (list, tuple, set, frozenset)):
        return {key: {"$in": _values(key, value)}}
    return {key: _value(key, value)}


def _values(key: str, values: Any) -> list[Any]:
    if not isinstance(values, (list, tuple, set, frozenset)) or not values:
        raise InvalidParameterError(f"filter on {key!r}: expected a non-empty list, got {values!r}")
    return [_value(key, v) for v in values]


def _value(key: str, value: Any) -> Any:
    if not isinstance(value, _SCALARS):
        raise InvalidParameterError(
            f"filter on {key!r}: values must be strings, numbers or booleans, got {value!r}")
    if key == "extension" and isinstance(value, str):
        value = value.lower()
        return value if not value or value.startswith(".") else "." + value
    return value
