"""Reading a reply back when the model's JSON tool call (the fallback of templates without a
tool format) was cut off: by the token limit (OpenAI's ``length``, with the call's partial
arguments) or by a stop sequence (``stop``), never as a finished call with an empty name."""

from __future__ import annotations

import json

from gpt4all_rag.engine.chat import Plan, finish_reason, read_reply

FORCED = Plan(messages=[], variables={}, grammar=None, stops=(), parser=None,
              fallback_tools=["get_weather", "get_time"], fallback_required=True)
AUTO = Plan(messages=[], variables={}, grammar=None, stops=(), parser=None,
            fallback_tools=["get_weather"], fallback_required=False)


def test_a_whole_call_is_a_tool_call() -> None:
    reply = read_reply(FORCED, '{"name": "get_weather", "arguments": {"city": "Paris"}}', partial=False)
    (call,) = reply.calls
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert not reply.cut and finish_reason("stop", reply) == "tool_calls"


def test_a_call_cut_after_its_name_keeps_the_name_and_partial_arguments() -> None:
    reply = read_reply(FORCED, '{"name": "get_weather", "arguments": {"city": "Par', partial=False)
    (call,) = reply.calls
    assert call.name == "get_weather" and call.arguments == '{"city": "Par'
    assert reply.cut and reply.content == ""
    assert finish_reason("length", reply) == "length"
    assert finish_reason("stop", reply) == "stop"  # a stop sequence cut it: not a call to run


def test_a_call_cut_before_its_name_is_no_call() -> None:
    for text in ('{\n  "name" : "get_we', '{', '{"name": ""'):
        reply = read_reply(FORCED, text, partial=False)
        assert reply.calls == [] and reply.content == text
        assert finish_reason("length", reply) == "length"


def test_a_name_that_is_no_tool_is_no_call() -> None:
    reply = read_reply(FORCED, '{"name": "rm_rf", "arguments": {"path": "/', partial=False)
    assert reply.calls == [] and finish_reason("length", reply) == "length"


def test_text_under_tool_choice_auto_stays_text() -> None:
    reply = read_reply(AUTO, "It is sunny in Paris.", partial=False)
    assert reply.calls == [] and reply.content == "It is sunny in Paris."
    assert finish_reason("stop", reply) == "stop"
