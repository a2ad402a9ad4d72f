"""The house's rules, checked on the tree: no import circle, no source file over 600 lines,
and docstrings whose stated defaults are the real ones."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [ROOT / "gpt4all_rag", ROOT / "integrations" / "langchain" / "langchain_gpt4all_rag",
            ROOT / "integrations" / "llama_index" / "llama_index"]
MAX_LINES = 600


def _modules(package: Path) -> dict[str, Path]:
    base = package.parent
    out = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports: at module level, under TYPE_CHECKING and
    inside functions alike (a lazy import is a dependency too)."""
    mods = _modules(package)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    out.add(sub if sub in mods else target)
        graph[name] = {t for t in out if t in mods and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_no_import_circle(package: Path) -> None:
    graph = import_graph(package)
    assert len(graph) > 3
    circles = cycles(graph)
    details = [{m: sorted(graph[m] & set(c)) for m in c} for c in circles]
    assert not circles, f"import circles: {details}"


def test_the_circle_finder_finds_circles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_source_file_over_600_lines() -> None:
    sources = [p for pkg in PACKAGES for p in pkg.rglob("*.py")]
    sources += [p for p in (ROOT / "native").rglob("*") if p.suffix in (".cpp", ".h", ".c")]
    long = {str(p.relative_to(ROOT)): n for p in sources
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert len(sources) > 50 and not long


# -- documented defaults --------------------------------------------------------------------
#: "(default 2048)", "default ``True``", "default: 1;", and "``None`` (default)".
_DEFAULT = re.compile(r"\bdefault:? (?:``)?\"?([-\w.]+)\"?(?:``)?[),;.]"
                      r"|(?:``)?\"?([-\w.]+)\"?(?:``)? \(default[),]")


def _documented_defaults(doc: str) -> Iterator[tuple[str, str]]:
    """``(argument, stated default)`` of a Google-style docstring's argument entries."""
    entry = None
    for line in doc.splitlines():
        m = re.match(r"\s{4,12}(\w+)(?: \([^)]*\))?: ", line)
        if m:
            entry = m[1]
        if entry is None:
            continue
        for d in _DEFAULT.finditer(line):
            yield entry, next(g for g in d.groups() if g)


def _same(stated: str, real: Any) -> bool:
    if stated == "cpu":  # the seed's device names the CPU "cpu"; None means the same
        return real in (None, "cpu")
    if stated in ("None", "True", "False"):
        return repr(real) == stated
    try:
        return float(stated.replace(",", "")) == float(real)
    except (TypeError, ValueError):
        return str(real) == stated or Path(str(real)).name == stated


def _public_callables() -> Iterator[tuple[str, Callable[..., Any], str]]:
    from langchain_gpt4all_rag import ChatGPT4All, GPT4AllEmbeddings, GPT4AllLLM
    from llama_index.embeddings.gpt4all_rag import GPT4AllRagEmbedding
    from llama_index.llms.gpt4all_rag import GPT4AllRag

    from gpt4all_rag import Embed4All, GPT4All
    from gpt4all_rag.engine.llama import Llama
    from gpt4all_rag.localdocs import LocalDocs

    for cls in (GPT4All, Embed4All, Llama, LocalDocs):
        for name, member in inspect.getmembers(cls, inspect.isfunction):
            if not name.startswith("_") or name == "__init__":
                yield f"{cls.__name__}.{name}", member, member.__doc__ or ""
    for model in (ChatGPT4All, GPT4AllLLM, GPT4AllEmbeddings, GPT4AllRag, GPT4AllRagEmbedding):
        yield model.__name__, model, model.__doc__ or ""


def _real_default(obj: Callable[..., Any], name: str) -> Any:
    fields = getattr(obj, "model_fields", None)
    if fields is not None:
        field = fields.get(name) or next((f for f in fields.values() if f.alias == name), None)
        if field is None:
            raise KeyError(name)
        return field.get_default(call_default_factory=True)
    param = inspect.signature(obj).parameters[name]
    if param.default is inspect.Parameter.empty:
        raise KeyError(name)
    return param.default


def test_documented_defaults_are_the_real_ones() -> None:
    checked, wrong = 0, []
    for where, obj, doc in _public_callables():
        for name, stated in _documented_defaults(doc):
            try:
                real = _real_default(obj, name)
            except (KeyError, ValueError, TypeError):
                continue
            checked += 1
            if not _same(stated, real):
                wrong.append(f"{where}: {name} documented default {stated}, real {real!r}")
    assert checked >= 10 and not wrong, wrong
