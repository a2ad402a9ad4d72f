"""The engine: one loaded model and everything that runs on it, below every front.

:class:`Llama` (:mod:`.llama`) is the object; :class:`SamplingParams` (:mod:`.sampling`) the
one sampling-parameter schema every call takes; :mod:`.types` the results in OpenAI's shapes.
The rest are its parts: :mod:`.chat` (chat formats), :mod:`.prompting`, :mod:`.templates`,
:mod:`.generation`, :mod:`.sequences`, :mod:`.grammar`, and the binding to the native library,
:mod:`.native` and :mod:`.native_model`. See docs/architecture.md.
"""

from .llama import DEFAULT_N_CTX, Llama
from .sampling import DEFAULTS, SamplingParams
from .types import ChatCompletion, ChatCompletionChunk, LogLikelihood, TokenLogprob, Usage

__all__ = ["DEFAULTS", "DEFAULT_N_CTX", "ChatCompletion", "ChatCompletionChunk", "Llama",
           "LogLikelihood", "SamplingParams", "TokenLogprob", "Usage"]
