"""Chat templates are untrusted input: rendering is bounded in time and size."""

from __future__ import annotations

import pytest

from gpt4all_rag.errors import ChatTemplateError
from gpt4all_rag.engine.templates import ChatTemplate, RenderLimits

MESSAGES = [{"role": "user", "content": "Hello"}]

HOSTILE = {
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "megabytes of output": "{% for i in range(100000) %}{{ '0123456789' * 100 }}{% endfor %}",
    "string multiplication": "{{ 'x' * 1000000000 }}",
    "list multiplication": "{{ ([1] * 1000000000)|length }}",
    "huge power": "{{ 2 ** 100000000 }}",
    "filter width": "{{ 'x'|center(1000000000) }}",
    "method width": "{{ 'x'.ljust(1000000000) }}",
    "format width": "{{ '%0999999999d'|format(1) }}",
    "str.format width": "{{ '{:>999999999}'.format(1) }}",
    "percent width": "{{ '%0999999999d' % 1 }}",
    "namespace doubling": ("{% set ns = namespace(x='ab') %}{% for i in range(100) %}"
                           "{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x|length }}"),
    "macro doubling": ("{% macro f(s, n) %}{{ f(s ~ s, n - 1) if n else s|length }}{% endmacro %}"
                       "{{ f('ab', 60) }}"),
    "list doubling": ("{% set ns = namespace(l=[1]) %}{% for i in range(100) %}"
                      "{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}"),
    "deep recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
}


@pytest.mark.parametrize("source", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_templates_end_with_a_template_error(source: str) -> None:
    template = ChatTemplate(source)
    with pytest.raises(ChatTemplateError):
        template.render(MESSAGES)
    # the same template object, and the environment, stay usable
    assert ChatTemplate("{{ messages[0].content }}").render(MESSAGES) == "Hello"


def test_the_time_limit_is_configurable_and_named_in_the_message() -> None:
    template = ChatTemplate(HOSTILE["nested loops"])
    with pytest.raises(ChatTemplateError, match="longer than 0.2 s"):
        template.render(MESSAGES, limits=RenderLimits(timeout_s=0.2))


def test_the_size_limit_grows_with_the_conversation() -> None:
    # A conversation far beyond the base limit still renders: the limit adds twice its size.
    long = [{"role": "user", "content": "word " * 100_000}] * 3
    template = ChatTemplate("{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}")
    text = template.render(long, limits=RenderLimits(max_chars=1000))
    assert len(text) > 1_500_000
    with pytest.raises(ChatTemplateError, match="rendered more than"):
        ChatTemplate("{% for i in range(10) %}{{ messages[0].content }}{% endfor %}").render(
            [{"role": "user", "content": "x" * 1000}], limits=RenderLimits(max_chars=1000))


def test_ordinary_operations_still_work() -> None:
    source = ("{{ '%s-%d'|format('a', 3) }} {{ '{}!'.format('x') }} {{ '%s' % 'y' }} "
              "{{ 'ab' * 3 }} {{ 2 ** 10 }} {{ [1, 2] + [3] }} {{ messages|tojson }} "
              "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
              "{% endfor %}{{ ns.n }} {{ 'x'|center(5) }}|{{ range(3)|list }}")
    assert ChatTemplate(source).render(MESSAGES) == (
        'a-3 x! y ababab 1024 [1, 2, 3] [{"role": "user", "content": "Hello"}] 1   x  |[0, 1, 2]')
