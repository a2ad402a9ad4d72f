"""A soak of a real ``gpt4all-rag serve``: every kind of request at once, for a bounded time.

Used by ``tests/server/test_soak.py`` (about a minute, in CI) and ``bench/soak_server.py``
(ten minutes, with figures). The server runs on 127.0.0.1 with three models in its folder
(SmolLM2 for chat, Gemma 3 for completions, MiniLM for embeddings and LocalDocs) and its
default ``--max-loaded-models`` (2), so models are loaded and evicted while others generate.
Clients are asyncio tasks of the ``openai`` client (chat, plain and streamed, some leaving
mid-stream; completions; embeddings) and of httpx (LocalDocs search, ``/health``).

What passes (:meth:`Soak.problems`): the server process stays up; every answer is a 200 that
the client parses and that has the expected shape, or a 503 with a documented code
(``queue_full``, ``queue_timeout``, ``model_busy``); ``/health`` answers within
:data:`HEALTH_LIMIT_S` throughout; the server's resident memory after the run is within
:data:`RSS_GROWTH_LIMIT` of what it was after the first full round (both measured after the
same requests, so that the same models are loaded).
"""

from __future__ import annotations

import asyncio
import collections
import math
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai

from .openai_server import ServerUrl, running_openai_server

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3 = "gemma-3-270m-q4_k_m.gguf"
MINILM = "all-MiniLM-L6-v2.gguf2.f16.gguf"
COLLECTION = "soak-docs"
#: 503 codes the server documents (admission and eviction); any other error fails the soak.
DOCUMENTED_503 = frozenset({"queue_full", "queue_timeout", "model_busy"})
HEALTH_LIMIT_S = 1.0
RSS_GROWTH_LIMIT = 0.10
QUESTIONS = ["How do I start the server?", "Which models are tested?", "What is LocalDocs?",
             "How are collections removed?", "What does the retriever return?",
             "How is the wheel built?", "Which CPU kernels load?"]


@dataclass
class Soak:
    """What one soak saw."""

    #: ``(kind, outcome)`` -> count; outcome ``"200"``, ``"503 <code>"``, ``"left"`` (a client
    #: that left mid-stream by design) or the unexpected status / exception.
    counts: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    failures: list[str] = field(default_factory=list)
    health_max_s: float = 0.0
    health_checks: int = 0
    rss_first_round: int = 0
    rss_end: int = 0
    #: ``(seconds since the start, RSS)`` of the server, sampled with every ``/health`` check.
    rss_samples: list[tuple[float, int]] = field(default_factory=list)
    server_alive: bool = True
    duration_s: float = 0.0

    def problems(self) -> list[str]:
        """Everything that fails the soak (empty: it passed)."""
        out = list(self.failures[:20])
        if not self.server_alive:
            out.append("the server process died")
        if self.health_max_s > HEALTH_LIMIT_S:
            out.append(f"/health took {self.health_max_s:.2f} s (limit {HEALTH_LIMIT_S} s)")
        if self.rss_first_round and self.rss_end > self.rss_first_round * (1 + RSS_GROWTH_LIMIT):
            out.append(f"RSS grew from {self.rss_first_round / 2**20:.0f} MiB to "
                       f"{self.rss_end / 2**20:.0f} MiB (limit {RSS_GROWTH_LIMIT:.0%})")
        return out

    def report(self) -> str:
        """The figures: requests by kind and outcome, p95 latency of the 200s, /health, RSS."""
        lines = [f"soak: {self.duration_s:.0f} s, {sum(self.counts.values())} requests"]
        for kind in sorted({k for k, _ in self.counts}):
            outcomes = ", ".join(f"{o}: {n}" for (k, o), n in sorted(self.counts.items()) if k == kind)
            lat = sorted(self.latencies.get(kind, []))
            p = (f"p50 {statistics.median(lat):.2f} s, p95 {_p95(lat):.2f} s" if lat else "no 200")
            lines.append(f"  {kind:15s} {outcomes}; {p}")
        n503 = sum(n for (_, o), n in self.counts.items() if o.startswith("503"))
        lines.append(f"  503s: {n503}; /health: {self.health_checks} checks, slowest "
                     f"{self.health_max_s * 1000:.0f} ms")
        lines.append(f"  RSS after the first round {self.rss_first_round / 2**20:.0f} MiB, after "
                     f"the run {self.rss_end / 2**20:.0f} MiB "
                     f"({(self.rss_end / max(self.rss_first_round, 1) - 1):+.1%})")
        return "\n".join(lines)


def _p95(values: list[float]) -> float:
    return values[min(len(values) - 1, math.ceil(0.95 * len(values)) - 1)]


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@contextmanager
def soak_server(model_dir: Path, workdir: Path, *args: str) -> Iterator[ServerUrl]:
    """``gpt4all-rag serve`` over ``model_dir`` at its defaults, with a LocalDocs collection
    of this project's READMEs (indexed by the CLI first) in ``workdir``."""
    root = Path(__file__).resolve().parents[2]
    readmes = [root / "README.md", *sorted((root / "integrations").glob("*/README.md"))]
    db = workdir / "db"
    exe = str(Path(sys.executable).with_name("gpt4all-rag"))
    subprocess.run([exe, "index", *map(str, readmes), "-c", COLLECTION, "--persist-dir", str(db),
                    "--embedding-model-path", str(model_dir), "-q"],
                   check=True, capture_output=True, timeout=600)
    with running_openai_server(model_dir, "--model", SMOLLM2, "--persist-dir", str(db),
                               *args) as url:
        yield url


class _Clients:
    """The request kinds: each sends one request and checks what comes back."""

    def __init__(self, url: str, rng: random.Random) -> None:
        self.url, self.rng = url, rng
        self.oai = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0,
                                      timeout=300)
        self.http = httpx.AsyncClient(base_url=url, timeout=300)

    async def close(self) -> None:
        await self.oai.close()
        await self.http.aclose()

    def _messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.rng.choice(QUESTIONS)}]

    async def chat(self) -> str:
        r = await self.oai.chat.completions.create(model=SMOLLM2, messages=self._messages(),
                                                   max_tokens=self.rng.randint(8, 40))
        choice = r.choices[0]
        assert isinstance(choice.message.content, str) and choice.finish_reason in ("stop", "length")
        assert r.usage is not None and r.usage.completion_tokens >= 1
        return "200"

    async def chat_stream(self) -> str:
        stream = await self.oai.chat.completions.create(
            model=SMOLLM2, messages=self._messages(), max_tokens=self.rng.randint(8, 40),
            stream=True, stream_options={"include_usage": True})
        finish, usage = None, None
        async for chunk in stream:
            if chunk.choices:
                finish = chunk.choices[0].finish_reason or finish
            usage = chunk.usage or usage
        assert finish in ("stop", "length") and usage is not None
        return "200"

    async def chat_leave(self) -> str:
        """A streamed chat whose client leaves after two chunks."""
        stream = await self.oai.chat.completions.create(
            model=SMOLLM2, messages=self._messages(), max_tokens=200, stream=True)
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == 2:
                break
        await stream.close()
        return "left"

    async def chat_localdocs(self) -> str:
        r = await self.http.post("/v1/chat/completions", json={
            "model": SMOLLM2, "messages": self._messages(), "max_tokens": 16,
            "localdocs": {"collections": [COLLECTION], "k": 2}})
        if r.status_code != 200:
            return _status(r)
        body = r.json()
        assert isinstance(body["choices"][0]["message"]["content"], str)
        assert 1 <= len(body["references"]) <= 2 and all(x["path"] for x in body["references"])
        return "200"

    async def completion(self) -> str:
        r = await self.oai.completions.create(model=GEMMA3, prompt="The capital of France is",
                                              max_tokens=self.rng.randint(4, 16))
        assert isinstance(r.choices[0].text, str) and r.choices[0].finish_reason in ("stop", "length")
        return "200"

    async def embedding(self) -> str:
        n = self.rng.randint(1, 32)
        texts = [f"{self.rng.choice(QUESTIONS)} ({i})" for i in range(n)]
        r = await self.oai.embeddings.create(model=MINILM, input=texts)
        assert len(r.data) == n and all(len(d.embedding) == 384 for d in r.data)
        assert all(math.isfinite(x) for d in r.data for x in d.embedding)
        return "200"

    async def search(self) -> str:
        r = await self.http.post(f"/v1/collections/{COLLECTION}/search", json={
            "query": self.rng.choice(QUESTIONS), "k": 3,
            "mode": self.rng.choice(["hybrid", "dense", "keyword"])})
        if r.status_code != 200:
            return _status(r)
        data = r.json()["data"]
        assert len(data) <= 3 and all(d["path"] and isinstance(d["score"], float) for d in data)
        return "200"


def _status(r: httpx.Response) -> str:
    try:
        code = r.json()["error"]["code"]
    except Exception:  # noqa: BLE001 - reported as it is
        code = r.text[:80]
    return f"{r.status_code} {code}"


#: Request kinds and their weights in the mix.
MIX = {"chat": 4, "chat_stream": 3, "chat_leave": 1, "chat_localdocs": 2, "completion": 2,
       "embedding": 3, "search": 3}


async def _one(soak: Soak, kind: str, call: Callable[[], Awaitable[str]]) -> None:
    start = time.monotonic()
    try:
        outcome = await call()
    except openai.APIStatusError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        code = body.get("code") or (body.get("error") or {}).get("code")
        outcome = f"{exc.status_code} {code}"
    except (openai.APIError, httpx.HTTPError) as exc:  # an error inside a stream, no answer
        outcome = f"{type(exc).__name__}: {exc}"
    except AssertionError as exc:
        outcome = f"malformed 200: {exc!r}"
    elapsed = time.monotonic() - start
    soak.counts[(kind, outcome)] += 1
    if outcome == "200":
        soak.latencies[kind].append(elapsed)
    elif outcome != "left" and not (outcome.startswith("503 ") and outcome[4:] in DOCUMENTED_503):
        soak.failures.append(f"{kind}: {outcome}")


async def _health(url: ServerUrl, soak: Soak, start: float, until: float) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while time.monotonic() < until and url.process.poll() is None:
            soak.rss_samples.append((time.monotonic() - start, rss_bytes(url.process.pid)))
            start_check = time.monotonic()
            try:
                ok = (await client.get("/health")).status_code == 200
            except httpx.HTTPError as exc:
                ok = False
                soak.failures.append(f"/health: {exc!r}")
            took = time.monotonic() - start_check
            soak.health_checks += 1
            soak.health_max_s = max(soak.health_max_s, took)
            if not ok:
                soak.failures.append("/health did not answer 200")
            await asyncio.sleep(0.25)


async def _settle(clients: _Clients, soak: Soak) -> None:
    """One request of each kind in a fixed order, ending with SmolLM2 and MiniLM loaded."""
    for kind in ("completion", "search", "chat_localdocs", "chat", "embedding"):
        await _one(soak, f"{kind}", getattr(clients, kind))


async def _first_round(clients: _Clients, soak: Soak, n_clients: int, rng: random.Random) -> None:
    """Every client sends one request of each kind (in its own order), all at once; then
    :func:`_settle`. Afterwards every parallel sequence and worker thread has been used."""
    async def one_client(order: list[str]) -> None:
        for kind in order:
            await _one(soak, kind, getattr(clients, kind))

    await asyncio.gather(*(one_client(rng.sample(list(MIX), len(MIX))) for _ in range(n_clients)))
    await _settle(clients, soak)


async def _run(url: ServerUrl, duration_s: float, n_clients: int, seed: int) -> Soak:
    soak = Soak()
    rng = random.Random(seed)
    clients = _Clients(url, rng)
    try:
        await _first_round(clients, soak, n_clients, rng)
        soak.rss_first_round = rss_bytes(url.process.pid)
        start = time.monotonic()
        until = start + duration_s
        kinds, weights = list(MIX), list(MIX.values())

        async def client() -> None:
            while time.monotonic() < until and url.process.poll() is None:
                kind = rng.choices(kinds, weights)[0]
                await _one(soak, kind, getattr(clients, kind))

        await asyncio.gather(_health(url, soak, start, until), *(client() for _ in range(n_clients)))
        soak.duration_s = time.monotonic() - start
        soak.server_alive = url.process.poll() is None
        if soak.server_alive:
            await _settle(clients, soak)
            soak.rss_end = rss_bytes(url.process.pid)
    finally:
        await clients.close()
    return soak


def run_soak(url: ServerUrl, duration_s: float, n_clients: int = 8, seed: int = 0) -> Soak:
    """Drive the server at ``url`` for ``duration_s`` seconds with ``n_clients`` concurrent
    clients (each sends the next request when its last one ended), after a first full round
    (:func:`_first_round`). RSS is measured after that round and after the run, each time
    after the same requests (:func:`_settle`), so that the same models are loaded."""
    return asyncio.run(_run(url, duration_s, n_clients, seed))
