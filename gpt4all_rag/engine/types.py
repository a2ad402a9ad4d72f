"""Result types of generation and scoring: chat completions, token log-probabilities and
log-likelihoods.

Log-probabilities are natural logarithms of the model's own next-token distribution: the
softmax of the raw logits, before the repetition penalty, a grammar, temperature and
top-k/top-p/min-p truncation (what OpenAI's ``logprobs`` report; ``g4r_generate_logprobs`` in
``native/include/g4r.h``). The shapes follow OpenAI's chat completion ``logprobs.content``
items, so ``to_dict()`` gives that JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ChatCompletion", "ChatCompletionChunk", "ChatCompletionMessage", "LogLikelihood",
           "TokenLogprob", "ToolCall", "TopLogprob", "Usage"]


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


@dataclass(frozen=True)
class ToolCall:
    """A function call the model made (OpenAI's ``message.tool_calls`` item).

    Attributes:
        id: the call's id (``call_...``), to be echoed by the tool message that answers it.
        name: the function's name.
        arguments: the arguments as JSON text (as the model wrote them).
    """

    id: str
    name: str
    arguments: str

    def to_dict(self) -> dict[str, Any]:
        """``{"id", "type": "function", "function": {"name", "arguments"}}``."""
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class Usage:
    """Token counts of one completion.

    Attributes:
        prompt_tokens: tokens of the prompt the model saw.
        completion_tokens: tokens generated.
        cached_tokens: prompt tokens found in the KV cache (not evaluated again).
    """

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """``prompt_tokens + completion_tokens``."""
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's usage object, with ``prompt_tokens_details.cached_tokens``."""
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens,
                "prompt_tokens_details": {"cached_tokens": self.cached_tokens}}


@dataclass(frozen=True)
class ChatCompletionMessage:
    """The assistant's reply.

    Attributes:
        content: the answer text (None when the reply is only tool calls).
        reasoning_content: the model's reasoning (``<think>...</think>`` and the other
            families' markers), split out of the answer; None when there is none.
        tool_calls: the function calls the reply made, in order.
        role: always ``"assistant"``.
    """

    content: str | None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    role: str = "assistant"

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's message object (``reasoning_content`` as llama.cpp's server and DeepSeek
        return it; ``tool_calls`` only when there are any)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.reasoning_content is not None:
            out["reasoning_content"] = self.reasoning_content
        if self.tool_calls:
            out["tool_calls"] = [t.to_dict() for t in self.tool_calls]
        return out


@dataclass(frozen=True)
class ChatCompletion:
    """The result of ``GPT4All.create_chat_completion`` (one choice).

    Attributes:
        id: ``chatcmpl-...``.
        created: Unix time in seconds.
        model: the model file's name.
        message: the reply.
        finish_reason: ``"stop"`` (end of generation or a stop sequence), ``"length"``
            (``max_tokens`` or the context window) or ``"tool_calls"``.
        usage: token counts.
        logprobs: the generated tokens' log-probabilities when asked for, else None.
        stop_sequence: the stop sequence that ended the reply (the request's ``stop`` or the
            template's end marker), else None; not part of OpenAI's JSON (Anthropic's Messages
            API reports it).
    """

    id: str
    created: int
    model: str
    message: ChatCompletionMessage
    finish_reason: str
    usage: Usage
    logprobs: list[TokenLogprob] | None = None
    stop_sequence: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's ``chat.completion`` object."""
        choice: dict[str, Any] = {"index": 0, "message": self.message.to_dict(),
                                  "finish_reason": self.finish_reason,
                                  "logprobs": None if self.logprobs is None else
                                  {"content": [t.to_dict() for t in self.logprobs]}}
        return {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.model, "choices": [choice], "usage": self.usage.to_dict()}


@dataclass(frozen=True)
class ChatCompletionChunk:
    """One piece of a streamed chat completion.

    Attributes:
        id, created, model: as in :class:`ChatCompletion`, the same for every chunk.
        delta: what this chunk adds: ``role`` (first chunk), ``content``,
            ``reasoning_content`` or ``tool_calls`` (OpenAI's delta items, with ``index``).
        finish_reason: None until the last chunk.
        usage: None until the last chunk, which carries the whole completion's counts.
        logprobs: log-probabilities of the tokens behind this chunk's text, when asked for.
        stop_sequence: on the last chunk, as in :class:`ChatCompletion`.
    """

    id: str
    created: int
    model: str
    delta: dict[str, Any]
    finish_reason: str | None = None
    usage: Usage | None = None
    logprobs: list[TokenLogprob] | None = None
    stop_sequence: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's ``chat.completion.chunk`` object."""
        choice: dict[str, Any] = {"index": 0, "delta": self.delta,
                                  "finish_reason": self.finish_reason,
                                  "logprobs": None if self.logprobs is None else
                                  {"content": [t.to_dict() for t in self.logprobs]}}
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": [choice],
                "usage": None if self.usage is None else self.usage.to_dict()}
