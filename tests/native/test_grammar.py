"""JSON schema -> GBNF through the native library (llama.cpp's converter); no weights needed."""

from __future__ import annotations

import json
import logging

import pytest

from gpt4all_rag.engine import native as _native
from gpt4all_rag.errors import GrammarError
from gpt4all_rag.engine.grammar import json_schema_to_gbnf


def rules(grammar: str) -> dict[str, str]:
    out = {}
    for line in grammar.splitlines():
        if " ::= " in line:
            name, body = line.split(" ::= ", 1)
            out[name] = body
    return out


def test_integer_bounds_become_digit_rules() -> None:
    g = rules(json_schema_to_gbnf({"type": "object", "properties": {
        "month": {"type": "integer", "minimum": 1, "maximum": 12}}, "required": ["month"]}))
    assert g["month"] == '([1-9] | "1" [0-2])'
    assert "month-kv" in g["root"]
    g = rules(json_schema_to_gbnf({"type": "integer", "exclusiveMinimum": 0}))
    assert g["root"] == "([1-9] [0-9]{0,15})"  # no sign, no zero


def test_strings_admit_no_raw_control_characters() -> None:
    g = rules(json_schema_to_gbnf({"type": "string"}))
    assert g["char"].startswith(r'[^"\\\x7F\x00-\x1F]')


def test_a_schema_given_as_json_text() -> None:
    assert json_schema_to_gbnf('{"type": "boolean"}') == json_schema_to_gbnf({"type": "boolean"})


def test_a_grammar_larger_than_the_first_buffer() -> None:
    props = {f"field_{i:03d}": {"type": "string", "enum": [f"value-{i}-{j}" for j in range(5)]}
             for i in range(80)}
    g = json_schema_to_gbnf({"type": "object", "properties": props, "required": list(props)})
    assert len(g) > 4096 and all(f'\\"field_{i:03d}\\"' in g for i in range(80))


@pytest.mark.parametrize("schema, match", [
    ('{"type": ', "not valid JSON"),
    ("[1, 2]", "must be an object"),
    ({"type": "nonsense"}, "unrecognized type nonsense"),
    ({"type": "integer", "minimum": "one"}, "minimum must be a number"),
    ({"$ref": "#/definitions/missing"}, "cannot resolve"),
    ({"type": "string", "pattern": "^(ab$"}, "Invalid pattern"),
])
def test_bad_schemas_raise_grammar_error(schema: object, match: str) -> None:
    with pytest.raises(GrammarError, match=match):
        json_schema_to_gbnf(schema)  # type: ignore[arg-type]
    assert json_schema_to_gbnf({"type": "null"})  # still usable


def test_an_unenforceable_pattern_warns_through_logging_not_stderr(
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    with caplog.at_level(logging.WARNING, logger="gpt4all_rag.native"):
        g = rules(json_schema_to_gbnf({"type": "string", "pattern": "[a-z]+"}))
    assert g["root"] == "string" and g["string"] == '"\\"" char* "\\""'  # any string
    assert any("pattern [a-z]+ is not supported" in r.getMessage() for r in caplog.records)
    out, err = capfd.readouterr()
    assert "JSON schema" not in err and "JSON schema" not in out
    assert rules(json_schema_to_gbnf({"type": "string", "pattern": "^[a-z]+$"}))["root"] == \
        '"\\"" ([a-z]+) "\\""'


def test_native_entry_point_reports_the_needed_size() -> None:
    L = _native.lib()
    import ctypes
    need = ctypes.c_size_t()
    status = L.g4r_json_schema_to_grammar(json.dumps({"type": "boolean"}).encode(), None, 0,
                                          ctypes.byref(need))
    assert status == _native.ERR_BUFFER_TOO_SMALL and need.value > 0
    buf = ctypes.create_string_buffer(need.value + 1)
    assert L.g4r_json_schema_to_grammar(b'{"type": "boolean"}', buf, need.value + 1,
                                        ctypes.byref(need)) == _native.OK
    assert buf.value.decode() == json_schema_to_gbnf({"type": "boolean"})
    assert L.g4r_json_schema_to_grammar(None, buf, 10, ctypes.byref(need)) == \
        _native.ERR_INVALID_ARGUMENT
