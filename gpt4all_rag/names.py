"""Names a person or a client gives: model file names and LocalDocs collection names.

One rule each, used by the library, the CLI and the server (whose API description carries the
patterns, so they are written without look-around: JSON Schema's regular expressions and
pydantic's Rust engine both read them).
"""

from __future__ import annotations

import re

from .errors import InvalidParameterError

__all__ = ["COLLECTION_NAME_MEANING", "COLLECTION_NAME_PATTERN", "FILES_SUFFIX", "MODEL_NAME_MAX",
           "MODEL_NAME_MEANING", "MODEL_NAME_PATTERN", "check_collection_name", "is_model_name"]

#: A model name: a file name in the model directory, of letters, digits, '.', '_' and '-',
#: starting with a letter or digit, without '..', at most MODEL_NAME_MAX characters (with
#: ``.gguf`` appended it still fits the usual 255-byte file-name limit).
MODEL_NAME_PATTERN = r"^[A-Za-z0-9](?:\.?[A-Za-z0-9_-])*\.?$"
MODEL_NAME_MAX = 250
MODEL_NAME_MEANING = (f"a file name in the model directory, at most {MODEL_NAME_MAX} letters, "
                      "digits, '.', '_' or '-', without '..'")

#: The suffix of the Chroma collection that holds a LocalDocs collection's file records.
FILES_SUFFIX = "__files"
#: A collection name: 3-63 letters, digits, '.', '_' or '-', starting and ending with a letter
#: or digit, without '..' (Chroma's rule), and (checked apart) not ending in FILES_SUFFIX.
COLLECTION_NAME_PATTERN = r"^[A-Za-z0-9](?:\.?[A-Za-z0-9_-])*\.?[A-Za-z0-9]$"
COLLECTION_NAME_MEANING = ("3-63 letters, digits, '.', '_' or '-', starting and ending with a "
                           f"letter or digit, without '..', not ending in {FILES_SUFFIX!r}")

_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)
_COLLECTION_NAME = re.compile(COLLECTION_NAME_PATTERN)


def is_model_name(name: object) -> bool:
    """Whether ``name`` follows the model-name rule (no path can pass it)."""
    return isinstance(name, str) and len(name) <= MODEL_NAME_MAX and bool(_MODEL_NAME.match(name))


def check_collection_name(collection: object) -> None:
    """Raise InvalidParameterError unless ``collection`` is a valid LocalDocs collection name."""
    if not isinstance(collection, str) or not 3 <= len(collection) <= 63 \
            or not _COLLECTION_NAME.match(collection) or collection.endswith(FILES_SUFFIX):
        raise InvalidParameterError(f"invalid collection name {collection!r}: use {COLLECTION_NAME_MEANING}")
