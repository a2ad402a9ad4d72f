"""``gpt4all-rag models``: list, download, path; against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from httpserver import Behaviour, FileServer

from gpt4all_rag.models import download as _download
from gpt4all_rag.commands.models import models

DATA = bytes(range(256)) * 40


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep every path under tmp_path and every URL on 127.0.0.1; no pauses between retries."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GPT4ALL_RAG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GPT4ALL_MODEL_PATH", str(tmp_path / "models"))
    monkeypatch.setenv("GPT4ALL_RAG_CATALOG_URL", "http://127.0.0.1:9/models3.json")
    monkeypatch.setattr(_download, "DEFAULT_DOWNLOAD_URL", "http://127.0.0.1:9/gguf/{model_filename}")
    monkeypatch.setattr(_download, "_RETRY_BACKOFF_S", 0.0)


@pytest.fixture
def catalog_url(http_server: FileServer) -> str:
    entries = [
        http_server.add_model("chat.gguf", DATA, name="Chat Model"),
        http_server.add_model("embed.gguf", DATA[:1000], name="Embedder", filesize="1000"),
    ]
    return http_server.add_catalog(entries)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(models, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback would reach the user: fail loudly
    return result.exit_code, result.stdout, result.stderr


def test_list_marks_installed_models(catalog_url: str, tmp_path: Path) -> None:
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    (model_dir / "embed.gguf").write_bytes(b"x")
    (model_dir / "sideloaded.gguf").write_bytes(b"x")
    (model_dir / "notes.txt").write_text("not a model")

    code, out, _ = run("list", "--url", catalog_url)
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("  chat.gguf") and "Chat Model" in line for line in lines)
    assert any(line.startswith("* embed.gguf") and "1.0 KB" in line for line in lines)
    assert "* sideloaded.gguf" in lines
    assert "notes.txt" not in out
    assert f"* = installed in {model_dir}" in lines


def test_list_takes_model_path_and_prints_json(catalog_url: str, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "chat.gguf").write_bytes(b"x")
    code, out, _ = run("list", "--url", catalog_url, "--model-path", str(other), "--json")
    assert code == 0
    listing = json.loads(out)
    assert {m["filename"]: m["installed"] for m in listing["models"]} == {
        "chat.gguf": True,
        "embed.gguf": False,
    }
    assert listing["other_files"] == []


def test_list_uses_the_env_catalogue(
    http_server: FileServer, catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPT4ALL_RAG_CATALOG_URL", catalog_url)
    code, out, _ = run("list")
    assert code == 0
    assert "chat.gguf" in out
    assert http_server.request_count() == 1


def test_list_reports_an_unreachable_catalogue_and_lists_what_is_installed(
        http_server: FileServer, tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "local.gguf").write_bytes(b"x")
    url = http_server.add_catalog([], behaviour=Behaviour(status=503))
    code, out, err = run("list", "--url", url)
    assert code == 0 and "* local.gguf" in out
    assert "unreachable" in err and "HTTP 503" in err and "Traceback" not in err


def test_download_fetches_verifies_and_prints_the_path(
    http_server: FileServer, catalog_url: str, tmp_path: Path
) -> None:
    code, out, err = run("download", "chat", "--catalog-url", catalog_url)
    path = tmp_path / "models" / "chat.gguf"
    assert code == 0
    assert out == f"{path}\n"
    assert "Downloading" in err
    assert path.read_bytes() == DATA

    requests_before = http_server.request_count()
    code, out, _ = run("download", "chat.gguf", "--catalog-url", catalog_url, "-q")
    assert (code, out) == (0, f"{path}\n")
    assert http_server.request_count() == requests_before  # already there: no network


def test_download_into_model_path(catalog_url: str, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    code, out, err = run(
        "download", "embed", "--catalog-url", catalog_url, "--model-path", str(target), "-q"
    )
    assert (code, out, err) == (0, f"{target / 'embed.gguf'}\n", "")
    assert (target / "embed.gguf").read_bytes() == DATA[:1000]


def test_download_from_a_direct_url(http_server: FileServer, tmp_path: Path) -> None:
    url = http_server.add("/files/direct.gguf", DATA)
    code, out, _ = run("download", "direct", "--url", url, "-q")
    assert code == 0
    assert Path(out.strip()).read_bytes() == DATA
    assert [r.path for r in http_server.requests] == ["/files/direct.gguf"]


def assert_clean_error(code: int, out: str, err: str, message: str) -> None:
    assert code == 1
    assert out == ""
    assert err.startswith("Error: ")
    assert message in err
    assert "Traceback" not in err


def test_download_refuses_an_escaping_name(http_server: FileServer, tmp_path: Path) -> None:
    assert_clean_error(*run("download", "../escape"), "invalid model name")
    assert http_server.request_count() == 0
    assert not (tmp_path / "escape.gguf").exists()


def test_download_reports_http_errors(http_server: FileServer, tmp_path: Path) -> None:
    url = http_server.url("/gguf/missing.gguf")
    assert_clean_error(*run("download", "missing", "--url", url), f"HTTP 404 Not Found for {url}")
    assert list((tmp_path / "models").iterdir()) == []


def test_download_needs_an_existing_model_path(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    assert_clean_error(*run("download", "chat", "--model-path", str(missing)), "does not exist")
    assert not missing.exists()


def test_download_reports_a_corrupt_file(http_server: FileServer, tmp_path: Path) -> None:
    entry = http_server.add_model("bad.gguf", DATA, Behaviour(body=DATA[::-1]))
    url = http_server.add_catalog([entry])
    assert_clean_error(*run("download", "bad", "--catalog-url", url, "-q"), "MD5")
    assert list((tmp_path / "models").iterdir()) == []


def test_path_prints_the_model_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("path") == (0, f"{tmp_path / 'models'}\n", "")
    monkeypatch.delenv("GPT4ALL_MODEL_PATH")
    assert run("path") == (0, f"{tmp_path / 'home' / '.cache' / 'gpt4all'}\n", "")


def test_the_group_is_registered_in_the_main_command(tmp_path: Path) -> None:
    from gpt4all_rag.cli import main

    result = CliRunner().invoke(main, ["models", "path"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{tmp_path / 'models'}\n"
