"""Result types of generation and scoring: token log-probabilities and log-likelihoods.

Log-probabilities are natural logarithms of the model's own next-token distribution: the
softmax of the raw logits, before the repetition penalty, a grammar, temperature and
top-k/top-p/min-p truncation (what OpenAI's ``logprobs`` report; ``g4r_generate_logprobs`` in
``native/include/g4r.h``). The shapes follow OpenAI's chat completion ``logprobs.content``
items, so ``to_dict()`` gives that JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["LogLikelihood", "TokenLogprob", "TopLogprob"]


@dataclass(frozen=True)
class TopLogprob:
    """One candidate token at a generation step.

    Attributes:
        token: the token's text (invalid UTF-8 of a partial character shows as U+FFFD).
        logprob: its log-probability (natural log, <= 0).
        bytes: the token's UTF-8 bytes as integers (join several tokens' bytes to rebuild a
            character split across tokens).
        id: the token id in the model's vocabulary (beyond OpenAI's fields).
    """

    token: str
    logprob: float
    bytes: list[int]
    id: int

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's ``{"token", "logprob", "bytes"}`` shape."""
        return {"token": self.token, "logprob": self.logprob, "bytes": list(self.bytes)}


@dataclass(frozen=True)
class TokenLogprob(TopLogprob):
    """A generated token and, when asked for, the most likely tokens at its step.

    Attributes:
        top_logprobs: the ``n`` most likely tokens at this step (most likely first; the
            generated token is among them when it ranks that high); empty when ``n`` is 0.
    """

    top_logprobs: list[TopLogprob] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's ``{"token", "logprob", "bytes", "top_logprobs": [...]}`` shape."""
        out = super().to_dict()
        out["top_logprobs"] = [t.to_dict() for t in self.top_logprobs]
        return out


@dataclass(frozen=True)
class LogLikelihood:
    """How likely a continuation is after a prompt (``GPT4All.loglikelihood``).

    Attributes:
        logprob: the sum of ``token_logprobs``: log P(continuation | prompt), natural log.
        tokens: the continuation's token ids.
        token_logprobs: log P(token | everything before it), one per token.
        ranks: for each token, how many vocabulary entries had a higher logit (0: the token
            was the greedy choice).
    """

    logprob: float
    tokens: list[int]
    token_logprobs: list[float]
    ranks: list[int]

    @property
    def is_greedy(self) -> bool:
        """Whether greedy decoding would produce exactly this continuation (every rank 0), as
        lm-evaluation-harness reports it."""
        return all(r == 0 for r in self.ranks)

    @property
    def mean_logprob(self) -> float:
        """The average log-probability per token (``logprob / len(tokens)``)."""
        return self.logprob / len(self.tokens)
