"""Parallel sequences: aggregate generated tokens/s and time to first token of 1, 2, 4 and 8
concurrent streams on one loaded model, against llama.cpp's own server (same pinned tree, same
model, ``--parallel N``).

Ours: one ``GPT4All(n_parallel=N)`` in this process; N threads each stream a chat completion
(``create_chat_completion(stream=True)``) of a ``--prompt-tokens`` message whose first line
differs per request (no prompt comes from a cache), ``--gen-tokens`` tokens greedy with no
repetition penalty. llama.cpp: ``llama-server -np N -c N x n_ctx`` on 127.0.0.1, the same
requests from ``openai`` clients in threads (bench_server.py's load), so its figures include
its HTTP layer. Aggregate tok/s = completion tokens of all streams / wall time from the first
request to the last token (prompts included); decode tok/s = the sum over streams of their
tokens after the first over their time after the first token (the generation rate the streams
get while they run together); TTFT = request to first content piece, p50/p95 over streams and
waves. The systems take turns for ``--rounds`` rounds (bench/rounds.py); ratios are within a
round. Also printed: ours at N streams / ours at 1 stream (the parallel-sequences issue's
target: >= 2.5x at 4 streams on 2 cores), and ours / llama.cpp (target >= 1.0x). With
``--batch-demo``, LangChain ``chain.batch`` of 4 prompts and LlamaIndex ``asyncio.gather`` of
4 ``achat`` calls on one n_parallel=4 model are timed against four sequential calls.

    cmake --build build/<wheel tag> --target llama-server     # once
    python bench/bench_parallel.py [--streams 1,2,4,8] [--rounds 3] [--batch-demo]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

import rounds  # noqa: E402
from bench_server import (MODEL, add_workload_arguments, llama_server_command, load,  # noqa: E402
                          prepare, run_waves)
from chroma_server import free_port  # noqa: E402
from server.openai_server import running_http_server  # noqa: E402

from gpt4all_rag import GPT4All  # noqa: E402


def measure_ours(model: GPT4All, streams: int, prompt: str, gen: int, repeats: int) -> dict[str, Any]:
    """``streams`` concurrent chat-completion streams of ``model`` in threads
    (bench_server's :func:`run_waves`)."""
    def pieces(text: str) -> Iterator[tuple[bool, int | None]]:
        for chunk in model.create_chat_completion(
                [{"role": "user", "content": text}], max_tokens=gen, temp=0,
                repeat_penalty=1.0, stream=True):
            yield (bool(chunk.delta.get("content")),
                   chunk.usage.completion_tokens if chunk.usage is not None else None)

    return run_waves(streams, repeats, prompt, pieces)


def batch_demo(model_path: Path, threads: int) -> None:
    """LangChain ``batch`` and LlamaIndex ``asyncio.gather`` of 4 calls vs 4 sequential."""
    from langchain_gpt4all_rag import ChatGPT4All
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.gpt4all_rag import GPT4AllRag

    prompts = [f"Write two sentences about the number {i}." for i in range(4)]
    lc = ChatGPT4All(model=MODEL, model_path=str(model_path.parent), allow_download=False,
                     n_threads=threads, n_parallel=4, max_tokens=48, temp=0)
    lc.invoke("warm up")
    t = time.perf_counter()
    for p in prompts:
        lc.invoke(p)
    seq = time.perf_counter() - t
    t = time.perf_counter()
    lc.batch(prompts)
    par = time.perf_counter() - t
    print(f"LangChain ChatGPT4All: 4 sequential invoke {seq:.2f} s, batch of 4 {par:.2f} s "
          f"({seq / par:.2f}x)")
    li = GPT4AllRag(MODEL, model_path=str(model_path.parent), allow_download=False,
                    n_threads=threads, n_parallel=4, max_tokens=48, temperature=0)
    msgs = [[ChatMessage(role="user", content=p)] for p in prompts]
    li.chat(msgs[0])

    async def sequential() -> None:
        for m in msgs:
            await li.achat(m)

    async def gathered() -> None:
        await asyncio.gather(*(li.achat(m) for m in msgs))

    t = time.perf_counter()
    asyncio.run(sequential())
    seq = time.perf_counter() - t
    t = time.perf_counter()
    asyncio.run(gathered())
    par = time.perf_counter() - t
    print(f"LlamaIndex GPT4AllRag: 4 sequential achat {seq:.2f} s, gather of 4 {par:.2f} s "
          f"({seq / par:.2f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", default="1,2,4,8")
    add_workload_arguments(ap)
    ap.add_argument("--batch-demo", action="store_true")
    args = ap.parse_args()
    model_path, prompt, exe = prepare(args)
    counts = [int(x) for x in args.streams.split(",")]
    results: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for n in counts:
        port = free_port()
        cmd = llama_server_command(exe, model_path, port, args, n)
        model = GPT4All(MODEL, model_path=model_path.parent, allow_download=False,
                        n_threads=args.threads, n_ctx=args.n_ctx, n_parallel=n)
        try:
            with running_http_server(cmd, port) as url:
                systems: dict[str, rounds.Measure] = {
                    "ours": lambda _r, n=n, m=model: measure_ours(m, n, prompt, args.gen_tokens, args.repeats),
                    "llama.cpp server": lambda _r, u=url, n=n: load(u, n, prompt, args.gen_tokens, args.repeats),
                }
                print(f"\n{n} stream(s)")
                results[n] = rounds.run_rounds(systems, args.rounds)
        finally:
            model.close()
    print(f"\nmodel {MODEL}, prompt ~{args.prompt_tokens} tokens, {args.gen_tokens} generated, "
          f"{args.threads} threads; medians over {args.rounds} rounds of {args.repeats} waves")
    for key, label in (("tok_s", "aggregate tok/s (prompts included)"),
                       ("decode_tok_s", "decode tok/s (after the first token)")):
        print(f"\n{label}")
        print(f"{'streams':>8s}{'ours':>9s}{'vs 1 stream':>13s}{'llama.cpp':>11s}{'vs 1':>7s}"
              f"{'ours/llama':>24s}")
        one = rounds.median_of(results[counts[0]]["ours"], key)
        one_l = rounds.median_of(results[counts[0]]["llama.cpp server"], key)
        for n, res in results.items():
            ours, theirs = res["ours"], res["llama.cpp server"]
            tok, tok_l = rounds.median_of(ours, key), rounds.median_of(theirs, key)
            print(f"{n:8d}{tok:9.1f}{tok / one:12.2f}x{tok_l:11.1f}{tok_l / one_l:6.2f}x"
                  f"{rounds.format_ratio(ours, theirs, key):>24s}")
    print(f"\nTTFT p50/p95 (s)\n{'streams':>8s}{'ours':>14s}{'llama.cpp':>14s}{'p95 ratio':>24s}")
    for n, res in results.items():
        ours, theirs = res["ours"], res["llama.cpp server"]
        print(f"{n:8d}{rounds.median_of(ours, 'ttft_p50'):8.2f}/{rounds.median_of(ours, 'ttft_p95'):.2f}"
              f"{rounds.median_of(theirs, 'ttft_p50'):9.2f}/{rounds.median_of(theirs, 'ttft_p95'):.2f}"
              f"{rounds.format_ratio(ours, theirs, 'ttft_p95'):>24s}")
    print("targets: 4 streams >= 2.5x one stream; >= 1.0x llama.cpp at equal parallelism")
    if args.batch_demo:
        print()
        batch_demo(model_path, args.threads)


if __name__ == "__main__":
    main()
