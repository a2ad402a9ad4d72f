"""examples/localdocs.ipynb, executed on a real Jupyter kernel (nbclient + ipykernel) with the
real small models; its outputs are checked, not its answers' words (greedy near-ties of a 135M
model differ between CPUs)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "localdocs.ipynb"
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def cells(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The executed notebook's code cells by tag (model_dir: the models are fetched first)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path_factory.mktemp("nb"))}})
    client.execute()  # raises CellExecutionError, with the traceback, if any cell fails
    return {c.metadata["tags"][0]: c for c in nb.cells if c.cell_type == "code"}


def _html(cell: Any) -> str:
    found = [o["data"]["text/html"] for o in cell.outputs
             if o.get("output_type") in ("execute_result", "display_data")
             and "text/html" in o.get("data", {})]
    assert len(found) == 1, cell.outputs
    return found[0]


def _stdout(cell: Any) -> str:
    return "".join(o["text"] for o in cell.outputs
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")


def _result(cell: Any) -> Any:
    (value,) = [o["data"]["text/plain"] for o in cell.outputs if o.get("output_type") == "execute_result"]
    return ast.literal_eval(value)


def test_the_notebook_is_stored_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.metadata["tags"][0] for c in code] == [
        "setup", "index", "search", "collections", "ask", "langchain", "llamaindex", "cleanup"]
    assert all(not c.outputs and c.execution_count is None for c in code)


def test_setup_writes_the_sample_folder(cells: dict[str, Any]) -> None:
    assert _result(cells["setup"]) == ["kettle.md", "parking.txt", "printer.rst"]


def test_indexing_shows_progress_widgets_and_a_report_table(cells: dict[str, Any]) -> None:
    cell = cells["index"]
    widgets = [o for o in cell.outputs if WIDGET in o.get("data", {})]
    assert len(widgets) == 2  # tqdm.auto's bars over files and chunks, shown by default
    page = _html(cell)
    assert 'data-kind="index-report"' in page and "<caption>3 indexed (" in page
    assert all(name in page for name in ("kettle.md", "parking.txt", "printer.rst"))


def test_search_results_render_as_a_table_with_citations(cells: dict[str, Any]) -> None:
    page = _html(cells["search"])
    assert 'data-kind="search-results"' in page
    rows = page.split("<tbody>")[1].split("<tr>")[1:]
    assert len(rows) == 3
    assert "kettle.md, lines " in rows[0] and "Kitchen &gt; Kettle" in rows[0]


def test_collections_render_as_a_table(cells: dict[str, Any]) -> None:
    page = _html(cells["collections"])
    assert 'data-kind="collections"' in page and "notebook-demo" in page
    assert "all-MiniLM-L6-v2.gguf2.f16.gguf" in page


def test_the_answer_comes_with_its_sources(cells: dict[str, Any]) -> None:
    cell = cells["ask"]
    assert _stdout(cell).strip()
    page = _html(cell)
    assert 'data-kind="search-results"' in page
    rows = page.split("<tbody>")[1].split("<tr>")[1:]
    assert len(rows) == 2 and "kettle.md, lines " in rows[0]


def test_the_langchain_chain_answers_from_the_vector_store(cells: dict[str, Any]) -> None:
    out = _stdout(cells["langchain"]).strip().splitlines()
    answer, sources = "\n".join(out[:-1]), ast.literal_eval(out[-1])
    assert answer.strip()
    assert len(sources) == 2 and sources[0] == "memo-12"  # the added text ranks first


def test_the_llamaindex_engine_cites_the_matching_file(cells: dict[str, Any]) -> None:
    assert _stdout(cells["llamaindex"]).strip()
    citations = _result(cells["llamaindex"])
    assert len(citations) == 2 and "parking.txt, line" in citations[0]
    assert not cells["cleanup"].outputs
