"""A model is never freed while a call is in flight: ``close()`` from any thread, during any
other thread's call, ends in a result or a documented exception, never a crash or a hang.

Each scenario runs in a child process, so that a crash is a failed assertion (its exit status)
rather than the end of the test run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

#: One Embed4All; a thread embeds 400 texts; the main thread closes after DELAY seconds.
EMBED_CLOSE = textwrap.dedent("""
    import json, sys, threading, time
    from gpt4all_rag import Embed4All, errors
    embedder = Embed4All(model_path=sys.argv[1], n_threads=2)
    texts = [f"text number {i} about a subject worth embedding" for i in range(400)]
    outcome = {}
    def work():
        try:
            outcome["n_vectors"] = len(embedder.embed(texts))
        except errors.GPT4AllRagError as exc:
            outcome["error"] = type(exc).__name__
    thread = threading.Thread(target=work)
    thread.start()
    time.sleep(float(sys.argv[2]))
    embedder.close()
    thread.join()
    try:
        embedder.embed("after close")
    except errors.ModelClosedError:
        outcome["after_close"] = "ModelClosedError"
    json.dump(outcome, sys.stdout)
""")

#: One GPT4All (n_parallel=2) and one Embed4All; worker threads call every kind of operation
#: in a random order while one thread closes both at a random moment; every call's outcome is
#: counted by class.
STRESS = textwrap.dedent("""
    import collections, json, random, sys, threading, time
    from gpt4all_rag import Embed4All, GPT4All, errors
    models, seed = sys.argv[1], int(sys.argv[2])
    model = GPT4All("SmolLM2-135M-Instruct.Q4_1.gguf", model_path=models, n_threads=2,
                    n_parallel=2, n_ctx=512)
    embedder = Embed4All(model_path=models, n_threads=2)
    outcomes = collections.Counter()
    lock = threading.Lock()

    def generate(): model.generate("Name a colour.", max_tokens=6, temp=0)
    def stream():
        for i, _ in enumerate(model.generate("Count to five.", max_tokens=8, streaming=True)):
            if i == 3 and random.random() < 0.5:
                break
    def score(): model.loglikelihood("The capital of France is", " Paris")
    def chat(): model.create_chat_completion([{"role": "user", "content": "Hi"}], max_tokens=4)
    def embed(): embedder.embed([f"sentence {i}" for i in range(random.randint(1, 48))])
    OPS = [generate, stream, score, chat, embed]

    def worker(rng):
        for _ in range(12):
            op = rng.choice(OPS)
            try:
                op()
                kind = "ok"
            except errors.GPT4AllRagError as exc:
                kind = type(exc).__name__
            with lock:
                outcomes[f"{op.__name__}:{kind}"] += 1

    def closer(rng):
        time.sleep(rng.uniform(0.5, 4.0))
        (model.close if rng.random() < 0.5 else embedder.close)()
        model.close()
        embedder.close()

    rng = random.Random(seed)
    threads = [threading.Thread(target=worker, args=(random.Random(seed * 10 + i),)) for i in range(4)]
    threads.append(threading.Thread(target=closer, args=(rng,)))
    for t in threads: t.start()
    for t in threads: t.join()
    for op in (generate, embed):  # closed now: every call says so
        try:
            op()
            outcomes[f"final-{op.__name__}:ok"] += 1
        except errors.GPT4AllRagError as exc:
            outcomes[f"final-{op.__name__}:{type(exc).__name__}"] += 1
    json.dump(outcomes, sys.stdout)
""")


def _child(script: str, *args: str, timeout: float = 300) -> dict:
    run = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                         timeout=timeout)
    assert run.returncode == 0, f"the child died (status {run.returncode}): {run.stderr[-3000:]}"
    return json.loads(run.stdout)


@pytest.mark.parametrize("delay_s", [0.05, 0.5, 1.0])
def test_embed4all_close_during_embed_in_another_thread(model_dir, delay_s: float) -> None:
    """Was SIGSEGV: close() freed the model while embed() ran in another thread."""
    outcome = _child(EMBED_CLOSE, str(model_dir), str(delay_s))
    assert outcome.get("n_vectors") == 400 or outcome.get("error") == "ModelClosedError", outcome
    assert outcome["after_close"] == "ModelClosedError"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_threaded_stress_with_close_ends_in_results_or_documented_errors(model_dir, seed: int) -> None:
    outcomes = _child(STRESS, str(model_dir), str(seed))
    assert sum(outcomes.values()) == 4 * 12 + 2
    kinds = {key.split(":", 1)[1] for key in outcomes}
    # Results, the wait limits of a busy model, or the closed model: nothing else.
    assert kinds <= {"ok", "ModelClosedError", "ModelBusyError", "ConcurrentUseError"}, outcomes
    assert outcomes["final-generate:ModelClosedError"] == outcomes["final-embed:ModelClosedError"] == 1


#: A stream another thread started and left unread (handed over, its thread ended; or paused
#: in a live thread) while a third thread generates; the main thread closes the model.
UNREAD_STREAMS = textwrap.dedent("""
    import json, sys, threading, time
    from gpt4all_rag import GPT4All, errors
    model = GPT4All("SmolLM2-135M-Instruct.Q4_1.gguf", model_path=sys.argv[1], n_threads=2,
                    n_ctx=512, n_parallel=int(sys.argv[2]))
    handed, paused, release = [], threading.Event(), threading.Event()
    outcome = {}

    def start_and_leave():  # the thread ends with its stream half read
        stream = model.generate("Once upon a time", max_tokens=200, streaming=True, temp=0)
        next(stream)
        handed.append(stream)

    def start_and_pause():  # the thread lives on, its stream half read
        stream = model.generate("Count to ten.", max_tokens=200, streaming=True, temp=0)
        next(stream)
        paused.set()
        release.wait()
        try:
            outcome["paused"] = "ok:" + "".join(stream)
        except errors.GPT4AllRagError as exc:
            outcome["paused"] = type(exc).__name__

    def generate():  # running when close() starts: it finishes, or sees the closed model
        try:
            outcome["running"] = "ok:" + model.generate("Name three colours.", max_tokens=40, temp=0)
        except errors.GPT4AllRagError as exc:
            outcome["running"] = type(exc).__name__

    first = threading.Thread(target=start_and_leave)
    first.start(); first.join()
    # one sequence each (with one, the handed stream holds it)
    threads = [threading.Thread(target=f) for f in (start_and_pause, generate)[:int(sys.argv[2]) - 1]]
    for t in threads: t.start()
    if threads:
        paused.wait()
    t0 = time.monotonic()
    model.close()
    outcome["close_s"] = time.monotonic() - t0
    release.set()
    for t in threads: t.join()
    try:
        "".join(handed[0])
        outcome["handed"] = "ok"
    except errors.GPT4AllRagError as exc:
        outcome["handed"] = type(exc).__name__
    json.dump(outcome, sys.stdout)
""")


@pytest.mark.parametrize("n_parallel", [1, 3])
def test_close_does_not_wait_for_streams_nobody_reads(model_dir, n_parallel: int) -> None:
    """Was a hang: close() waited for every sequence another thread held, and a stream left
    unread (its thread ended, or paused) is never given back."""
    outcome = _child(UNREAD_STREAMS, str(model_dir), str(n_parallel), timeout=120)
    assert outcome["close_s"] < 30, outcome  # a second of idleness each, plus the running call
    assert outcome["handed"] == "ModelClosedError", outcome
    if n_parallel > 1:
        assert outcome["paused"] == "ModelClosedError", outcome
        assert outcome["running"].startswith("ok:") or outcome["running"] == "ModelClosedError", outcome
