"""OpenAI's files and vector stores on LocalDocs collections, with the ``openai`` client
against a real ``gpt4all-rag serve``: upload, make a store, attach, search, answer with
``file_search`` citing the uploaded file, list, delete; and bad requests (4xx, never 500)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from gpt4all_rag.localdocs import LocalDocs
from tests.conftest import SMOLLM2

from .openai_server import running_openai_server

KEY = "stores-key-1"
TRAINS = b"# Trains\n\nThe Shinkansen opened in 1964 between Tokyo and Osaka.\n"


@pytest.fixture(scope="module")
def setup(models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    root = tmp_path_factory.mktemp("stores")
    with running_openai_server(models, "--model", SMOLLM2, "--persist-dir", str(root / "db"),
                               env={"GPT4ALL_RAG_API_KEY": KEY,
                                    "GPT4ALL_RAG_FILES_DIR": str(root / "files")}) as url:
        yield {"url": url, "root": root,
               "client": openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=120)}


def test_upload_index_search_and_cite(setup: dict[str, object], models: Path) -> None:
    client: openai.OpenAI = setup["client"]  # type: ignore[assignment]
    root: Path = setup["root"]  # type: ignore[assignment]
    up = client.files.create(file=("../../trains guide.md", io.BytesIO(TRAINS)), purpose="assistants")
    assert up.id.startswith("file-") and up.bytes == len(TRAINS) and up.filename == "trains guide.md"
    assert (root / "files" / up.id / "trains guide.md").read_bytes() == TRAINS  # kept inside, safe name
    store = client.vector_stores.create(name="travel", file_ids=[up.id])
    assert store.id == "travel" and store.file_counts.completed == 1
    page = client.vector_stores.search(vector_store_id="travel", query="When did the Shinkansen open?")
    assert page.data[0].file_id == up.id and "1964" in page.data[0].content[0].text
    assert [f.id for f in client.vector_stores.files.list(vector_store_id="travel").data] == [up.id]
    r = client.responses.create(model=SMOLLM2, input="When did the Shinkansen open?", max_output_tokens=30,
                                tools=[{"type": "file_search", "vector_store_ids": ["travel"]}])
    cited = r.output[-1].content[0].annotations
    assert cited[0].file_id == up.id and cited[0].filename == "trains guide.md"
    # the vector store is a LocalDocs collection Python sees, and CLI collections are stores
    with LocalDocs("travel", persist_directory=root / "db", model_path=models) as ld:
        assert ld.search("Shinkansen", 1)[0].path.endswith("trains guide.md")
    with LocalDocs("notes-cli", persist_directory=root / "db", model_path=models) as ld:
        ld.index(models / "docs", progress=False)
    assert {"travel", "notes-cli"} <= {v.id for v in client.vector_stores.list().data}
    second = client.files.create(file=("bread.txt", io.BytesIO(b"Sourdough needs a starter.\n")), purpose="assistants")
    attached = client.vector_stores.files.create(vector_store_id="travel", file_id=second.id)
    assert attached.status == "completed" and client.vector_stores.retrieve("travel").file_counts.total == 2
    assert {f.id for f in client.files.list().data} >= {up.id, second.id}
    assert client.files.retrieve(up.id).filename == "trains guide.md"
    assert client.vector_stores.delete("travel").deleted
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve("travel")
    assert client.files.delete(second.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(second.id)


def test_a_binary_upload_fails_to_index_with_a_reason(setup: dict[str, object]) -> None:
    client: openai.OpenAI = setup["client"]  # type: ignore[assignment]
    blob = client.files.create(file=("blob.txt", io.BytesIO(b"\x00\x01" * 100)), purpose="assistants")
    client.vector_stores.create(name="blobs")
    result = client.vector_stores.files.create(vector_store_id="blobs", file_id=blob.id)
    assert result.status == "failed" and "binary" in result.last_error.message


def test_an_upload_named_like_the_attributes_file_keeps_its_content(setup: dict[str, object]) -> None:
    client: openai.OpenAI = setup["client"]  # type: ignore[assignment]
    root: Path = setup["root"]  # type: ignore[assignment]
    content = json.dumps({"city": "Kyoto", "fact": "The Shinkansen reached Kyoto in 1964."}).encode()
    up = client.files.create(file=("file.json", io.BytesIO(content)), purpose="assistants")
    assert up.filename == "file.json" and up.bytes == len(content)
    assert (root / "files" / up.id / "file.json").read_bytes() == content
    assert client.files.retrieve(up.id).bytes == len(content)
    assert client.files.delete(up.id).deleted


def test_uploads_listings_and_deletions_at_once_never_fail(setup: dict[str, object]) -> None:
    # Each upload's attributes are written last, by a rename: a listing never reads half of
    # them, and a file deleted meanwhile is left out (a read or a second deletion: 404).
    url: str = setup["url"]  # type: ignore[assignment]
    headers = {"Authorization": f"Bearer {KEY}"}
    statuses: list[int] = []
    failures: list[str] = []

    def churn(n: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
            for i in range(15):
                r = c.post("/v1/files", files={"file": (f"note-{n}-{i}.txt", b"x" * 4096)},
                           data={"purpose": "assistants"})
                statuses.append(r.status_code)
                if r.status_code == 200:
                    statuses.append(c.delete(f"/v1/files/{r.json()['id']}").status_code)

    def browse() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
            for _ in range(40):
                r = c.get("/v1/files")
                statuses.append(r.status_code)
                for f in r.json().get("data", []) if r.status_code == 200 else []:
                    if not {"id", "bytes", "filename"} <= set(f):
                        failures.append(f"a listed file without its attributes: {f}")
                    statuses.append(c.get(f"/v1/files/{f['id']}").status_code)

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(3)] + \
              [threading.Thread(target=browse) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    assert statuses and set(statuses) <= {200, 404}, sorted(set(statuses))
    assert statuses.count(200) > 100


@pytest.mark.parametrize("method,path,kwargs,status", [
    ("post", "/v1/files", {"data": {"purpose": "assistants"}}, 400),  # no file
    ("post", "/v1/files", {"files": {"file": ("big.txt", b"x" * (33 * 1024 * 1024))},
                           "data": {"purpose": "assistants"}}, 413),
    ("get", "/v1/files/file-00000000000000000000000000000000", {}, 404),
    ("get", "/v1/files/..%2F..%2Fetc", {}, 404),
    ("delete", "/v1/files/nope", {}, 404),
    ("post", "/v1/vector_stores", {"json": {"name": "../x"}}, 400),
    ("post", "/v1/vector_stores", {"json": {"name": "ok-name", "file_ids": ["file-" + "0" * 32]}}, 404),
    ("get", "/v1/vector_stores/no-such-store", {}, 404),
    ("post", "/v1/vector_stores/no-such-store/search", {"json": {"query": "x"}}, 404),
    ("post", "/v1/vector_stores/notes-cli/search", {"json": {"query": ""}}, 400),
    ("post", "/v1/vector_stores/notes-cli/files", {"json": {"file_id": "x"}}, 400),
])
def test_bad_requests(setup: dict[str, object], method: str, path: str, kwargs: dict[str, object],
                      status: int) -> None:
    r = getattr(httpx, method)(setup["url"] + path, headers={"Authorization": f"Bearer {KEY}"},  # type: ignore[operator]
                               timeout=120, **kwargs)
    assert r.status_code == status, r.text
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
