"""One measurement of ``bench_embed.py`` in a process of its own, on whichever gpt4all-rag the
process imports (this tree, or a ``--baseline`` checkout: bench/baseline.py):
``Embed4All.embed`` over the short texts (and the long ones, if any), printed as JSON; the
short texts' vectors are saved.

    python embed_worker.py MODEL_DIR MODEL THREADS DATA VECTORS [ENCODER]

DATA is a JSON file ``[short texts, long texts]``; VECTORS the ``.npy`` file to write; ENCODER
(``Embed4All(encoder=...)``, e.g. ``llama.cpp``) is passed only when given, so the worker also
runs checkouts from before that argument.
"""

import json
import sys
import time

import numpy as np

from gpt4all_rag import Embed4All


def main() -> None:
    model_dir, name, threads, data, vectors = sys.argv[1:6]
    extra = {"encoder": sys.argv[6]} if len(sys.argv) > 6 else {}
    with open(data) as f:
        short, long = json.load(f)
    with Embed4All(name, model_path=model_dir, allow_download=False, n_threads=int(threads), **extra) as e:
        e.embed(short[:50])  # warm-up
        t = time.perf_counter()
        v = e.embed(short)
        out = {"short": len(short) / (time.perf_counter() - t)}
        np.save(vectors, np.asarray(v, dtype=np.float32))
        if long:
            t = time.perf_counter()
            r = e.embed(long, return_dict=True)
            out.update(long=len(long) / (time.perf_counter() - t), long_tokens=r["n_prompt_tokens"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
