"""Parallel sequences: one loaded model serves several generations at once, decoded together.

Real SmolLM2 GGUF, real threads. Batching is checked through the native counter of
llama_decode calls (``PROP_N_EVALS``), never through timings; answers alone and beside others
are compared on log-probabilities with margins, since batch shapes change rounding (see
``test_same_answers_alone_and_beside_others``).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from gpt4all_rag import GPT4All, errors
from gpt4all_rag.engine import native as _native

from tests.conftest import SMOLLM2

PROMPTS = [f"Story number {i}: Once upon a time" for i in range(4)]


@pytest.fixture(scope="module")
def par(model_dir: Path) -> Iterator[GPT4All]:
    with GPT4All(SMOLLM2, model_path=model_dir, allow_download=False, n_parallel=4,
                 n_threads=2) as model:
        yield model


def _evals(model: GPT4All) -> int:
    return model.model.info(_native.PROP_N_EVALS)


def _in_threads(n: int, work) -> list:
    """Run work(i) in n threads started together; returns their results in order."""
    out: list = [None] * n
    errs: list[BaseException] = []
    gate = threading.Barrier(n)

    def run(i: int) -> None:
        gate.wait()
        try:
            out[i] = work(i)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errs.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errs, errs
    return out


def test_window_and_sequences(par: GPT4All) -> None:
    assert par.n_parallel == 4
    assert par.model.n_seq == 4
    assert par.model.n_ctx == 2048  # each sequence has the whole window


def test_concurrent_generations_share_decode_steps(par: GPT4All) -> None:
    n_tokens = 24
    before = _evals(par)
    texts = _in_threads(4, lambda i: par.generate(PROMPTS[i], max_tokens=n_tokens, temp=0,
                                                  n_batch=None))
    steps = _evals(par) - before
    assert all(texts)
    # Alone, each generation takes 1 evaluation for its prompt and one per token after the
    # first: 4 * 24 = 96 for four. Decoded together they share steps.
    assert steps <= 0.6 * 4 * n_tokens, steps


def test_unconsumed_stream_holds_only_its_own_sequence(par: GPT4All) -> None:
    stream = par.generate(PROMPTS[0], max_tokens=200, streaming=True, temp=0)
    next(stream)
    before = _evals(par)
    other = par.generate(PROMPTS[1], max_tokens=30, temp=0, n_batch=None)
    # The other generation finished while the stream stayed open; the stream ran at most a
    # few tokens ahead of its consumer (read-ahead) instead of to the end.
    assert other and par.stats.completion_tokens > 0
    assert _evals(par) - before <= 31
    rest = "".join(stream)
    assert rest and par.engine._pool.busy == 0


def test_queued_tokens_are_taken_while_another_sequence_is_evaluated(par: GPT4All) -> None:
    # A step evaluates with the model's lock released: a consumer whose tokens are already
    # queued takes them during another caller's long prompt evaluation instead of waiting for
    # it. Checked through the decode counter: no step ends while the four tokens are taken.
    a = par.generate(PROMPTS[0], max_tokens=100, streaming=True, temp=0)
    next(a)
    par.generate(PROMPTS[1], max_tokens=6, temp=0)  # its steps queue tokens for `a` (read-ahead)
    long_prompt = " ".join(["The quick brown fox jumps over the lazy dog."] * 170)  # ~1,800 tokens
    done = threading.Event()

    def evaluate_long_prompt() -> None:
        par.generate(long_prompt, max_tokens=1, temp=0)
        done.set()

    worker = threading.Thread(target=evaluate_long_prompt)
    worker.start()
    try:
        time.sleep(0.5)  # the worker is now inside its prompt's step (seconds on a CPU)
        before = _evals(par)
        pieces = [next(a) for _ in range(4)]
        assert _evals(par) == before and not done.is_set(), "waited for the other step"
        assert all(isinstance(p, str) for p in pieces)
    finally:
        worker.join(120)
        a.close()
    assert done.is_set() and par.engine._pool.busy == 0


def test_closing_a_stream_frees_its_sequence_at_once(par: GPT4All) -> None:
    streams = [par.generate(p, max_tokens=100, streaming=True) for p in PROMPTS]
    for s in streams:
        next(s)
    assert par.engine._pool.busy == 4
    streams[2].close()
    assert par.engine._pool.busy == 3
    assert par.generate("Hello", max_tokens=3)  # the freed sequence serves a new caller
    for s in streams:
        s.close()
    assert par.engine._pool.busy == 0


def test_one_thread_holding_every_sequence_gets_concurrent_use_error(par: GPT4All) -> None:
    streams = [par.generate(p, max_tokens=50, streaming=True) for p in PROMPTS]
    for s in streams:
        next(s)
    with pytest.raises(errors.ConcurrentUseError):
        par.generate("Hello", max_tokens=3)
    for s in streams:
        s.close()
    assert par.generate("Hello", max_tokens=3)  # usable after the error


def test_chat_prefix_reuse_while_other_conversations_run(par: GPT4All) -> None:
    a = [{"role": "user", "content": "Name a fruit."}]
    b = [{"role": "user", "content": "Name a colour, please, and say why you like it."}]
    ra = par.create_chat_completion(a, max_tokens=8, temp=0)
    par.create_chat_completion(b, max_tokens=8, temp=0)
    a2 = a + [{"role": "assistant", "content": ra.message.content},
              {"role": "user", "content": "And a vegetable?"}]
    # Another conversation is generating in another thread while a's second turn runs.
    busy = par.generate(PROMPTS[3], max_tokens=100, streaming=True)
    next(busy)
    ra2 = par.create_chat_completion(a2, max_tokens=8, temp=0)
    busy.close()
    first_turn = ra.usage.prompt_tokens
    # The sequence that served a's first turn still holds it: only the new tokens (and the
    # reply's re-rendered end) are evaluated.
    assert ra2.usage.cached_tokens >= first_turn, (ra2.usage, ra.usage)


def test_same_answers_alone_and_beside_others(par: GPT4All) -> None:
    """Greedy output beside three other generations follows the same tokens as alone, except
    where the model's two best tokens were within a near-tie; log-probabilities agree."""
    n = 32
    alone = []
    for p in PROMPTS:
        par.generate(p + " ", max_tokens=n, temp=0, logprobs=2, n_batch=None)
        alone.append(list(par.last_logprobs))

    def work(i: int):
        par.generate(PROMPTS[i] + " ", max_tokens=n, temp=0, logprobs=2, n_batch=None)
        return list(par.last_logprobs)

    together = _in_threads(4, work)
    worst = 0.0
    for solo, batched in zip(alone, together):
        for x, y in zip(solo, batched):
            if x.id != y.id:
                margin = x.top_logprobs[0].logprob - x.top_logprobs[1].logprob
                assert margin < 0.2, (x, y)  # a flip only at a near-tie
                break
            worst = max(worst, abs(x.logprob - y.logprob))
    # Rounding differences of other batch shapes: measured up to ~0.01 nats here.
    assert worst < 0.05, worst


def test_queue_limit_and_wait_timeout(model_dir: Path) -> None:
    with GPT4All(SMOLLM2, model_path=model_dir, allow_download=False, n_parallel=1,
                 max_waiting=1, wait_timeout=0.3) as model:
        stream = model.generate("Once upon a time", max_tokens=100, streaming=True)
        next(stream)
        t0 = time.monotonic()
        results: list = []

        def waiter() -> None:
            try:
                model.generate("Hello", max_tokens=2)
                results.append("ok")
            except errors.ModelBusyError as e:
                results.append(e.reason)

        t = threading.Thread(target=waiter)
        t.start()
        while model.engine._pool.waiting == 0 and time.monotonic() - t0 < 5:
            time.sleep(0.01)
        # A third caller finds the queue full; this thread itself would wait for its own
        # stream, which is a ConcurrentUseError rather than a wait.
        third = threading.Thread(target=waiter)
        third.start()
        third.join(10)
        t.join(10)
        assert sorted(results) == ["queue_full", "timeout"]
        with pytest.raises(errors.ConcurrentUseError):
            model.generate("Hello", max_tokens=2)
        stream.close()
        assert model.generate("Hello", max_tokens=2)  # usable after both errors


def test_waiters_are_served_in_arrival_order(model_dir: Path) -> None:
    with GPT4All(SMOLLM2, model_path=model_dir, allow_download=False, n_parallel=1) as model:
        stream = model.generate("Once upon a time", max_tokens=100, streaming=True)
        next(stream)
        order: list[int] = []

        def waiter(i: int) -> None:
            model.generate("Hello", max_tokens=1)
            order.append(i)

        threads = []
        for i in range(3):
            t = threading.Thread(target=waiter, args=(i,))
            t.start()
            threads.append(t)
            deadline = time.monotonic() + 5
            while model.engine._pool.waiting < i + 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        stream.close()
        for t in threads:
            t.join(30)
        assert order == [0, 1, 2]


def test_failure_of_one_sequence_leaves_the_others_running(model_dir: Path) -> None:
    with GPT4All(SMOLLM2, model_path=model_dir, allow_download=False, n_parallel=2,
                 n_ctx=256) as model:
        other = model.generate(PROMPTS[0], max_tokens=40, streaming=True, temp=0)
        first = next(other)
        # A prompt longer than the window fails its own caller ...
        with pytest.raises(errors.ContextOverflowError):
            model.generate("word " * 400, max_tokens=5)
        # ... and one that fills the window ends with "length" ...
        long_prompt = "word " * 245
        model.generate(long_prompt, max_tokens=50)
        assert model.stats.finish_reason == "length"
        # The last token comes from the window's last logits and is never evaluated.
        assert model.stats.prompt_tokens + model.stats.completion_tokens <= 256 + 1
        # ... while the open stream goes on to its own end.
        rest = "".join(other)
        assert first and rest


def test_close_waits_for_other_threads(model_dir: Path) -> None:
    model = GPT4All(SMOLLM2, model_path=model_dir, allow_download=False, n_parallel=2)
    done = threading.Event()

    def work() -> None:
        model.generate(PROMPTS[0], max_tokens=16)
        done.set()

    t = threading.Thread(target=work)
    t.start()
    while model.engine._pool.busy == 0 and not done.is_set():
        time.sleep(0.005)
    model.close()
    t.join(30)
    assert done.is_set()
    with pytest.raises(errors.ModelClosedError):
        model.generate("Hello")
