"""The distribution installs namespace-package portions that coexist with llama-index-core."""

from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path

import llama_index
import llama_index.core

PROJECT = Path(__file__).resolve().parents[1]
MODULES = ("llama_index.llms.gpt4all_rag", "llama_index.embeddings.gpt4all_rag",
           "llama_index.retrievers.gpt4all_rag")


def test_shared_folders_are_namespace_packages() -> None:
    for shared in ("llama_index", "llama_index/llms", "llama_index/embeddings",
                   "llama_index/retrievers"):
        assert not (PROJECT / shared / "__init__.py").exists(), shared
    assert getattr(llama_index, "__file__", None) is None  # a namespace package
    assert llama_index.core.__version__  # llama-index-core still imports


def test_our_modules_come_from_this_project() -> None:
    for name in MODULES:
        module = importlib.import_module(name)
        assert Path(module.__file__).resolve().is_relative_to(PROJECT), name
        assert (Path(module.__file__).parent / "py.typed").exists()


def test_distribution_metadata() -> None:
    dist = importlib.metadata.distribution("llama-index-gpt4all-rag")
    requires = " ".join(dist.requires or [])
    assert "gpt4all-rag" in requires and "llama-index-core>=0.12" in requires
