"""OpenAI's files and vector stores on LocalDocs: ``/v1/files`` and ``/v1/vector_stores``.

* A **file** is an upload kept under the server's files folder (:attr:`ServerConfig.files_directory`)
  as ``<file id>/<its name made safe>`` with a ``.file.json`` of its attributes (written last, by
  a rename, so a file is listed only once it is complete; a safe name never starts with a dot,
  so no upload can overwrite it); at most
  :attr:`ServerConfig.max_file_bytes`. ``POST /v1/files`` (multipart ``file``, ``purpose``),
  ``GET /v1/files``, ``GET`` / ``DELETE /v1/files/{id}``.
* A **vector store** is a LocalDocs collection: its id is the collection's name, so collections
  indexed with the CLI or Python are vector stores, and vector stores made here are collections
  they see. ``POST /v1/vector_stores`` (``name``, ``file_ids``), ``GET /v1/vector_stores``,
  ``GET`` / ``DELETE /v1/vector_stores/{id}``, ``POST /v1/vector_stores/{id}/search`` (the
  collection's hybrid search), ``POST /v1/vector_stores/{id}/files`` (index an uploaded file:
  LocalDocs' loaders and chunking, incrementally), ``GET /v1/vector_stores/{id}/files``.
* File ids: an upload's own id; a document indexed from disk is ``file-`` and its document id
  (:func:`~gpt4all_rag.localdocs.records.doc_id_for`), as ``file_search`` citations name it.

Not implemented: file ``expires_after``, vector store ``expires_after`` / ``chunking_strategy``
(LocalDocs chunks by the embedding model's tokens), file batches, attributes filters in search,
``ranking_options``, file content download (``GET /v1/files/{id}/content``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import threading
import time
import uuid
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Path, UploadFile
from pydantic import Field, StrictBool

from .guards import TextRoute
from .metrics import Metrics
from .pool import SEARCH, ApiError, ModelPool, ServerConfig
from .schemas import CollectionName, _Request
from .serving import in_thread

__all__ = ["file_id_of", "vector_stores_router"]

_FILE_ID = r"^file-[0-9a-f]{24,32}$"


def file_id_of(path: str, files_directory: FilePath) -> str:
    """The file id of a document: an upload's own id, else ``file-<document id>``."""
    from ..localdocs.records import doc_id_for

    parent = FilePath(path).parent
    if parent.parent == files_directory and re.match(_FILE_ID, parent.name):
        return parent.name
    return f"file-{doc_id_for(path)}"


def _safe_name(name: str) -> str:
    """A file name that is one path component of letters, digits, ``.``, ``_``, ``-`` and
    spaces, at most 128 characters, keeping the extension (the loaders pick the format by it)."""
    base = os.path.basename(name.replace("\\", "/")) or "upload"
    stem, ext = os.path.splitext(base)
    stem = re.sub(r"[^A-Za-z0-9._ -]", "_", stem).strip(" .") or "upload"
    ext = re.sub(r"[^A-Za-z0-9.]", "", ext)[:16]
    return stem[:112] + ext


#: The attributes of an upload, beside it in its folder.
_INFO = ".file.json"
#: Where servers before kept them: read when ``_INFO`` is missing, if it describes its folder.
_LEGACY_INFO = "file.json"


class _Files:
    """The uploads folder. Uploads, reads, listings and deletions may run at once (the
    server's threads): a listing skips an upload that is not complete or is being deleted,
    a read of one answers 404."""

    def __init__(self, directory: FilePath) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    @staticmethod
    def _read(folder: FilePath) -> dict[str, Any] | None:
        """The attributes of the upload in ``folder``; None when there is none (not complete,
        deleted meanwhile, or not an upload's folder)."""
        for name in (_INFO, _LEGACY_INFO):
            try:
                info = json.loads((folder / name).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(info, dict) and info.get("id") == folder.name and info.get("object") == "file":
                return info
        return None

    def get(self, file_id: str) -> dict[str, Any]:
        """The attributes of an upload.

        Raises:
            ApiError: 404 ``file_not_found`` for a malformed id or one with no complete upload.
        """
        info = self._read(self.directory / file_id) if re.match(_FILE_ID, file_id) else None
        if info is None:
            raise ApiError(404, f"no file {file_id!r}", param="file_id", code="file_not_found")
        return info

    def put(self, name: str, purpose: str, data: bytes) -> dict[str, Any]:
        file_id = f"file-{uuid.uuid4().hex}"
        folder = self.directory / file_id
        folder.mkdir(parents=True)
        safe = _safe_name(name)
        (folder / safe).write_bytes(data)
        info = {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": safe, "purpose": purpose, "status": "processed", "status_details": None}
        partial = folder / f"{_INFO}.partial"
        partial.write_text(json.dumps(info), encoding="utf-8")
        os.replace(partial, folder / _INFO)
        return info

    def path(self, file_id: str) -> str:
        return str(self.directory / file_id / self.get(file_id)["filename"])

    def list(self) -> list[dict[str, Any]]:
        if not self.directory.is_dir():
            return []
        found = [info for folder in self.directory.glob("file-*") if (info := self._read(folder)) is not None]
        return sorted(found, key=lambda f: (f["created_at"], f["id"]))

    def delete(self, file_id: str) -> None:
        """Remove an upload (its attributes first: from then on it is not found).

        Raises:
            ApiError: 404 as :meth:`get` (also for the second of two deletions at once).
        """
        with self._lock:
            self.get(file_id)
            folder = self.directory / file_id
            for name in (_INFO, _LEGACY_INFO):
                (folder / name).unlink(missing_ok=True)
            shutil.rmtree(folder, ignore_errors=True)


class VectorStoreCreate(_Request):
    name: CollectionName = Field(description="the LocalDocs collection's name (the vector store's id)")
    file_ids: list[Annotated[str, Field(pattern=_FILE_ID)]] = Field(default_factory=list, max_length=100)
    metadata: dict[str, str] | None = None


class VectorStoreFileCreate(_Request):
    file_id: str = Field(pattern=_FILE_ID)


class VectorStoreSearch(_Request):
    query: str = Field(min_length=1)
    max_num_results: int = Field(default=10, ge=1, le=50)
    rewrite_query: StrictBool = False


def vector_stores_router(pool: ModelPool, config: ServerConfig, metrics: Metrics,
                         responses: dict[int | str, Any]) -> APIRouter:
    """The routes of files and vector stores on ``pool``'s collections."""
    from ..localdocs import LocalDocs

    router = APIRouter(route_class=TextRoute)
    files = _Files(config.files_directory)

    def store_object(row: dict[str, Any]) -> dict[str, Any]:
        n = row.get("documents") or 0
        updated = row.get("updated_at")
        return {"id": row["name"], "object": "vector_store", "name": row["name"], "created_at": 0,
                "status": "completed", "usage_bytes": 0, "last_active_at": int(updated) if updated else None,
                "file_counts": {"in_progress": 0, "completed": n, "failed": 0, "cancelled": 0, "total": n},
                "metadata": {}, "expires_after": None, "expires_at": None}

    def row(name: str) -> dict[str, Any]:
        pool.localdocs(name)  # 400 invalid name, 404 unknown
        return next(r for r in pool.collections() if r["name"] == name)

    def index_file(name: str, file_id: str) -> dict[str, Any]:
        path = files.path(file_id)
        created = int(time.time())
        with LocalDocs(name, persist_directory=config.persist_directory, chroma_url=config.chroma_url,
                       model_path=config.model_directory, n_threads=config.n_threads) as ld:
            report = ld.index(path, progress=False)
        error = dict(report.skipped).get(path)
        return {"id": file_id, "object": "vector_store.file", "created_at": created, "vector_store_id": name,
                "status": "failed" if error else "completed", "usage_bytes": os.path.getsize(path),
                "last_error": {"code": "unsupported_file", "message": error} if error else None,
                "attributes": {}, "chunking_strategy": {"type": "other"}}

    @router.post("/v1/files", responses=responses)
    async def upload_file(file: Annotated[UploadFile, File()],
                          purpose: Annotated[Literal["assistants", "batch", "fine-tune", "vision", "user_data",
                                                     "evals"], Form()]) -> Any:
        data = await file.read(config.max_file_bytes + 1)
        if len(data) > config.max_file_bytes:
            raise ApiError(413, f"the file is larger than {config.max_file_bytes:,} bytes", param="file")
        return await asyncio.to_thread(files.put, file.filename or "upload", purpose, data)

    @router.get("/v1/files", responses=responses)
    async def list_files() -> Any:
        return {"object": "list", "data": await asyncio.to_thread(files.list), "has_more": False}

    @router.get("/v1/files/{file_id}", responses=responses)
    async def get_file(file_id: Annotated[str, Path(max_length=64)]) -> Any:
        return await asyncio.to_thread(files.get, file_id)

    @router.delete("/v1/files/{file_id}", responses=responses)
    async def delete_file(file_id: Annotated[str, Path(max_length=64)]) -> Any:
        await asyncio.to_thread(files.delete, file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    @router.post("/v1/vector_stores", responses=responses)
    async def create_vector_store(req: VectorStoreCreate) -> Any:
        def create() -> dict[str, Any]:
            for file_id in req.file_ids:
                files.get(file_id)  # 404 before anything is made
            with LocalDocs(req.name, persist_directory=config.persist_directory, chroma_url=config.chroma_url,
                           model_path=config.model_directory, n_threads=config.n_threads) as ld:
                ld.index([], progress=False)  # creates the collection
            for file_id in req.file_ids:
                index_file(req.name, file_id)
            return store_object(row(req.name))

        return await in_thread(threading.Event(), create)

    @router.get("/v1/vector_stores", responses=responses)
    async def list_vector_stores() -> Any:
        rows = await asyncio.to_thread(pool.collections)
        return {"object": "list", "data": [store_object(r) for r in rows], "has_more": False,
                "first_id": rows[0]["name"] if rows else None, "last_id": rows[-1]["name"] if rows else None}

    @router.get("/v1/vector_stores/{vector_store_id}", responses=responses)
    async def get_vector_store(vector_store_id: Annotated[CollectionName, Path()]) -> Any:
        return store_object(await asyncio.to_thread(row, vector_store_id))

    @router.delete("/v1/vector_stores/{vector_store_id}", responses=responses)
    async def delete_vector_store(vector_store_id: Annotated[CollectionName, Path()]) -> Any:
        def remove() -> None:
            pool.localdocs(vector_store_id).remove()
            pool.forget_localdocs(vector_store_id)

        await asyncio.to_thread(remove)
        return {"id": vector_store_id, "object": "vector_store.deleted", "deleted": True}

    @router.post("/v1/vector_stores/{vector_store_id}/files", responses=responses)
    async def add_file(vector_store_id: Annotated[CollectionName, Path()], req: VectorStoreFileCreate) -> Any:
        def add() -> dict[str, Any]:
            row(vector_store_id)
            return index_file(vector_store_id, req.file_id)

        return await in_thread(threading.Event(), add)

    @router.get("/v1/vector_stores/{vector_store_id}/files", responses=responses)
    async def list_store_files(vector_store_id: Annotated[CollectionName, Path()]) -> Any:
        def listed() -> list[dict[str, Any]]:
            docs = pool.localdocs(vector_store_id).documents()
            return [{"id": file_id_of(path, config.files_directory), "object": "vector_store.file",
                     "created_at": int(rec.mtime), "vector_store_id": vector_store_id,
                     "status": "completed" if rec.state == "done" else "in_progress",
                     "usage_bytes": rec.size_bytes, "last_error": None,
                     "attributes": {"path": path, "title": rec.title}}
                    for path, rec in sorted(docs.items())]

        return {"object": "list", "data": await asyncio.to_thread(listed), "has_more": False}

    @router.post("/v1/vector_stores/{vector_store_id}/search", responses=responses)
    async def search_vector_store(vector_store_id: Annotated[CollectionName, Path()], req: VectorStoreSearch) -> Any:
        def run() -> list[dict[str, Any]]:
            results = pool.localdocs(vector_store_id).search(req.query, req.max_num_results)
            return [{"file_id": file_id_of(r.path, config.files_directory), "filename": os.path.basename(r.path),
                     "score": r.score, "attributes": {"path": r.path, "citation": r.citation()},
                     "content": [{"type": "text", "text": r.text}]} for r in results]

        async with pool.admit(SEARCH):
            with metrics.search():
                data = await in_thread(threading.Event(), run)
        return {"object": "vector_store.search_results.page", "search_query": [req.query], "data": data,
                "has_more": False, "next_page": None}

    return router
