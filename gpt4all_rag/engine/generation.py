"""The generation loop under every call: ingest a prompt, pull tokens, honour stop sequences,
callbacks and ``max_tokens``, record log-probabilities.

:func:`run` is pull-style (a generator): closing it stops generation at once, and errors
surface in the caller's thread. It runs under every call of the engine
(:class:`gpt4all_rag.engine.Llama`: raw completions, chat completions), with the sampling
parameters of :mod:`gpt4all_rag.engine.sampling`.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Callable, Iterator

from . import native as _native
from .native_model import NativeSequence
from .types import TokenLogprob, TopLogprob, Usage
from .sampling import SamplingParams

__all__ = ["GenerationStats", "run", "texts", "token_logprob"]


@dataclass
class GenerationStats:
    """Counters of the last ``generate()`` call and of the model's lifetime.

    Attributes:
        prompt_tokens: tokens of the prompt the model saw in the last call.
        reused_tokens: of those, how many were already in the KV cache (not re-evaluated).
        completion_tokens: tokens generated in the last call.
        finish_reason: ``"stop"`` (end-of-generation token or stop sequence), ``"length"``
            (``max_tokens`` reached or context full), ``"callback"`` (callback returned False)
            or ``"closed"`` (streaming generator closed early).
        stop_sequence: the stop sequence that ended the last call (the one found first in
            the text), or None.
        dropped_messages: messages left out of the model's view because the conversation
            outgrew the context window (the history itself keeps them).
        decoded_tokens_total: tokens evaluated since the model was loaded.
    """

    prompt_tokens: int = 0
    reused_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    stop_sequence: str | None = None
    dropped_messages: int = 0
    decoded_tokens_total: int = 0

    def usage(self) -> Usage:
        """The last call's token counts in OpenAI's ``usage`` shape (the one builder of it)."""
        return Usage(self.prompt_tokens, self.completion_tokens, self.reused_tokens)


def _longest_stop_prefix(text: str, stops: list[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop sequence."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best


def token_logprob(model: NativeSequence, token: int, piece: bytes, n_top: int) -> TokenLogprob:
    """The log-probabilities of the token ``model`` just produced, with ``n_top`` alternatives
    (``g4r_generate_logprobs``)."""
    logprob, top = model.generate_logprobs(n_top)

    def alt(tok: int, lp: float) -> TopLogprob:
        raw = model.token_to_piece(tok)
        return TopLogprob(raw.decode("utf-8", "replace"), lp, list(raw), tok)

    return TokenLogprob(piece.decode("utf-8", "replace"), logprob, list(piece), token,
                        [alt(t, lp) for t, lp in top])


def run(model: NativeSequence, tokens: list[int], params: SamplingParams,
        stats: GenerationStats, *, callback: Callable[[int, str], bool] | None = None,
        logprobs: int | None = None, logprobs_out: list[TokenLogprob] | None = None,
        dropped: int = 0, grammar_triggers: tuple[tuple[str, ...], tuple[int, ...]] = ((), ()),
        generated: list[int] | None = None) -> Iterator[tuple[int, str]]:
    """Ingest ``tokens`` into the caller's sequence (reusing its cached prefix), then yield
    ``(token id, text piece)``.

    Generation ends at an end-of-generation token, ``params.max_tokens``, the context's end, a
    stop sequence (text that could start one is held back until it cannot) or ``callback``
    returning False (the piece it saw is still yielded). ``stats`` is filled as it goes; with
    ``logprobs`` = n, each generated token's :class:`TokenLogprob` (n alternatives) is
    appended to ``logprobs_out``. ``grammar_triggers`` (regular expressions, token ids) make
    ``params.grammar`` lazy; ``generated`` receives every generated token id. The caller holds
    the sequence.

    Raises:
        GenerationError, CancellationError, GrammarError, ContextOverflowError: from the
            native library.
    """
    n_predict, stops = params.max_tokens, list(params.stop)
    stats.prompt_tokens, stats.completion_tokens = len(tokens), 0
    stats.dropped_messages, stats.finish_reason, stats.stop_sequence = dropped, None, None
    stats.reused_tokens = model.ingest(tokens, params.n_batch or model.info(_native.PROP_N_BATCH))
    stats.decoded_tokens_total = model.info(_native.PROP_N_DECODED)
    if n_predict == 0:
        # Evaluate the prompt all the same (it stays cached for the next call): one step,
        # whose sampled token is dropped unevaluated.
        model.generate_start(**params.native(), n_predict=1)
        try:
            model.generate_next()
        finally:
            model.generate_finish()
            stats.decoded_tokens_total = model.info(_native.PROP_N_DECODED)
        stats.finish_reason = "length"
        return
    model.generate_start(**params.native(), trigger_patterns=grammar_triggers[0],
                         trigger_tokens=grammar_triggers[1], n_predict=min(n_predict, 2**31 - 1),
                         n_logprobs=logprobs)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    held = ""
    token = -1
    notify = callback or (lambda _t, _s: True)
    try:
        while True:
            if stats.completion_tokens >= n_predict:
                stats.finish_reason = "length"
                break
            token, piece, reason = model.generate_next()
            if reason != _native.STOP_CONTINUE:
                stats.finish_reason = "stop" if reason == _native.STOP_EOG else "length"
                break
            stats.completion_tokens += 1
            if generated is not None:
                generated.append(token)
            if logprobs is not None and logprobs_out is not None:
                logprobs_out.append(token_logprob(model, token, piece, logprobs))
            held += decoder.decode(piece)
            if stops:
                hits = [(i, s) for i, s in ((held.find(s), s) for s in stops) if i >= 0]
                if hits:
                    at, stats.stop_sequence = min(hits, key=lambda hit: hit[0])
                    held = held[:at]
                    stats.finish_reason = "stop"
                    if held:
                        notify(token, held)
                        yield token, held
                    return
                keep = _longest_stop_prefix(held, stops)
                out, held = held[: len(held) - keep], held[len(held) - keep:]
            else:
                out, held = held, ""
            if out:
                go_on = notify(token, out)
                yield token, out
                if go_on is False:
                    stats.finish_reason = "callback"
                    return
        held += decoder.decode(b"", final=True)
        if held:
            notify(token, held)
            yield token, held
    finally:
        model.generate_finish()
        stats.decoded_tokens_total = model.info(_native.PROP_N_DECODED) if not model.closed else 0


def texts(pieces: Iterator[tuple[int, str]]) -> Iterator[str]:
    """The text of :func:`run`'s ``(token, text)`` pieces; closing it closes them."""
    try:
        for _, text in pieces:
            yield text
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
