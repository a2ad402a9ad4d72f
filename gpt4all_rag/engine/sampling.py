"""The one sampling-parameter schema: every front derives its fields, ranges and defaults from it.

:class:`SamplingParams` holds the sampling parameters with the GPT4All SDK's defaults and checks
them once, when it is built (:data:`RANGES`: each numeric field's range as the native sampler
reads it). The fronts build one and hand it to the engine (:class:`gpt4all_rag.engine.Llama`):
``GPT4All.generate``, the LangChain and LlamaIndex classes and the CLI take their option names,
aliases and defaults from it (:data:`FIELDS`, :data:`ALIASES`, :data:`DEFAULTS`), and the
server's request schemas their bounds (:func:`json_bounds`); no default or range is written
anywhere else. Below Python, the native library checks the same struct once more, in C
(``g4r_generate_start``: the one guard of the C API).

Parameters (llama.cpp's names; the sampler chain follows llama.cpp's order: grammar, repetition
penalty, then top-k, top-p, min-p, temperature and the seeded draw, or greedy when ``temp`` is 0):

* ``max_tokens`` (int >= 0, default 200): most tokens generated.
* ``temp`` (float >= 0, default 0.7): temperature; 0 means greedy decoding (deterministic).
  Alias ``temperature``.
* ``top_k`` (int >= 0, default 40): sample among the k most likely tokens; 0 disables.
* ``top_p`` (float in (0, 1], default 0.4): nucleus sampling; 1 disables.
* ``min_p`` (float in [0, 1], default 0.0): drop tokens less likely than min_p times the best.
* ``repeat_penalty`` (float > 0, default 1.18): divide the positive logits of recently seen
  tokens by it and multiply the others (llama.cpp's rule); 1 disables.
* ``repeat_last_n`` (int >= -1, default 64): how many recent tokens (prompt included) the
  penalty looks at; 0 disables, -1 means the whole context.
* ``seed`` (int or None, default None): seed of the random draw; None draws a fresh one per call.
* ``n_batch`` (int >= 1 or None, default None): prompt tokens evaluated per llama.cpp batch;
  None means the context's batch size (n_ctx, at most 2,048), the fastest. ``GPT4All.generate``
  keeps the seed's default of 8, which reads a 256-token prompt about 1.5x slower (measured:
  166 vs 245 tok/s for SmolLM2 on 2 cores).
* ``stop`` (tuple of non-empty strings, default ()): generation stops before the first
  occurrence of any, which is not part of the output.
* ``grammar`` (GBNF text or None): the output must follow it (start symbol ``root``).

Aliases accepted by :meth:`SamplingParams.from_options`: ``temperature`` → ``temp``,
``n_predict``/``max_completion_tokens`` → ``max_tokens``.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from .. import errors

__all__ = ["ALIASES", "DEFAULTS", "FIELDS", "RANGES", "Range", "SamplingParams", "check_number", "json_bounds"]


def check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, integer: bool = False, wide: bool = False) -> None:
    """Check a numeric parameter as the native sampler will read it: a number as a float32
    (so ``1e-300`` is 0), an integer as an int32 unless ``wide`` (the seed: its low 32 bits).

    Raises:
        InvalidParameterError: ``value`` is not a (finite) number or integer as required, or
            lies outside ``[low, high]`` (``(low, high]`` with ``low_open``); bools are refused.
    """
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        kind = "an integer" if integer else "a finite number"
        raise errors.InvalidParameterError(f"{name} must be {kind}, got {value!r}")
    read = value
    if not integer:  # the native sampler reads a float32: 1e-300 is 0 there, 1e39 infinite
        with np.errstate(over="ignore"):
            read = float(np.float32(value))
        if not math.isfinite(read):
            raise errors.InvalidParameterError(f"{name} must be a 32-bit float, got {value!r}")
    elif not wide and not -2**31 <= value < 2**31:  # an int32 there
        raise errors.InvalidParameterError(f"{name} must be a 32-bit integer, got {value!r}")
    if low is not None and (read <= low if low_open else read < low):
        raise errors.InvalidParameterError(
            f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and read > high:
        raise errors.InvalidParameterError(f"{name} must be <= {high}, got {value!r}")


def _stops(stop: str | Iterable[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    stops = (stop,) if isinstance(stop, str) else tuple(stop) if isinstance(stop, (list, tuple)) else None
    if stops is None or any(not isinstance(s, str) or not s for s in stops):
        raise errors.InvalidParameterError(
            f"stop must be a non-empty string or a list of them, got {stop!r}")
    return stops


@dataclass(frozen=True)
class Range:
    """The values a numeric field takes, as :func:`check_number` checks them: within
    ``[low, high]`` (``(low, high]`` with ``low_open``), an integer when ``integer`` (an int32,
    or any integer with ``wide``: the seed keeps its low 32 bits), else a float32."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    integer: bool = False
    wide: bool = False

    def check(self, name: str, value: Any) -> None:
        check_number(name, value, low=self.low, high=self.high, low_open=self.low_open,
                     integer=self.integer, wide=self.wide)


#: Each numeric field's range (``n_batch`` and ``seed`` may also be None).
RANGES: dict[str, Range] = {
    "max_tokens": Range(low=0, integer=True),
    "temp": Range(low=0),
    "top_k": Range(low=0, integer=True),
    "top_p": Range(low=0, high=1, low_open=True),
    "min_p": Range(low=0, high=1),
    "repeat_penalty": Range(low=0, low_open=True),
    "repeat_last_n": Range(low=-1, integer=True),
    "n_batch": Range(low=1, integer=True),
    "seed": Range(integer=True, wide=True),
}

#: The smallest positive float32 (a subnormal) and the largest: a double below the first is 0
#: as a float32, one above the second infinite.
FLOAT32_TINY, FLOAT32_MAX = 1.401298464324817e-45, 3.4028234663852886e38


def json_bounds(name: str) -> dict[str, Any]:
    """Pydantic ``Field`` bounds (``ge``/``gt``/``le``/``lt``) of a numeric field, as JSON
    Schema states them: the range of :data:`RANGES` with float32 and int32 limits (a bound
    open at 0 for a float is ``ge=FLOAT32_TINY``, the smallest value that is not 0 there)."""
    r = RANGES[name]
    out: dict[str, Any] = {}
    if r.low is not None:
        if r.low_open:
            out["ge" if not r.integer else "gt"] = FLOAT32_TINY if not r.integer else r.low
        else:
            out["ge"] = r.low
    if r.high is not None:
        out["le"] = r.high
    elif not r.integer:
        out["le"] = FLOAT32_MAX
    elif not r.wide:
        out["lt"] = 2**31
    return out


@dataclass(frozen=True)
class SamplingParams:
    """Sampling parameters of one generation, checked when built (see the module docstring
    for each field's meaning, range and default).

    Raises:
        InvalidParameterError: (a ValueError) a field is out of range or of the wrong type.
    """

    max_tokens: int = 200
    temp: float = 0.7
    top_k: int = 40
    top_p: float = 0.4
    min_p: float = 0.0
    repeat_penalty: float = 1.18
    repeat_last_n: int = 64
    seed: int | None = None
    n_batch: int | None = None
    stop: tuple[str, ...] = ()
    grammar: str | None = None

    def __post_init__(self) -> None:
        for name, allowed in RANGES.items():
            value = getattr(self, name)
            if value is not None or name not in _NONE_IS_A_VALUE:
                allowed.check(name, value)
        object.__setattr__(self, "stop", _stops(self.stop))
        if self.grammar is not None and not isinstance(self.grammar, str):
            raise errors.InvalidParameterError(f"grammar must be GBNF text, got {self.grammar!r}")

    @classmethod
    def from_options(cls, base: SamplingParams | None = None, **options: Any) -> SamplingParams:
        """``base`` (default: the defaults) with ``options`` applied; aliases are accepted and
        ``None`` values leave a field as it is (except ``seed``, ``grammar`` and ``stop``,
        where None is a value).

        Raises:
            InvalidParameterError: an unknown option, both a name and its alias, or a bad value.
        """
        resolved: dict[str, Any] = {}
        for key, value in options.items():
            name = ALIASES.get(key, key)
            if name not in FIELDS:
                raise errors.InvalidParameterError(
                    f"unknown sampling option {key!r}; accepted: {', '.join(FIELDS)} (aliases: "
                    f"{', '.join(ALIASES)})")
            if name in resolved and resolved[name] != value:
                raise errors.InvalidParameterError(f"{key!r} and another alias of {name!r} disagree")
            if value is None and name not in _NONE_IS_A_VALUE:
                continue
            resolved[name] = value
        return dataclasses.replace(base or cls(), **resolved)

    def constrained(self, stop: tuple[str, ...], grammar: str | None) -> SamplingParams:
        """These parameters with the stop strings and grammar a chat format adds (the engine's
        own values, so nothing is checked again: the fields were checked when built)."""
        out = object.__new__(SamplingParams)
        for f in dataclasses.fields(self):
            object.__setattr__(out, f.name, getattr(self, f.name))
        object.__setattr__(out, "stop", tuple(stop))
        object.__setattr__(out, "grammar", grammar)
        return out

    def generate_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``GPT4All.generate`` for these parameters."""
        out = dataclasses.asdict(self)
        out["stop"] = list(self.stop) or None
        return out

    def native(self) -> dict[str, Any]:
        """The keyword arguments of ``NativeSequence.generate_start`` (a fresh seed when None)."""
        return dict(temp=self.temp, top_k=self.top_k, top_p=self.top_p, min_p=self.min_p,
                    repeat_penalty=self.repeat_penalty, repeat_last_n=self.repeat_last_n,
                    seed=secrets.randbits(32) if self.seed is None else self.seed,
                    grammar=self.grammar)


#: The field names, in declaration order.
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(SamplingParams))
#: Other names accepted for a field (OpenAI's and the seed's).
ALIASES: dict[str, str] = {"temperature": "temp", "n_predict": "max_tokens",
                           "max_completion_tokens": "max_tokens"}
_NONE_IS_A_VALUE = frozenset({"seed", "grammar", "stop", "n_batch"})
#: The defaults, as one object.
DEFAULTS = SamplingParams()
