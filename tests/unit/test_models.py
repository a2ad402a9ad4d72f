"""Catalogue, retrieval and download of model files, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from httpserver import Behaviour, FileServer

from gpt4all_rag.models import download as _download
from gpt4all_rag.models import catalogue as models
from gpt4all_rag.errors import DownloadError, InvalidParameterError, ModelNotFoundError

MiB = 2**20
ESCAPING_NAMES = [
    "../evil",
    "../evil.gguf",
    "a/b.gguf",
    "a\\b.gguf",
    "/abs/x.gguf",
    "",
    ".",
    "..",
    "C:evil.gguf",
    "nul\0.gguf",
]


def make_bytes(n: int, seed: int = 0) -> bytes:
    """``n`` reproducible pseudo-random bytes (a stand-in for model weights)."""
    return random.Random(seed).randbytes(n)


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep every path under tmp_path and every URL on 127.0.0.1; no pauses between retries."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("GPT4ALL_RAG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GPT4ALL_MODEL_PATH", raising=False)
    # A closed port: a test that forgets to point at its server fails fast and stays local.
    monkeypatch.setenv("GPT4ALL_RAG_CATALOG_URL", "http://127.0.0.1:9/models3.json")
    monkeypatch.setattr(_download, "DEFAULT_DOWNLOAD_URL", "http://127.0.0.1:9/gguf/{model_filename}")
    monkeypatch.setattr(_download, "_RETRY_BACKOFF_S", 0.0)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
def catalog(http_server: FileServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """A served catalogue with one 3.5 MiB chat model; returns its entry."""
    entry = http_server.add_model(
        "tiny-chat.Q4_0.gguf",
        make_bytes(3 * MiB + MiB // 2),
        chatTemplate="{{ messages }}",
        systemMessage="You are tiny.",
    )
    monkeypatch.setenv("GPT4ALL_RAG_CATALOG_URL", http_server.add_catalog([entry]))
    return entry


def assert_no_files(directory: Path, filename: str) -> None:
    assert not (directory / filename).exists()
    assert not (directory / f"{filename}.part").exists()


# ------------------------------------------------------------------------------------------
# Locations
# ------------------------------------------------------------------------------------------


def test_default_model_directory_follows_env_then_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert models.default_model_directory() == tmp_path / "home" / ".cache" / "gpt4all"
    monkeypatch.setenv("GPT4ALL_MODEL_PATH", str(tmp_path / "elsewhere"))
    assert models.default_model_directory() == tmp_path / "elsewhere"


def test_folders_follow_xdg_when_no_variable_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from gpt4all_rag import paths
    from gpt4all_rag.models import pypi as pypi_models
    from gpt4all_rag.localdocs import store

    monkeypatch.delenv("GPT4ALL_RAG_CACHE")
    monkeypatch.delenv("G4R_PYPI_MODELS", raising=False)
    monkeypatch.delenv("GPT4ALL_RAG_LOCALDOCS_DIR", raising=False)
    home = tmp_path / "home"
    assert paths.localdocs_directory() == home / ".local" / "share" / "gpt4all-rag" / "localdocs"
    assert pypi_models.cache_dir() == home / ".cache" / "gpt4all-rag" / "pypi-models"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    assert models.default_model_directory() == tmp_path / "xdg-cache" / "gpt4all"
    assert models.catalog_cache_dir() == tmp_path / "xdg-cache" / "gpt4all-rag" / "catalog"
    assert pypi_models.cache_dir() == tmp_path / "xdg-cache" / "gpt4all-rag" / "pypi-models"
    assert store.default_persist_directory() == tmp_path / "xdg-data" / "gpt4all-rag" / "localdocs"
    # The environment variables still win over XDG.
    monkeypatch.setenv("GPT4ALL_MODEL_PATH", "~/models")
    monkeypatch.setenv("GPT4ALL_RAG_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("G4R_PYPI_MODELS", str(tmp_path / "p"))
    monkeypatch.setenv("GPT4ALL_RAG_LOCALDOCS_DIR", str(tmp_path / "l"))
    assert models.default_model_directory() == home / "models"
    assert models.catalog_cache_dir() == tmp_path / "c" / "catalog"
    assert pypi_models.cache_dir() == tmp_path / "p"
    assert store.default_persist_directory() == tmp_path / "l"


def test_catalog_url_and_cache_dir_follow_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert models.resolve_catalog_url("http://x/y.json") == "http://x/y.json"
    assert models.resolve_catalog_url() == "http://127.0.0.1:9/models3.json"
    monkeypatch.delenv("GPT4ALL_RAG_CATALOG_URL")
    assert models.resolve_catalog_url() == models.DEFAULT_CATALOG_URL
    assert models.DEFAULT_CATALOG_URL == "https://gpt4all.io/models/models3.json"
    assert models.catalog_cache_dir() == tmp_path / "cache" / "catalog"
    monkeypatch.delenv("GPT4ALL_RAG_CACHE")
    assert models.catalog_cache_dir() == tmp_path / "home" / ".cache" / "gpt4all-rag" / "catalog"


# ------------------------------------------------------------------------------------------
# Catalogue
# ------------------------------------------------------------------------------------------


def test_list_models_caches_and_uses_fresh_cache_without_network(
    http_server: FileServer, catalog: dict[str, object], tmp_path: Path
) -> None:
    first = models.list_models()
    assert first == [catalog]
    assert http_server.request_count() == 1
    cache_files = list((tmp_path / "cache" / "catalog").iterdir())
    assert len(cache_files) == 1  # written atomically: no temporary file left behind
    assert cache_files[0].suffix == ".json"

    first[0]["filename"] = "mutated"  # the caller's copy, not the cache
    assert models.list_models() == [catalog]
    assert http_server.request_count() == 1


def test_list_models_refetches_an_expired_cache(
    http_server: FileServer, catalog: dict[str, object]
) -> None:
    models.list_models()
    newer = dict(catalog, name="tiny-chat v2")
    http_server.add_catalog([newer])
    assert models.list_models(max_age_s=3600) == [catalog]  # still fresh
    assert models.list_models(max_age_s=0) == [newer]  # expired
    assert http_server.request_count("/models3.json") == 2


@pytest.mark.parametrize("failure", [Behaviour(status=500), Behaviour(status=404)])
def test_list_models_falls_back_to_stale_cache_on_http_error(
    http_server: FileServer,
    catalog: dict[str, object],
    failure: Behaviour,
    caplog: pytest.LogCaptureFixture,
) -> None:
    models.list_models()
    http_server.set_behaviour("/models3.json", failure)
    with caplog.at_level(logging.WARNING, logger="gpt4all_rag.models.catalogue"):
        assert models.list_models(max_age_s=0) == [catalog]
    assert f"HTTP {failure.status}" in caplog.text
    assert "cached catalogue" in caplog.text


def test_list_models_falls_back_to_stale_cache_when_server_is_gone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FileServer() as server:
        url = server.add_catalog([{"filename": "a.gguf"}])
        assert models.list_models(url) == [{"filename": "a.gguf"}]
    with caplog.at_level(logging.WARNING, logger="gpt4all_rag.models.catalogue"):
        assert models.list_models(url, max_age_s=0) == [{"filename": "a.gguf"}]
    assert "cached catalogue" in caplog.text


def test_list_models_falls_back_to_stale_cache_on_garbage(
    http_server: FileServer, catalog: dict[str, object]
) -> None:
    models.list_models()
    http_server.add("/models3.json", b"<html>captive portal</html>")
    assert models.list_models(max_age_s=0) == [catalog]


@pytest.mark.parametrize("failure", [Behaviour(status=500), Behaviour(status=404)])
def test_list_models_without_cache_raises_with_status(
    http_server: FileServer, failure: Behaviour
) -> None:
    url = http_server.add_catalog([], behaviour=failure)
    with pytest.raises(DownloadError, match=f"HTTP {failure.status}") as info:
        models.list_models(url)
    assert url in str(info.value)
    assert "no cached copy" in str(info.value)


def test_list_models_without_network_or_cache_raises() -> None:
    with pytest.raises(DownloadError, match="cannot fetch model catalogue"):
        models.list_models("http://127.0.0.1:9/models3.json")


def test_list_models_times_out_on_a_stalled_server(http_server: FileServer) -> None:
    url = http_server.add_catalog([], behaviour=Behaviour(stall_after=0, stall_s=1.5))
    with pytest.raises(DownloadError, match="cannot fetch model catalogue"):
        models.list_models(url, timeout_s=0.3)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b'{"filename": "a.gguf"}', "not a JSON list"),
        (b"\xff\xfe\xfa", "not valid JSON"),
    ],
)
def test_list_models_rejects_bad_catalogues(
    http_server: FileServer, body: bytes, message: str
) -> None:
    url = http_server.add("/models3.json", body)
    with pytest.raises(DownloadError, match=message):
        models.list_models(url)


def test_list_models_drops_entries_without_filename(
    http_server: FileServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = http_server.add_catalog([{"name": "x"}, "junk", {"filename": 3}, {"filename": "ok.gguf"}])
    with caplog.at_level(logging.WARNING, logger="gpt4all_rag.models.catalogue"):
        assert models.list_models(url) == [{"filename": "ok.gguf"}]
    assert caplog.text.count("skipping catalogue entry") == 3


def test_a_corrupt_cache_file_is_ignored(
    http_server: FileServer, catalog: dict[str, object], tmp_path: Path
) -> None:
    models.list_models()
    (cache_file,) = (tmp_path / "cache" / "catalog").iterdir()
    cache_file.write_text("{ truncated")
    assert models.list_models() == [catalog]
    assert http_server.request_count() == 2
    assert json.loads(cache_file.read_text())["models"] == [catalog]


def test_list_models_takes_cache_dir(
    http_server: FileServer, catalog: dict[str, object], tmp_path: Path
) -> None:
    models.list_models(cache_dir=tmp_path / "own")
    assert len(list((tmp_path / "own").iterdir())) == 1
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_age_s": -1},
        {"timeout_s": 0},
        {"timeout_s": float("nan")},
        {"timeout_s": "5"},
        {"url": "ftp://127.0.0.1/models3.json"},
        {"url": "models3.json"},
    ],
)
def test_list_models_rejects_bad_parameters(
    http_server: FileServer, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(InvalidParameterError):
        models.list_models(**kwargs)
    assert http_server.request_count() == 0


def test_find_model_config(http_server: FileServer, catalog: dict[str, object]) -> None:
    assert models.find_model_config("tiny-chat.Q4_0") == catalog
    assert models.find_model_config("tiny-chat.Q4_0.gguf") == catalog
    assert models.find_model_config("unknown.gguf") is None
    assert http_server.request_count() == 1


def test_find_model_config_offline_never_fetches(
    http_server: FileServer, catalog: dict[str, object]
) -> None:
    assert models.find_model_config("tiny-chat.Q4_0.gguf", offline=True) is None
    assert http_server.request_count() == 0
    models.list_models()
    assert models.find_model_config("tiny-chat.Q4_0.gguf", offline=True) == catalog
    assert http_server.request_count() == 1


# ------------------------------------------------------------------------------------------
# download_model
# ------------------------------------------------------------------------------------------


def test_download_is_byte_exact_and_verified(http_server: FileServer, model_dir: Path) -> None:
    data = make_bytes(2 * MiB + 12345, seed=1)
    entry = http_server.add_model("m.gguf", data)
    path = models.download_model(
        "m.gguf",
        model_dir,
        verbose=False,
        url=entry["url"],
        expected_size=len(data),
        expected_md5=entry["md5sum"].upper(),
    )
    assert path == model_dir / "m.gguf"
    assert path.read_bytes() == data
    assert sorted(p.name for p in model_dir.iterdir()) == ["m.gguf"]
    assert http_server.requests[0].range is None


def test_download_uses_the_default_url(
    http_server: FileServer, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_bytes(1000)
    http_server.add("/gguf/m.gguf", data)
    monkeypatch.setattr(_download, "DEFAULT_DOWNLOAD_URL", http_server.url("/gguf/{model_filename}"))
    assert models.download_model("m.gguf", str(model_dir), verbose=False).read_bytes() == data


def test_download_resumes_after_a_dropped_connection(
    http_server: FileServer, model_dir: Path
) -> None:
    data = make_bytes(3 * MiB + 17, seed=2)
    half = len(data) // 2
    entry = http_server.add_model("m.gguf", data, Behaviour(drop_after=half))
    path = models.download_model(
        "m.gguf", model_dir, False, entry["url"], len(data), entry["md5sum"]
    )
    assert path.read_bytes() == data
    ranges = [r.range for r in http_server.requests]
    assert ranges == [None, f"bytes={half}-"]
    assert not (model_dir / "m.gguf.part").exists()


def test_download_resumes_several_times(http_server: FileServer, model_dir: Path) -> None:
    data = make_bytes(MiB, seed=3)
    entry = http_server.add_model("m.gguf", data, Behaviour(drop_after=100_000, drop_times=4))
    path = models.download_model(
        "m.gguf", model_dir, False, entry["url"], len(data), entry["md5sum"], max_retries=1
    )
    assert path.read_bytes() == data
    assert http_server.request_count() == 5  # each attempt made progress: none counts


def test_download_restarts_when_the_server_ignores_range(
    http_server: FileServer, model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = make_bytes(2 * MiB, seed=4)
    entry = http_server.add_model("m.gguf", data, Behaviour(drop_after=MiB + 5, ignore_range=True))
    with caplog.at_level(logging.WARNING, logger="gpt4all_rag.models.catalogue"):
        path = models.download_model(
            "m.gguf", model_dir, False, entry["url"], len(data), entry["md5sum"]
        )
    assert path.read_bytes() == data  # not the first half twice
    assert [r.range for r in http_server.requests] == [None, f"bytes={MiB + 5}-"]
    assert "ignored the range request" in caplog.text


def test_download_restarts_on_a_wrong_content_range(
    http_server: FileServer, model_dir: Path
) -> None:
    data = make_bytes(MiB, seed=5)
    entry = http_server.add_model("m.gguf", data, Behaviour(drop_after=1000, wrong_range_start=10))
    path = models.download_model(
        "m.gguf", model_dir, False, entry["url"], len(data), entry["md5sum"]
    )
    assert path.read_bytes() == data
    assert [r.range for r in http_server.requests] == [None, "bytes=1000-", None]


def test_download_without_checks_still_completes_after_a_drop(
    http_server: FileServer, model_dir: Path
) -> None:
    data = make_bytes(MiB + 1, seed=6)
    entry = http_server.add_model("m.gguf", data, Behaviour(drop_after=7))
    assert models.download_model("m.gguf", model_dir, False, entry["url"]).read_bytes() == data


def test_md5_mismatch_raises_and_leaves_no_file(http_server: FileServer, model_dir: Path) -> None:
    data = make_bytes(MiB + 3, seed=7)
    corrupted = bytearray(data)
    corrupted[MiB] ^= 0xFF
    entry = http_server.add_model("m.gguf", data, Behaviour(body=bytes(corrupted)))
    with pytest.raises(DownloadError, match="MD5") as info:
        models.download_model("m.gguf", model_dir, False, entry["url"], len(data), entry["md5sum"])
    assert entry["url"] in str(info.value)
    assert_no_files(model_dir, "m.gguf")


def test_size_mismatch_raises_before_downloading(http_server: FileServer, model_dir: Path) -> None:
    data = make_bytes(MiB, seed=8)
    entry = http_server.add_model("m.gguf", data, Behaviour(body=data[:-10]))
    with pytest.raises(DownloadError, match=f"expected {len(data)}"):
        models.download_model("m.gguf", model_dir, False, entry["url"], len(data), entry["md5sum"])
    assert_no_files(model_dir, "m.gguf")


def test_size_mismatch_without_content_length_is_caught_after_download(
    http_server: FileServer, model_dir: Path
) -> None:
    data = make_bytes(1000, seed=9)
    entry = http_server.add_model("m.gguf", data, Behaviour(send_length=False))
    with pytest.raises(DownloadError, match="Expected file size of 1001 bytes, got 1000"):
        models.download_model(
            "m.gguf", model_dir, False, entry["url"], expected_size=1001, timeout_s=5
        )
    assert_no_files(model_dir, "m.gguf")


def test_a_lying_content_length_gives_up_after_retries(
    http_server: FileServer, model_dir: Path
) -> None:
    data = make_bytes(50_000, seed=10)
    entry = http_server.add_model("m.gguf", data, Behaviour(declared_length=len(data) + 100))
    with pytest.raises(DownloadError, match="without progress"):
        models.download_model("m.gguf", model_dir, False, entry["url"], max_retries=2)
    assert_no_files(model_dir, "m.gguf")
    assert http_server.request_count() <= 6


def test_http_404_is_not_retried_and_names_status_and_url(
    http_server: FileServer, model_dir: Path
) -> None:
    url = http_server.url("/gguf/missing.gguf")
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        models.download_model("missing.gguf", model_dir, False, url)
    assert url in str(info.value)
    assert http_server.request_count() == 1
    assert_no_files(model_dir, "missing.gguf")


def test_http_500_is_retried_a_bounded_number_of_times(
    http_server: FileServer, model_dir: Path
) -> None:
    entry = http_server.add_model("m.gguf", b"x" * 100, Behaviour(status=500))
    with pytest.raises(DownloadError, match="HTTP 500") as info:
        models.download_model("m.gguf", model_dir, False, entry["url"], max_retries=2)
    assert entry["url"] in str(info.value)
    assert http_server.request_count() == 3
    assert_no_files(model_dir, "m.gguf")


def test_a_transient_503_is_retried(http_server: FileServer, model_dir: Path) -> None:
    data = make_bytes(5000, seed=11)
    entry = http_server.add_model("m.gguf", data, Behaviour(status=503, status_times=2))
    path = models.download_model(
        "m.gguf", model_dir, False, entry["url"], len(data), entry["md5sum"]
    )
    assert path.read_bytes() == data
    assert http_server.request_count() == 3


def test_a_stalled_server_times_out(http_server: FileServer, model_dir: Path) -> None:
    data = make_bytes(100_000, seed=12)
    entry = http_server.add_model(
        "m.gguf", data, Behaviour(stall_after=0, stall_s=1.0, stall_times=None)
    )
    with pytest.raises(DownloadError, match=r"(?i)timed out"):
        models.download_model(
            "m.gguf", model_dir, False, entry["url"], timeout_s=0.3, max_retries=1
        )
    assert_no_files(model_dir, "m.gguf")
    assert http_server.request_count() == 2


def test_a_stall_is_resumed_after_the_timeout(http_server: FileServer, model_dir: Path) -> None:
    data = make_bytes(MiB, seed=13)
    entry = http_server.add_model("m.gguf", data, Behaviour(stall_after=MiB // 2, stall_s=1.5))
    path = models.download_model(
        "m.gguf", model_dir, False, entry["url"], len(data), entry["md5sum"], timeout_s=0.3
    )
    assert path.read_bytes() == data
    assert [r.range for r in http_server.requests] == [None, f"bytes={MiB // 2}-"]


# A stall after 1,000 bytes: less than the file object's buffer, which used to hold them back.
@pytest.mark.parametrize("size, stall_after", [(MiB, MiB // 2), (5000, 1000)])
def test_nothing_partial_is_ever_under_the_final_name(
    http_server: FileServer, model_dir: Path, size: int, stall_after: int
) -> None:
    data = make_bytes(size, seed=14)
    entry = http_server.add_model("m.gguf", data, Behaviour(stall_after=stall_after, stall_s=1.5))
    result: list[object] = []
    worker = threading.Thread(
        target=lambda: result.append(
            models.download_model(
                "m.gguf", model_dir, False, entry["url"], len(data), entry["md5sum"], timeout_s=10
            )
        )
    )
    worker.start()
    part = model_dir / "m.gguf.part"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (part.exists() and part.stat().st_size >= stall_after):
        time.sleep(0.01)
    assert part.stat().st_size == stall_after  # mid-download: the bytes are in the .part file ...
    assert not (model_dir / "m.gguf").exists()  # ... and nothing is under the final name
    worker.join(timeout=15)
    assert result == [model_dir / "m.gguf"]
    assert (model_dir / "m.gguf").read_bytes() == data
    assert not part.exists()


def test_a_failed_download_keeps_an_older_complete_file(
    http_server: FileServer, model_dir: Path
) -> None:
    data = make_bytes(5000, seed=15)
    (model_dir / "m.gguf").write_bytes(b"old complete file")
    entry = http_server.add_model("m.gguf", data, Behaviour(body=b"y" * len(data)))
    with pytest.raises(DownloadError):
        models.download_model("m.gguf", model_dir, False, entry["url"], len(data), entry["md5sum"])
    assert (model_dir / "m.gguf").read_bytes() == b"old complete file"
    assert not (model_dir / "m.gguf.part").exists()


def test_a_leftover_part_file_is_overwritten(http_server: FileServer, model_dir: Path) -> None:
    data = make_bytes(5000, seed=16)
    (model_dir / "m.gguf.part").write_bytes(b"garbage from a killed process" * 1000)
    entry = http_server.add_model("m.gguf", data)
    path = models.download_model(
        "m.gguf", model_dir, False, entry["url"], len(data), entry["md5sum"]
    )
    assert path.read_bytes() == data


def test_a_concurrent_download_of_the_same_file_is_refused(
    http_server: FileServer, model_dir: Path
) -> None:
    import filelock

    entry = http_server.add_model("m.gguf", b"z" * 100)
    part = model_dir / "m.gguf.part"
    # The other download holds the lock file (from another process, as filelock sees it: a
    # lock object of its own, not shared with download_model's).
    with filelock.FileLock(f"{part}.lock", thread_local=False, is_singleton=False), \
            open(part, "wb") as other:
        other.write(b"the other download's bytes")
        other.flush()
        with pytest.raises(DownloadError, match="in progress"):
            models.download_model("m.gguf", model_dir, False, entry["url"])
    assert part.read_bytes() == b"the other download's bytes"  # not deleted, not truncated
    assert not (model_dir / "m.gguf").exists()
    assert http_server.request_count() == 0
    # Once the other download is gone, the same call succeeds.
    path = models.download_model("m.gguf", model_dir, False, entry["url"])
    assert path.read_bytes() == b"z" * 100


def test_the_lock_is_released_after_a_failed_download(
    http_server: FileServer, model_dir: Path
) -> None:
    entry = http_server.add_model("m.gguf", b"z" * 100)
    with pytest.raises(DownloadError, match="MD5"):
        models.download_model("m.gguf", model_dir, False, entry["url"], 100, "0" * 32)
    assert models.download_model("m.gguf", model_dir, False, entry["url"], 100).exists()


def test_a_content_encoding_is_refused(http_server: FileServer, model_dir: Path) -> None:
    entry = http_server.add_model(
        "m.gguf", b"z" * 100, Behaviour(headers={"Content-Encoding": "br"})
    )
    with pytest.raises(DownloadError, match="Content-Encoding"):
        models.download_model("m.gguf", model_dir, False, entry["url"])
    assert_no_files(model_dir, "m.gguf")
    assert http_server.request_count() == 1


def test_download_verbose_reports_on_stderr(
    http_server: FileServer, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_bytes(MiB, seed=17)
    entry = http_server.add_model("m.gguf", data, Behaviour(drop_after=1000))
    models.download_model("m.gguf", model_dir, True, entry["url"], len(data), entry["md5sum"])
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Downloading" in captured.err
    assert "Verifying" in captured.err
    assert "resuming from byte position 1000" in captured.err
    assert "Model downloaded to" in captured.err

    models.download_model("m.gguf", model_dir, False, entry["url"], len(data), entry["md5sum"])
    assert capsys.readouterr() == ("", "")


def test_download_into_a_missing_directory(http_server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        models.download_model("m.gguf", tmp_path / "nope", False, http_server.url("/x"))
    assert http_server.request_count() == 0


@pytest.mark.parametrize("name", ESCAPING_NAMES)
def test_download_refuses_escaping_names(
    http_server: FileServer, model_dir: Path, name: str
) -> None:
    with pytest.raises(InvalidParameterError):
        models.download_model(name, model_dir, False, http_server.url("/x"))
    assert http_server.request_count() == 0
    assert list(model_dir.parent.iterdir()) == [model_dir]
    assert list(model_dir.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"expected_md5": "not-an-md5"},
        {"expected_md5": "0" * 31},
        {"expected_size": -1},
        {"expected_size": "100"},
        {"timeout_s": 0},
        {"max_retries": -1},
        {"url": "file:///etc/passwd"},
    ],
)
def test_download_rejects_bad_parameters(
    http_server: FileServer, model_dir: Path, kwargs: dict[str, Any]
) -> None:
    kwargs.setdefault("url", http_server.url("/x"))
    with pytest.raises(InvalidParameterError):
        models.download_model("m.gguf", model_dir, False, **kwargs)
    assert http_server.request_count() == 0
    assert list(model_dir.iterdir()) == []


# ------------------------------------------------------------------------------------------
# retrieve_model
# ------------------------------------------------------------------------------------------


def test_retrieve_downloads_with_the_catalogue_entry(
    http_server: FileServer, catalog: dict[str, object], model_dir: Path
) -> None:
    config = models.retrieve_model("tiny-chat.Q4_0", model_dir)
    assert config == dict(catalog, path=str(model_dir / "tiny-chat.Q4_0.gguf"))
    data = make_bytes(3 * MiB + MiB // 2)
    assert (model_dir / "tiny-chat.Q4_0.gguf").read_bytes() == data
    assert http_server.request_count() == 2  # catalogue and model


def test_a_download_shows_its_bars_by_the_progress_rule(
    http_server: FileServer,
    catalog: dict[str, object],
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gpt4all_rag import _progress

    # Not verbose, not a terminal, not a notebook: quiet (as the seed).
    monkeypatch.setattr(_progress, "_stderr_is_a_terminal", lambda: False)
    monkeypatch.setattr(_progress, "in_notebook", lambda: False)
    models.retrieve_model("tiny-chat.Q4_0", model_dir)
    assert capsys.readouterr().err == ""
    # In a Jupyter kernel the bars appear without verbose (tqdm.auto: widgets there).
    (model_dir / "tiny-chat.Q4_0.gguf").unlink()
    monkeypatch.setattr(_progress, "in_notebook", lambda: True)
    models.retrieve_model("tiny-chat.Q4_0", model_dir)
    err = capsys.readouterr().err
    assert "Downloading" in err and "Verifying" in err and "Model downloaded" not in err


def test_download_progress_overrides_verbose(
    http_server: FileServer, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = http_server.add_model("m.gguf", b"z" * 1000)
    models.download_model("m.gguf", model_dir, True, entry["url"], progress=False)
    err = capsys.readouterr().err
    assert "Downloading" not in err and "Model downloaded to" in err
    with pytest.raises(InvalidParameterError, match="progress"):
        models.download_model("m.gguf", model_dir, False, entry["url"], progress="yes")


def test_retrieve_uses_a_cached_model_offline(
    http_server: FileServer, catalog: dict[str, object], model_dir: Path, tmp_path: Path
) -> None:
    first = models.retrieve_model("tiny-chat.Q4_0.gguf", model_dir)
    http_server.reset()  # the server now knows nothing: any request would fail
    (cache_file,) = (tmp_path / "cache" / "catalog").iterdir()
    cached = json.loads(cache_file.read_text())
    cached["fetched_at"] = 0  # long expired
    cache_file.write_text(json.dumps(cached))

    again = models.retrieve_model("tiny-chat.Q4_0.gguf", model_dir, allow_download=True)
    assert again == first
    assert again["chatTemplate"] == "{{ messages }}"
    assert http_server.request_count() == 0


def test_retrieve_a_sideloaded_model_without_any_catalogue(
    http_server: FileServer, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (model_dir / "mine.gguf").write_bytes(b"GGUF")
    config = models.retrieve_model("mine", model_dir, verbose=True)
    assert config == {"path": str(model_dir / "mine.gguf")}
    assert "Found model file at" in capsys.readouterr().err
    assert http_server.request_count() == 0


def test_retrieve_without_download_gives_only_the_path(
    http_server: FileServer, catalog: dict[str, object], model_dir: Path
) -> None:
    models.list_models()
    (model_dir / "tiny-chat.Q4_0.gguf").write_bytes(b"GGUF")
    config = models.retrieve_model("tiny-chat.Q4_0.gguf", model_dir, allow_download=False)
    assert config == {"path": str(model_dir / "tiny-chat.Q4_0.gguf")}  # as the seed
    assert http_server.request_count() == 1


def test_retrieve_missing_file_without_download(
    http_server: FileServer, catalog: dict[str, object], model_dir: Path
) -> None:
    with pytest.raises(FileNotFoundError, match="Model file does not exist") as info:
        models.retrieve_model("tiny-chat.Q4_0.gguf", model_dir, allow_download=False)
    assert isinstance(info.value, ModelNotFoundError)
    assert http_server.request_count() == 0


def test_retrieve_needs_an_existing_model_directory(
    http_server: FileServer, tmp_path: Path
) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        models.retrieve_model("m.gguf", tmp_path / "missing")
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="not a directory"):
        models.retrieve_model("m.gguf", tmp_path / "a-file")
    assert http_server.request_count() == 0


def test_retrieve_creates_the_default_directory(
    http_server: FileServer,
    catalog: dict[str, object],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / "deep" / "default"
    config = models.retrieve_model("tiny-chat.Q4_0", default_directory=target)
    assert Path(config["path"]) == target / "tiny-chat.Q4_0.gguf"

    monkeypatch.setenv("GPT4ALL_MODEL_PATH", str(tmp_path / "from-env"))
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        models.retrieve_model("absent", allow_download=False)
    assert (tmp_path / "from-env").is_dir()


def test_retrieve_reports_an_uncreatable_default_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="Failed to create"):
        models.retrieve_model("m", default_directory=tmp_path / "file" / "sub")


def test_retrieve_a_model_missing_from_the_catalogue_uses_the_default_url(
    http_server: FileServer,
    catalog: dict[str, object],
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = make_bytes(2000, seed=18)
    http_server.add("/gguf/other.gguf", data)
    monkeypatch.setattr(_download, "DEFAULT_DOWNLOAD_URL", http_server.url("/gguf/{model_filename}"))
    config = models.retrieve_model("other", model_dir)
    assert config == {"path": str(model_dir / "other.gguf")}
    assert (model_dir / "other.gguf").read_bytes() == data


def test_retrieve_with_download_url_skips_the_catalogue(
    http_server: FileServer, model_dir: Path
) -> None:
    data = make_bytes(2000, seed=19)
    url = http_server.add("/direct/x.gguf", data)
    config = models.retrieve_model("x", model_dir, download_url=url)
    assert (model_dir / "x.gguf").read_bytes() == data
    assert config == {"path": str(model_dir / "x.gguf")}
    assert [r.path for r in http_server.requests] == ["/direct/x.gguf"]


def test_retrieve_rejects_a_corrupt_download(
    http_server: FileServer, catalog: dict[str, object], model_dir: Path
) -> None:
    http_server.set_behaviour(
        "/gguf/tiny-chat.Q4_0.gguf", Behaviour(body=make_bytes(3 * MiB + MiB // 2, seed=99))
    )
    with pytest.raises(DownloadError, match="MD5"):
        models.retrieve_model("tiny-chat.Q4_0", model_dir)
    assert_no_files(model_dir, "tiny-chat.Q4_0.gguf")


def test_retrieve_ignores_an_unusable_catalogue_filesize(
    http_server: FileServer, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_bytes(3000, seed=20)
    entry = http_server.add_model("m.gguf", data, filesize="about 3 KB")
    monkeypatch.setenv("GPT4ALL_RAG_CATALOG_URL", http_server.add_catalog([entry]))
    assert models.retrieve_model("m", model_dir)["filesize"] == "about 3 KB"
    assert (model_dir / "m.gguf").read_bytes() == data


def test_retrieve_without_catalogue_or_cache_raises(model_dir: Path) -> None:
    with pytest.raises(DownloadError, match="no cached copy"):
        models.retrieve_model("m", model_dir)
    assert list(model_dir.iterdir()) == []


@pytest.mark.parametrize("name", [*ESCAPING_NAMES, None, 3])
def test_retrieve_refuses_escaping_names(
    http_server: FileServer, model_dir: Path, name: str
) -> None:
    (model_dir.parent / "evil.gguf").write_bytes(b"outside")
    with pytest.raises(InvalidParameterError):
        models.retrieve_model(name, model_dir)
    with pytest.raises(InvalidParameterError):
        models.find_model_config(name)
    assert http_server.request_count() == 0


def test_errors_keep_the_seed_builtin_types() -> None:
    assert issubclass(DownloadError, ValueError)
    assert issubclass(ModelNotFoundError, FileNotFoundError)
    assert issubclass(InvalidParameterError, ValueError)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [(KeyboardInterrupt(), KeyboardInterrupt), (OSError(28, "No space left"), DownloadError)],
)
def test_any_failure_removes_the_part_file(
    http_server: FileServer,
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    raised: BaseException,
    expected: type[BaseException],
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(_download, "_verify", fail)
    entry = http_server.add_model("m.gguf", make_bytes(5000))
    with pytest.raises(expected):
        models.download_model("m.gguf", model_dir, False, entry["url"])
    assert_no_files(model_dir, "m.gguf")


@pytest.mark.parametrize("fields", [{"md5sum": "not-a-hash"}, {"url": 42}])
def test_retrieve_rejects_an_unusable_catalogue_entry(
    http_server: FileServer,
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    fields: dict[str, Any],
) -> None:
    entry = http_server.add_model("m.gguf", make_bytes(100), **fields)
    monkeypatch.setenv("GPT4ALL_RAG_CATALOG_URL", http_server.add_catalog([entry]))
    with pytest.raises(DownloadError, match=r"catalogue entry of m\.gguf is unusable"):
        models.retrieve_model("m", model_dir)
    assert http_server.request_count("/gguf/m.gguf") == 0
    assert list(model_dir.iterdir()) == []


def test_a_directory_in_the_way_of_the_final_name(http_server: FileServer, model_dir: Path) -> None:
    (model_dir / "m.gguf").mkdir()
    entry = http_server.add_model("m.gguf", make_bytes(100))
    with pytest.raises(DownloadError, match="cannot store the download"):
        models.download_model("m.gguf", model_dir, False, entry["url"])
    assert (model_dir / "m.gguf").is_dir()
    assert not (model_dir / "m.gguf.part").exists()
    with pytest.raises(ModelNotFoundError, match="not a file"):
        models.retrieve_model("m", model_dir)


def test_server_lists_catalogue_models_when_downloads_are_allowed(catalog: dict[str, object],
                                                                  model_dir: Path) -> None:
    from gpt4all_rag.server.pool import ModelPool, ServerConfig

    (model_dir / "local.gguf").write_bytes(b"GGUF")
    allowed = ModelPool(ServerConfig(model_path=model_dir, allow_download=True)).list_models()
    assert allowed == sorted(["local.gguf", str(catalog["filename"])])
    assert ModelPool(ServerConfig(model_path=model_dir)).list_models() == ["local.gguf"]


def test_server_lists_local_models_when_the_catalogue_is_unreachable(model_dir: Path) -> None:
    from gpt4all_rag.server.pool import ModelPool, ServerConfig

    (model_dir / "local.gguf").write_bytes(b"GGUF")
    assert ModelPool(ServerConfig(model_path=model_dir, allow_download=True)).list_models() == ["local.gguf"]
