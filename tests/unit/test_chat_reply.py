"""Reading a reply back when the model's JSON tool call (the fallback of templates without a
tool format) was cut off: a call marked cut, with its partial arguments, and ``finish_reason``
``length`` (the token limit, as OpenAI reports it) or ``stop`` (a stop sequence), never
``tool_calls``: a client that runs the calls of a ``tool_calls`` reply never runs a cut one."""

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


def test_a_call_cut_before_its_name_has_no_name_and_is_not_finished() -> None:
    for text in ('{\n  "name" : "get_we', '{', '{"name": "rm_rf", "arguments": {"path": "/'):
        reply = read_reply(FORCED, text, partial=False)
        (call,) = reply.calls
        assert call.name == "" and reply.cut and reply.content == ""
        assert finish_reason("length", reply) == "length"


def test_text_under_tool_choice_auto_stays_text() -> None:
    reply = read_reply(AUTO, "It is sunny in Paris.", partial=False)
    assert reply.calls == [] and reply.content == "It is sunny in Paris."
    assert finish_reason("stop", reply) == "stop"
