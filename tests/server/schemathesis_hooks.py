"""schemathesis hooks of tests/server/test_server_fuzz.py (loaded by ``SCHEMATHESIS_HOOKS``):
what the server's JSON Schema cannot state (see that module's docstring)."""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from hypothesis import strategies as st

#: MiniLM's vocabulary and embedding size (the server's default embedding model in the test).
MINILM_VOCAB, MINILM_DIM = 30522, 384
#: The first ordinary word piece of MiniLM's vocabulary (ids below are special or unused).
MINILM_FIRST_WORD = 1996

#: GBNF text: a grammar of one to three literal alternatives, in printable ASCII (text any
#: model's vocabulary can spell; SmolLM2's lacks some bytes, and a grammar asking for them is
#: refused as unsatisfiable).
GBNF = st.builds(lambda words: "root ::= " + " | ".join(json.dumps(w) for w in words),
                 st.lists(st.text(st.characters(min_codepoint=32, max_codepoint=126,
                                                exclude_characters="\\\""), min_size=1, max_size=8),
                          min_size=1, max_size=3))
schemathesis.openapi.format("gbnf", GBNF)


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:  # noqa: ARG001 - its signature
    """Each generated body (every phase) brought within what the test server's models accept."""
    case.body = _model_rules(case.body)


#: SmolLM2's vocabulary size (the test server's chat model).
SMOLLM2_VOCAB = 49152
#: Characters SmolLM2's vocabulary has no token for: a prompt of only these is no prompt.
SMOLLM2_UNTOKENIZED = set("\x04\x06\x13\x14\x16\x1d")


def _short(value: Any) -> Any:
    """``value`` with strings cut to 64 characters and lists to 6 items: a prompt that fits
    the test server's context window (2,048 tokens) whatever characters were drawn."""
    if isinstance(value, str):
        return value[:64]
    if isinstance(value, list):
        return [_short(v) for v in value[:6]]
    if isinstance(value, dict):
        return {_short(k): _short(v) for k, v in value.items()}
    return value


def _model_rules(body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    for field in ("messages", "tools", "response_format", "prompt"):  # within n_ctx tokens
        if field in body:
            body[field] = _short(body[field])
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if isinstance(prompt, str) and prompt and set(prompt) <= SMOLLM2_UNTOKENIZED:
        body["prompt"] = "Hi"
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and "function" in choice:  # OpenAI's: it names one of the tools
        tools = body.get("tools") or []
        names = [t.get("function", {}).get("name") for t in tools if isinstance(t, dict)]
        if names and all(isinstance(n, str) for n in names):
            body["tool_choice"] = {"type": "function", "function": {"name": names[0]}}
        else:
            body["tool_choice"] = "auto"
    elif isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:  # Responses'
        names = [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
        body["tool_choice"] = ({"type": "function", "name": names[0]} if names and isinstance(names[0], str)
                               else "auto")
    elif isinstance(choice, dict) and choice.get("type") == "tool":  # Anthropic's
        names = [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
        body["tool_choice"] = ({"type": "tool", "name": names[0]} if names and isinstance(names[0], str)
                               else {"type": "auto"})
    if not body.get("tools"):  # "required" / Anthropic's "any" need a tool
        if body.get("tool_choice") == "required":
            body["tool_choice"] = "auto"
        elif isinstance(body.get("tool_choice"), dict) and body["tool_choice"].get("type") == "any":
            body["tool_choice"] = {"type": "auto"}
    if "messages" in body and body.get("top_logprobs") is not None:  # chat: needs logprobs: true
        body["logprobs"] = True
    if isinstance(body.get("tokens"), list):  # /detokenize: SmolLM2's vocabulary
        body["tokens"] = [int(t) % SMOLLM2_VOCAB if isinstance(t, (int, float)) else t for t in body["tokens"]]
    if body.get("dimensions") is not None:  # MiniLM is no Matryoshka model
        body["dimensions"] = MINILM_DIM
    inputs = body.get("input")
    if isinstance(inputs, list) and inputs and not isinstance(inputs[0], str):
        def word(t: Any) -> Any:
            return MINILM_FIRST_WORD + int(t) % (MINILM_VOCAB - MINILM_FIRST_WORD) if isinstance(t, (int, float)) else t
        body["input"] = [[word(t) for t in i] if isinstance(i, list) else word(i) for i in inputs]
    return body
