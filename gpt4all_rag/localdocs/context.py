"""Retrieved chunks into a chat prompt, with numbered citations.

The default layout follows GPT4All's desktop LocalDocs (``### Context:`` then one entry per
excerpt), with numbers so that answers can cite ``[1]``, ``[2]``. Override it by passing a
``prompt_template`` with the placeholders ``{context}`` and ``{question}`` and, optionally, an
``excerpt_template`` with ``{n}``, ``{title}``, ``{path}``, ``{location}``, ``{citation}`` and
``{text}``.
"""

from __future__ import annotations

from typing import Sequence

from ..errors import InvalidParameterError
from .retrieval import SearchResult

__all__ = ["DEFAULT_EXCERPT_TEMPLATE", "DEFAULT_PROMPT_TEMPLATE", "build_prompt", "format_sources"]

DEFAULT_EXCERPT_TEMPLATE = "[{n}] {title} ({citation})\n{text}"

DEFAULT_PROMPT_TEMPLATE = (
    "### Context:\n{context}\n\n"
    "Answer the question below using the context above. Cite the excerpts you use as [1], [2]. "
    "If the context does not contain the answer, say so.\n\n"
    "### Question:\n{question}"
)


def build_prompt(question: str, results: Sequence[SearchResult], *,
                 prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
                 excerpt_template: str = DEFAULT_EXCERPT_TEMPLATE) -> str:
    """The user message the model sees: retrieved excerpts, then the question.

    With no results the question is returned unchanged.

    Raises:
        InvalidParameterError: a template lacks a placeholder or names an unknown one.
    """
    if not results:
        return question
    try:
        context = "\n\n".join(
            excerpt_template.format(n=i, title=r.title or r.path, path=r.path, location=r.location(),
                                    citation=r.citation(), text=r.text.strip())
            for i, r in enumerate(results, start=1))
        if "{context}" not in prompt_template or "{question}" not in prompt_template:
            raise KeyError("context/question")
        return prompt_template.format(context=context, question=question)
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidParameterError(
            f"bad LocalDocs template ({exc}): the prompt template needs {{context}} and "
            "{question}; excerpts may use {n} {title} {path} {location} {citation} {text}") from exc


def format_sources(results: Sequence[SearchResult], *, excerpt_chars: int = 160) -> str:
    """Numbered sources for display, one per line:
    ``[1] path, lines 3-9 (Heading > Sub): "excerpt..."`` (the heading path when known)."""
    lines = []
    for i, r in enumerate(results, start=1):
        excerpt = " ".join(r.text.split())
        if len(excerpt) > excerpt_chars:
            excerpt = excerpt[: excerpt_chars - 1].rstrip() + "…"
        heading = f" ({r.heading})" if r.heading else ""
        lines.append(f"[{i}] {r.citation()}{heading}: \"{excerpt}\"")
    return "\n".join(lines)
