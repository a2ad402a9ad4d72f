"""Token log-probabilities and log-likelihood scoring on real models.

These are the assertions that hold on every CPU: greedy strings of a 135M model ride near-ties
that AVX2 and AVX-512 kernels break differently, log-likelihoods move by rounding only.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gpt4all_rag import GPT4All, errors
from tests.conftest import MINILM

GREEDY = dict(temp=0, repeat_penalty=1.0)


def test_logprobs_are_off_by_default(smol: GPT4All) -> None:
    smol.generate("Once upon a time", max_tokens=4, **GREEDY)
    assert smol.last_logprobs == []


@pytest.mark.parametrize("n_top", [0, 1, 5, 20])
def test_greedy_tokens_are_the_most_likely(smol: GPT4All, gemma: GPT4All, n_top: int) -> None:
    for m in (smol, gemma):
        ids: list[int] = []
        text = m.generate("Once upon a time", max_tokens=8, logprobs=n_top,
                          callback=lambda t, _s: ids.append(t) is None, **GREEDY)
        lps = m.last_logprobs
        assert [lp.id for lp in lps] == ids and len(lps) == m.stats.completion_tokens == 8
        assert "".join(lp.token for lp in lps) == text
        for lp in lps:
            assert lp.logprob <= 0 and len(lp.top_logprobs) == n_top
            assert bytes(lp.bytes).decode("utf-8", "replace") == lp.token
            alts = [t.logprob for t in lp.top_logprobs]
            assert alts == sorted(alts, reverse=True)
            assert sum(math.exp(a) for a in alts) <= 1 + 1e-4
            if n_top:  # greedy without penalties picks the top of the raw distribution
                assert lp.top_logprobs[0].id == lp.id
                assert lp.top_logprobs[0].logprob == pytest.approx(lp.logprob)
        d = lps[0].to_dict()
        assert set(d) == {"token", "logprob", "bytes", "top_logprobs"}


def test_logprobs_are_taken_before_penalties_and_temperature(smol: GPT4All) -> None:
    # Sampled at temperature 1.5 with a repeat penalty, the reported values are still the
    # model's own distribution: the chosen token's logprob equals its entry in the top list.
    smol.generate("Once upon a time", max_tokens=12, temp=1.5, top_k=0, top_p=1.0,
                  repeat_penalty=1.3, seed=7, logprobs=20)
    for lp in smol.last_logprobs:
        top = {t.id: t.logprob for t in lp.top_logprobs}
        if lp.id in top:
            assert top[lp.id] == pytest.approx(lp.logprob, abs=1e-6)
        else:
            assert lp.logprob <= min(top.values()) + 1e-6


def test_streamed_logprobs_match(smol: GPT4All) -> None:
    text = smol.generate("The sky is", max_tokens=6, logprobs=2, **GREEDY)
    first = [(lp.id, lp.logprob) for lp in smol.last_logprobs]
    assert "".join(smol.generate("The sky is", max_tokens=6, logprobs=2, streaming=True, **GREEDY)) == text
    assert [(lp.id, lp.logprob) for lp in smol.last_logprobs] == first


def test_loglikelihood_matches_generation(smol: GPT4All, gemma: GPT4All) -> None:
    # Scoring what greedy decoding produced gives the same per-token values (evaluated one
    # token at a time in both, so the same kernels run) and every rank is 0.
    for m in (smol, gemma):
        prompt = "The three primary colours are"
        text = m.generate(prompt, max_tokens=8, logprobs=0, n_batch=1, **GREEDY)
        generated = [lp.logprob for lp in m.last_logprobs]
        ll = m.loglikelihood(prompt, text, n_batch=1)
        if ll.tokens == [lp.id for lp in m.last_logprobs]:  # the text re-tokenizes the same way
            assert ll.token_logprobs == pytest.approx(generated, abs=1e-3)
            assert ll.is_greedy
        assert ll.logprob == pytest.approx(sum(ll.token_logprobs))
        assert ll.mean_logprob == pytest.approx(ll.logprob / len(ll.tokens))


def test_one_ubatch_and_many_give_the_same_likelihood(smol: GPT4All) -> None:
    text = (" Python is an easy to learn, powerful programming language. It has efficient "
            "high-level data structures and a simple but effective approach to object-oriented "
            "programming.") * 3
    whole = smol.loglikelihood("The Python Tutorial.", text, n_batch=512)
    pieces = smol.loglikelihood("The Python Tutorial.", text, n_batch=7)
    assert whole.tokens == pieces.tokens
    assert abs(whole.mean_logprob - pieces.mean_logprob) <= 0.01 * abs(whole.mean_logprob)


def test_scoring_reuses_the_cached_prompt(smol: GPT4All) -> None:
    prompt = "A list of fruits: apple, banana,"
    smol.loglikelihood(prompt, " cherry")
    before = smol.model.info(8)  # G4R_PROP_N_DECODED
    again = smol.loglikelihood(prompt, " grape")
    # only the prompt's last token and the continuation are evaluated again
    assert smol.model.info(8) - before == 1 + len(again.tokens)


def test_loglikelihood_bad_input(smol: GPT4All, model_dir: Path) -> None:
    with pytest.raises(errors.InvalidParameterError):
        smol.loglikelihood("Hello", "")
    with pytest.raises(errors.InvalidParameterError):
        smol.loglikelihood([], "x")
    with pytest.raises(errors.InvalidParameterError):
        smol.loglikelihood(42, "x")  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidParameterError):
        smol.loglikelihood("Hello", " x", n_batch=0)
    with pytest.raises(errors.ContextOverflowError):
        smol.loglikelihood("Hello", " word" * 3000)
    for bad in (-1, 21, 2.0, True):
        with pytest.raises(errors.InvalidParameterError):
            smol.generate("Hello", max_tokens=2, logprobs=bad)  # type: ignore[arg-type]
    assert smol.loglikelihood("Hello", " world").tokens  # still usable
    with GPT4All(MINILM, model_path=model_dir, allow_download=False) as e:
        with pytest.raises(errors.UnsupportedOperationError):
            e.loglikelihood("Hello", " world")


def test_loglikelihood_needs_a_template_for_messages(gemma: GPT4All) -> None:
    with pytest.raises(errors.ChatTemplateError, match="chat template"):
        gemma.loglikelihood([{"role": "user", "content": "Hi"}], "Hello")
