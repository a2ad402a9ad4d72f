"""LocalDocs in GPT4All chat sessions and the LocalDocs commands, on real models and documents."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

from gpt4all_rag import GPT4All, errors
from gpt4all_rag.cli import main
from gpt4all_rag.localdocs import LocalDocs
from tests.conftest import SMOLLM2

DOCS = {
    "volcanoes.md": "# Volcanoes\n\nMount Etna is an active stratovolcano on the east coast of "
                    "Sicily. It is the tallest active volcano in Europe outside the Caucasus.\n\n"
                    "## Eruptions\n\nEtna erupts frequently; its eruptions are mostly effusive.\n",
    "bread.txt": "Sourdough bread is leavened by a culture of wild yeast and lactic acid bacteria.\n"
                 "The starter is fed with flour and water every day.\n",
    "trains.rst": "Trains\n======\n\nThe Shinkansen is a network of high-speed railway lines in "
                  "Japan. It opened in 1964 between Tokyo and Osaka.\n",
}


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("docs")
    for name, text in DOCS.items():
        (d / name).write_text(text)
    return d


@pytest.fixture(scope="module")
def localdocs(tmp_path_factory: pytest.TempPathFactory, docs_dir: Path, model_dir: Path) -> Iterator[LocalDocs]:
    db = tmp_path_factory.mktemp("db")
    with LocalDocs("chat-test", persist_directory=db, model_path=model_dir) as ld:
        report = ld.index(docs_dir, progress=False)
        assert len(report.indexed) == 3
        yield ld


def test_chat_turn_gets_context_and_sources(smol: GPT4All, localdocs: LocalDocs, docs_dir: Path) -> None:
    with smol.chat_session(system_message="Answer from the context.", localdocs=localdocs, localdocs_k=2):
        reply = smol.generate("Which volcano is on Sicily?", max_tokens=30, temp=0, repeat_penalty=1.0)
        assert isinstance(reply, str) and reply
        sources = smol.last_sources
        assert 1 <= len(sources) <= 2
        assert sources[0].path == str(docs_dir / "volcanoes.md")
        assert sources[0].start_line is not None and sources[0].citation().startswith(str(docs_dir))
        user = smol.current_chat_session[1]
        assert user["content"] == "Which volcano is on Sicily?"
        assert "Mount Etna" in user["localdocs_prompt"] and "### Context:" in user["localdocs_prompt"]
        assert smol.stats.prompt_tokens > 60  # the excerpts were part of the prompt
        first_prompt = smol.stats.prompt_tokens
        smol.generate("When did the Shinkansen open?", max_tokens=20, temp=0, repeat_penalty=1.0)
        assert smol.last_sources[0].path == str(docs_dir / "trains.rst")
        assert smol.stats.reused_tokens >= first_prompt  # earlier turns stay cached
    assert smol.generate("Hello", max_tokens=3, temp=0)  # plain generation afterwards


def test_custom_context_template(smol: GPT4All, localdocs: LocalDocs) -> None:
    template = "Facts:\n{context}\nQ: {question}"
    with smol.chat_session(localdocs=localdocs, localdocs_template=template):
        smol.generate("How is sourdough leavened?", max_tokens=5, temp=0)
        assert smol.current_chat_session[-2]["localdocs_prompt"].startswith("Facts:\n[1]")
    with smol.chat_session(localdocs=localdocs, localdocs_template="no placeholders"):
        with pytest.raises(errors.InvalidParameterError):
            smol.generate("How is sourdough leavened?", max_tokens=5)
        assert smol.current_chat_session is not None and len(smol.current_chat_session) <= 1


def test_missing_collection_is_a_clear_error(smol: GPT4All, tmp_path: Path, model_dir: Path) -> None:
    ld = LocalDocs("never-indexed", persist_directory=tmp_path, model_path=model_dir)
    with smol.chat_session(localdocs=ld):
        with pytest.raises(errors.CollectionNotFoundError):
            smol.generate("Anything?", max_tokens=3)
    with pytest.raises(errors.InvalidParameterError):
        with smol.chat_session(localdocs=object()):
            pass


def test_cli_index_search_ask_collections(docs_dir: Path, model_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["--persist-dir", str(tmp_path / "db"), "--embedding-model-path", str(model_dir),
              "--collection", "cli-test"]
    r = runner.invoke(main, ["index", str(docs_dir), "-q", *common])
    assert r.exit_code == 0, r.output
    assert "3 indexed" in r.output
    r = runner.invoke(main, ["index", str(docs_dir), "-q", *common])
    assert "0 indexed" in r.output and "3 unchanged" in r.output

    r = runner.invoke(main, ["search", "high-speed railway in Japan", "-k", "2", *common])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("[1] " + str(docs_dir / "trains.rst"))

    r = runner.invoke(main, ["ask", "Where is Mount Etna?", *common, "--model", SMOLLM2,
                             "--model-path", str(model_dir), "--offline", "--max-tokens", "20",
                             "--temp", "0"])
    assert r.exit_code == 0, r.output
    assert "Sources:" in r.output and str(docs_dir / "volcanoes.md") in r.output

    r = runner.invoke(main, ["collections", "--persist-dir", str(tmp_path / "db")])
    assert r.exit_code == 0 and "cli-test: 3 documents" in r.output
    r = runner.invoke(main, ["collections", "--persist-dir", str(tmp_path / "db"), "show", "cli-test"])
    assert "all-MiniLM-L6-v2" in r.output and str(docs_dir / "bread.txt") in r.output
    r = runner.invoke(main, ["collections", "--persist-dir", str(tmp_path / "db"), "remove",
                             "cli-test", "--yes"])
    assert r.exit_code == 0
    r = runner.invoke(main, ["search", "railway", *common])
    assert r.exit_code == 1 and "no LocalDocs collection" in r.output and "Traceback" not in r.output


def test_cli_chat_one_shot(model_dir: Path) -> None:
    r = CliRunner().invoke(main, ["chat", "--model", SMOLLM2, "--model-path", str(model_dir),
                                  "--offline", "--temp", "0", "--max-tokens", "20",
                                  "--system", "You are a helpful assistant.",
                                  "-p", "What is the capital city of France?"])
    assert r.exit_code == 0, r.output
    assert r.output.strip()  # an answer; not its words (greedy near-ties of a 135M model vary by CPU)


def test_cli_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["chat", "--model", "missing.gguf", "--model-path", str(tmp_path),
                                  "--offline", "-p", "hi"])
    assert r.exit_code == 1 and "Error:" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["search", "x", "--collection", "a", "--persist-dir", str(tmp_path)])
    assert r.exit_code != 0 and "Traceback" not in r.output


def test_a_session_over_several_collections_fuses_their_rankings(
        smol: GPT4All, localdocs: LocalDocs, tmp_path: Path, model_dir: Path) -> None:
    """chat_session(localdocs=[a, b]): each collection's best excerpt is in the turn's
    sources, ranked by reciprocal rank fusion (scores of two collections are not comparable)."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "kettles.md").write_text("# Kettles\n\nDescale the kettle every Friday with vinegar.\n")
    with LocalDocs("chat-test-2", persist_directory=tmp_path / "db2", model_path=model_dir) as second:
        second.index(other, progress=False)
        with smol.chat_session(localdocs=[second, localdocs], localdocs_k=2):
            smol.generate("Which volcano is on Sicily?", max_tokens=4, temp=0)
            sources = smol.last_sources
            prompt = smol.current_chat_session[-2]["localdocs_prompt"]
        assert [Path(s.path).name for s in sources] == ["kettles.md", "volcanoes.md"]
        assert sources[0].score == pytest.approx(1 / 61) == sources[1].score  # both rank 1
        assert "Descale" in prompt and "Mount Etna" in prompt
