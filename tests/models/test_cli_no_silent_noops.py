"""No silent no-ops for a person: what a user types (``~/notes``, a mistyped path, a folder with
``README`` and images, an unknown collection, a busy port, ``models list`` offline) does what
it says or fails at once with a reason. Each test failed before its fix."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gpt4all_rag import errors
from gpt4all_rag.cli import main
from gpt4all_rag.localdocs import LocalDocs
from tests.conftest import SMOLLM2


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME with ``~/notes`` holding a Markdown note, a README, a binary file and an image."""
    home = tmp_path / "home"
    notes = home / "notes"
    notes.mkdir(parents=True)
    (notes / "volcano.md").write_text("# Krakatoa\n\nThe volcano erupted in 1883.\n")
    (notes / "README").write_text("These notes are about volcanoes and their eruptions.\n")
    (notes / "tool").write_bytes(b"\x7fELF\x00\x01\x02" * 100)
    (notes / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NOTES_DIR", str(notes))
    return home


def test_index_expands_home_and_variables_and_reports_every_file(home: Path, tmp_path: Path,
                                                                  model_dir: Path) -> None:
    with LocalDocs("home-notes", persist_directory="~/db", model_path=model_dir) as ld:
        report = ld.index("~/notes", progress=False)
        notes = home / "notes"
        assert sorted(report.indexed) == [str(notes / "README"), str(notes / "volcano.md")]
        skipped = dict(report.skipped)
        assert "binary" in skipped[str(notes / "tool")]
        assert ".png" in skipped[str(notes / "photo.png")]
        assert ld.search("eruptions", 1, mode="keyword")[0].path in report.indexed
    assert (home / "db").is_dir()  # the database went under ~, not into ./~
    with LocalDocs("var-notes", persist_directory=tmp_path / "db2", model_path=model_dir) as ld:
        assert len(ld.index("$NOTES_DIR", progress=False).indexed) == 2


def test_a_missing_path_is_an_error(home: Path, tmp_path: Path, model_dir: Path) -> None:
    with LocalDocs("missing", persist_directory=tmp_path / "db", model_path=model_dir) as ld:
        with pytest.raises(errors.DocumentLoadError, match="no such file or folder"):
            ld.index(["~/notes", "~/nopes"], progress=False)
        with pytest.raises(errors.CollectionNotFoundError):  # nothing was even created
            ld.stats()
    r = CliRunner().invoke(main, ["index", str(tmp_path / "nopes"), "-c", "missing",
                                  "--persist-dir", str(tmp_path / "db"),
                                  "--embedding-model-path", str(model_dir)])
    assert r.exit_code != 0 and "no such file or folder" in r.output


def test_collections_remove_of_an_unknown_name_fails_before_asking(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["collections", "--persist-dir", str(tmp_path / "db"),
                                  "remove", "nonexistent"], input="")
    assert r.exit_code != 0
    assert "Delete collection" not in r.output and "nonexistent" in r.output


def test_models_list_offline_lists_what_is_installed(tmp_path: Path, model_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPT4ALL_RAG_CACHE", str(tmp_path / "cache"))  # no cached catalogue
    r = CliRunner().invoke(main, ["models", "list", "--url", "http://127.0.0.1:9/models3.json",
                                  "--model-path", str(model_dir)])
    assert r.exit_code == 0, r.output
    assert f"* {SMOLLM2}" in r.stdout and "unreachable" in r.stderr
    j = CliRunner().invoke(main, ["models", "list", "--json", "--url", "http://127.0.0.1:9/x.json",
                                  "--model-path", str(model_dir)])
    assert SMOLLM2 in json.loads(j.stdout)["other_files"] and json.loads(j.stdout)["catalog_error"]


def test_serve_on_a_busy_port_fails_before_loading_a_model(model_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        start = time.monotonic()
        proc = subprocess.run([str(Path(sys.executable).with_name("gpt4all-rag")), "serve", "--port",
                               str(port), "--model", SMOLLM2, "--model-path", str(model_dir)],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr and "serving" not in proc.stderr
    assert "llama" not in proc.stderr.lower()  # no model was loaded first
    assert time.monotonic() - start < 30


def _options(command: click.Command, path: str = "gpt4all-rag") -> list[tuple[str, str]]:
    found = [(path, p.name or "") for p in command.params
             if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()
             and p.name != "help"]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += _options(sub, f"{path} {name}")
    return found


def test_every_cli_option_has_help_text() -> None:
    assert _options(main) == []
