"""The CLI's sampling options come from the one sampling schema."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from gpt4all_rag.cli import main
from gpt4all_rag.engine.sampling import DEFAULTS, FIELDS, SamplingParams
from gpt4all_rag import errors


@pytest.mark.parametrize("command", ["chat", "ask"])
def test_every_sampling_field_is_an_option_with_the_schemas_default(command: str) -> None:
    text = CliRunner().invoke(main, [command, "--help"], terminal_width=200).output
    for name in FIELDS:
        if name == "grammar":
            continue
        assert f"--{name.replace('_', '-')}" in text, name
    assert "--temperature" in text
    assert f"[default: {DEFAULTS.temp}" in text and f"[default: {DEFAULTS.max_tokens}" in text


def test_a_bad_value_is_a_usage_error_not_a_traceback() -> None:
    r = CliRunner().invoke(main, ["chat", "--offline", "-p", "hi", "--top-p", "3"])
    assert r.exit_code == 2 and "top_p must be <= 1" in r.output and "Traceback" not in r.output


def test_the_schema_checks_and_aliases() -> None:
    p = SamplingParams.from_options(temperature=0.2, max_completion_tokens=5, stop="x")
    assert (p.temp, p.max_tokens, p.stop) == (0.2, 5, ("x",))
    assert SamplingParams.from_options(p, temp=None).temp == 0.2  # None leaves a field as it is
    assert dataclasses.replace(DEFAULTS) == SamplingParams()
    for bad in (dict(temp=-1), dict(top_p=0), dict(min_p=2), dict(repeat_penalty=0),
                dict(repeat_last_n=-2), dict(n_batch=0), dict(max_tokens=-1), dict(seed=1.5),
                dict(stop=[""]), dict(stop=3), dict(top_k=True), dict(grammar=3),
                dict(frequency_penalty=1), dict(temp=0.1, temperature=0.2)):
        with pytest.raises(errors.InvalidParameterError):
            SamplingParams.from_options(**bad)
