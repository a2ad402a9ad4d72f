"""Fixtures of the models tier: the two real chat/base models, loaded once per test module
(module scope: a module's tests share one KV cache, no state crosses modules)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from gpt4all_rag import GPT4All
from tests.conftest import GEMMA3, SMOLLM2


@pytest.fixture(scope="module")
def smol(model_dir: Path) -> Iterator[GPT4All]:
    """SmolLM2-135M-Instruct (chat, ChatML template), 2 threads."""
    with GPT4All(SMOLLM2, model_path=model_dir, allow_download=False, n_threads=2) as m:
        yield m


@pytest.fixture(scope="module")
def gemma(model_dir: Path) -> Iterator[GPT4All]:
    """Gemma 3 270M (base model, no chat template), 2 threads."""
    with GPT4All(GEMMA3, model_path=model_dir, allow_download=False, n_threads=2) as m:
        yield m
