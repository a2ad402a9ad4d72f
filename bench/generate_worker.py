"""One measurement of ``bench_generate.py`` in a process of its own, on whichever gpt4all-rag
the process imports (see bench/baseline.py): ``GPT4All.generate`` and the chat core on one
prompt, printed as JSON. Uses only the seed's API and ``create_chat_completion``, which every
compared commit has.

    python generate_worker.py MODEL_DIR MODEL PROMPT_FILE GEN_TOKENS THREADS N_BATCH REPEATS N_CTX
"""

import json
import statistics
import sys
import time
from pathlib import Path

from gpt4all_rag import GPT4All


def timed(pieces, first_is):  # (prompt seconds, generation seconds) of one streamed call
    t0 = time.perf_counter()
    t_first = last = None
    for piece in pieces:
        if t_first is None and first_is(piece):
            t_first = time.perf_counter()
        last = piece
    return t_first - t0, time.perf_counter() - t_first, last


def clear_cache(m: GPT4All) -> None:
    """Empty the KV cache, so the next prompt is evaluated whole. Before commit cf8cca4
    ``NativeModel.reset()`` read a missing attribute; the call it meant is made directly."""
    try:
        m.model.reset()
    except AttributeError:
        m.model._lib.g4r_model_reset(m.model._handle)


def main() -> None:
    model_dir, name, prompt_file, gen, threads, n_batch, repeats, n_ctx = sys.argv[1:9]
    prompt = Path(prompt_file).read_text()
    gen, repeats, n_batch = int(gen), int(repeats), int(n_batch)
    out = {}
    with GPT4All(name, model_path=model_dir, allow_download=False, n_threads=int(threads),
                 n_ctx=int(n_ctx)) as m:
        pp, tg = [], []
        for _ in range(repeats + 1):  # the first run warms up
            clear_cache(m)
            t_p, t_g, _ = timed(m.generate(prompt, max_tokens=gen, temp=0, n_batch=n_batch, streaming=True),
                                lambda p: True)
            pp.append(m.stats.prompt_tokens / t_p)
            tg.append((m.stats.completion_tokens - 1) / t_g)
        out["generate"] = {"pp": statistics.median(pp[1:]), "tg": statistics.median(tg[1:])}
        pp, tg = [], []
        messages = [{"role": "user", "content": prompt}]
        for _ in range(repeats + 1):
            clear_cache(m)
            t_p, t_g, last = timed(m.create_chat_completion(messages, max_tokens=gen, temp=0, n_batch=n_batch,
                                                            stream=True),
                                   lambda c: bool(c.delta.get("content")))
            pp.append(last.usage.prompt_tokens / t_p)
            tg.append((last.usage.completion_tokens - 1) / t_g)
        out["chat core"] = {"pp": statistics.median(pp[1:]), "tg": statistics.median(tg[1:])}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
