"""The native model and its sequences: Python objects over a ``g4r_model`` handle.

:class:`NativeModel` owns one loaded model (weights, context, KV cache) and its lifetime (calls
in flight finish before ``close`` frees it); :class:`NativeSequence` is one of its parallel
sequences. The calls themselves go through :mod:`.native` (the loader and the declaration
table); this module only adds the objects, their buffers and their lifetime.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
import time
from typing import Any, Sequence

import numpy as np

from .. import errors
from .native import (ERR_BUFFER_TOO_SMALL, ERR_INTERNAL, ERR_NOT_FOUND, LOAD_FLASH_ATTN_OFF,
                     LOAD_FLASH_ATTN_ON, LOAD_LLAMA_ENCODER, LOAD_VOCAB_ONLY, PROP_ENCODER,
                     PROP_FLASH_ATTN, PROP_IS_EMBEDDING,
                     PROP_N_CTX, PROP_N_EMBD, PROP_N_SEQ_MAX, SPECIAL_TOKENS, SamplerParams,
                     _read_string, _take_string, check, lib, release_freed_memory)

__all__ = ["NativeModel", "NativeSequence"]

_p = ctypes.POINTER


def utf8(text: str, what: str) -> bytes:
    """``text`` as UTF-8 bytes for the C API.

    Raises:
        InvalidParameterError: ``text`` holds a lone surrogate (from ``"\\ud800"`` in JSON or
            ``surrogateescape`` decoding), which is not Unicode text and has no UTF-8 form.
    """
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise errors.InvalidParameterError(
            f"the {what} is not valid Unicode: a lone surrogate {text[exc.start]!r} at index {exc.start}"
        ) from None


class NativeModel:
    """One loaded model: weights, context and decoding state (a ``g4r_model`` handle).

    Methods map one-to-one onto the C API; see ``native/include/g4r.h`` for the semantics.
    Generation goes through the model's sequences (:meth:`sequence`, one per concurrent
    caller). After :meth:`close` every method raises
    :class:`~gpt4all_rag.errors.ModelClosedError`.

    Args:
        path: GGUF file.
        n_ctx: context window in tokens (0: the model's training context).
        n_gpu_layers: layers to offload when a GPU device is chosen.
        device: ``None``/``"cpu"``, ``"gpu"``, a backend name or a device name.
        n_threads: CPU threads (``None``: the library's default).
        vocab_only: load the tokenizer and metadata only.
        n_seq: parallel sequences of a generation model (1..64), each with the whole window
            (see :meth:`sequence`).
        flash_attention: ``True``/``False`` force flash or plain attention; ``None`` lets the
            library choose (plain attention for small CPU generation contexts, see
            ``g4r_model_load``).
        encoder: an embedding model's graph: ``"g4r"``, the library's own BERT encoder where
            it covers the model (architecture ``bert`` with separate Q/K/V weights, mean or CLS
            pooling, on the CPU of a build without a BLAS module) and llama.cpp's elsewhere; ``"llama.cpp"``,
            llama.cpp's always. :attr:`encoder` tells which one evaluates.

    Raises:
        ModelNotFoundError: the file cannot be opened.
        ModelLoadError: the file is not a loadable GGUF model.
        InvalidParameterError: bad arguments or an unknown device.
    """

    def __init__(self, path: str | os.PathLike[str], *, n_ctx: int = 2048, n_gpu_layers: int = 100,
                 device: str | None = None, n_threads: int | None = None,
                 vocab_only: bool = False, flash_attention: bool | None = None,
                 n_seq: int = 1, encoder: str = "g4r") -> None:
        L = lib()
        self._lib = L
        self.path = str(path)
        flags = LOAD_VOCAB_ONLY if vocab_only else 0
        if flash_attention is not None:
            flags |= LOAD_FLASH_ATTN_ON if flash_attention else LOAD_FLASH_ATTN_OFF
        if encoder == "llama.cpp":
            flags |= LOAD_LLAMA_ENCODER
        handle = L.g4r_model_load(os.fsencode(self.path), int(n_ctx), int(n_gpu_layers),
                                  device.encode() if device else None,
                                  int(n_threads) if n_threads else 0, flags, int(n_seq))
        if not handle:
            check(L.g4r_last_status() or ERR_INTERNAL)
        self._handle: int | None = handle
        self._sequences: dict[int, NativeSequence] = {}
        # The one owner of the handle's lifetime: calls in flight are counted, close() refuses
        # new ones at once and frees the handle only after the last one has left.
        self._cond = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._closing = False

    # -- lifetime ---------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True from the moment :meth:`close` starts."""
        return self._closing

    def _call(self, name: str, *args: Any) -> Any:
        """Call ``g4r_<...>(handle, *args)``, counted as in flight so that :meth:`close` never
        frees the handle beside it.

        Raises:
            ModelClosedError: :meth:`close` has started.
        """
        with self._cond:
            if self._closing:
                raise errors.ModelClosedError("the model was closed; create a new instance to use it")
            self._in_flight += 1
        try:
            return getattr(self._lib, name)(self._handle, *args)
        finally:
            with self._cond:
                self._in_flight -= 1
                if not self._in_flight:
                    self._cond.notify_all()

    def close(self) -> None:
        """Refuse new calls (they raise ``ModelClosedError``), wait until the calls in flight
        in other threads have returned, then free the native model. Idempotent; a second
        close() in another thread returns once the model is freed. Thread-safe."""
        with self._cond:
            if self._closing:
                while self._handle is not None:
                    self._cond.wait()
                return
            self._closing = True
            while self._in_flight:
                self._cond.wait()
            handle, self._handle = self._handle, None
            if handle:
                self._lib.g4r_model_free(handle)
                release_freed_memory()
            self._cond.notify_all()

    def __del__(self) -> None:  # pragma: no cover - depends on GC timing
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass

    # -- properties -------------------------------------------------------------------------
    def info(self, prop: int) -> int:
        value = ctypes.c_int64()
        check(self._call("g4r_model_info", prop, ctypes.byref(value)))
        return value.value

    @property
    def n_ctx(self) -> int:
        return self.info(PROP_N_CTX)

    @property
    def n_embd(self) -> int:
        return self.info(PROP_N_EMBD)

    @property
    def is_embedding(self) -> bool:
        return bool(self.info(PROP_IS_EMBEDDING))

    @property
    def encoder(self) -> str | None:
        """An embedding model's graph: ``"g4r"`` (the library's BERT encoder) or
        ``"llama.cpp"``; None for a generation model."""
        if not self.is_embedding:
            return None
        return "g4r" if self.info(PROP_ENCODER) else "llama.cpp"

    @property
    def flash_attention(self) -> bool:
        """Whether the context uses flash attention (``False``: plain attention)."""
        return bool(self.info(PROP_FLASH_ATTN))

    def device(self) -> tuple[str, str | None]:
        """``(backend, device description or None)``."""
        backend, dev = ctypes.c_char_p(), ctypes.c_char_p()
        check(self._call("g4r_model_device", ctypes.byref(backend), ctypes.byref(dev)))
        return (backend.value or b"cpu").decode(), dev.value.decode() if dev.value else None

    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as a string, or ``None`` when the key is absent."""
        name = key.encode()
        status, value = _read_string(
            lambda buf, size, need: self._call("g4r_model_meta", name, buf, size, need), 256)
        if status == ERR_NOT_FOUND:
            return None
        check(status)
        return value.decode("utf-8", "replace")

    def chat_template(self) -> str | None:
        """The GGUF's ``tokenizer.chat_template``, or ``None``."""
        out = ctypes.c_char_p()
        status = self._call("g4r_model_chat_template", ctypes.byref(out))
        if status == ERR_NOT_FOUND:
            return None
        check(status)
        return (out.value or b"").decode("utf-8", "replace")

    def chat_apply(self, request: dict[str, Any], chat_template: str | None = None) -> dict[str, Any]:
        """llama.cpp's formatting of a chat request (``g4r_chat_apply``): the chat format, its
        parser, grammar, stops and llama.cpp's own rendering of the prompt.

        Raises:
            InvalidParameterError: bad request, or a template llama.cpp cannot apply (also
                when the model has no template and none is given).
        """
        out = ctypes.c_void_p()
        status = self._call("g4r_chat_apply", utf8(chat_template, "chat template") if chat_template else None,
                                          json.dumps(request).encode(), ctypes.byref(out))
        return json.loads(_take_string(status, out))

    def special_token(self, kind: str) -> int:
        """Id of a special token (``"bos"``, ``"eos"``, ``"eot"``, ...) or -1."""
        out = ctypes.c_int32()
        check(self._call("g4r_model_special_token", SPECIAL_TOKENS[kind], ctypes.byref(out)))
        return out.value

    def is_eog(self, token: int) -> bool:
        return bool(self._call("g4r_model_token_is_eog", token))

    # -- text <-> tokens --------------------------------------------------------------------
    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Tokenize ``text``; returns token ids.

        Raises:
            InvalidParameterError: ``text`` is not Unicode text (a lone surrogate).
        """
        data = utf8(text, "text")
        cap = len(data) + 16
        while True:
            arr = (ctypes.c_int32 * cap)()
            n = ctypes.c_int32()
            status = self._call("g4r_tokenize", data, len(data), int(add_special),
                                            int(parse_special), arr, cap, ctypes.byref(n))
            if status == ERR_BUFFER_TOO_SMALL:
                cap = n.value
                continue
            check(status, "tokenize")
            return arr[: n.value]

    def token_to_piece(self, token: int, *, special: bool = False) -> bytes:
        n = ctypes.c_int32()
        buf = ctypes.create_string_buffer(256)
        status = self._call("g4r_token_to_piece", token, int(special), buf, 256,
                                              ctypes.byref(n))
        if status == ERR_BUFFER_TOO_SMALL:
            buf = ctypes.create_string_buffer(n.value)
            check(self._call("g4r_token_to_piece", token, int(special), buf, n.value,
                                               ctypes.byref(n)))
            return buf.raw[: n.value]
        check(status)
        return buf.raw[: n.value]

    def detokenize(self, tokens: Sequence[int], *, special: bool = False) -> str:
        # ctypes would wrap an id past int32 silently (2**64 would read as token 0).
        if any(not -2**31 <= t < 2**31 for t in tokens):
            raise errors.InvalidParameterError("a token id is outside the vocabulary")
        arr = (ctypes.c_int32 * len(tokens))(*tokens)
        cap = max(64, 8 * len(tokens))
        while True:
            buf = ctypes.create_string_buffer(cap)
            n = ctypes.c_int32()
            status = self._call("g4r_detokenize", arr, len(tokens), int(special), buf, cap,
                                              ctypes.byref(n))
            if status == ERR_BUFFER_TOO_SMALL:
                cap = n.value + 1
                continue
            check(status)
            return buf.raw[: n.value].decode("utf-8", "replace")

    # -- evaluation -------------------------------------------------------------------------
    def set_threads(self, n_threads: int) -> None:
        check(self._call("g4r_model_set_threads", int(n_threads)))

    def reset(self) -> None:
        """Clear the KV cache of every sequence (the next prompt is evaluated whole)."""
        check(self._call("g4r_model_reset"))

    @property
    def n_seq(self) -> int:
        """Parallel sequences of a generation model (1 for an embedding model)."""
        return 1 if self.is_embedding else self.info(PROP_N_SEQ_MAX)

    def sequence(self, seq: int = 0) -> "NativeSequence":
        """The view of sequence ``seq`` (``0 <= seq <`` :attr:`n_seq`) through which one caller
        generates; see ``g4r.h``, "Parallel sequences"."""
        view = self._sequences.get(seq)
        if view is None:
            view = self._sequences.setdefault(seq, NativeSequence(self, seq))
        return view

    def embed(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Pooled (not normalised) embeddings: ``float32[len(sequences), n_embd]``."""
        dim = self.n_embd
        lens = np.fromiter((len(s) for s in sequences), dtype=np.int32, count=len(sequences))
        flat = np.fromiter((t for s in sequences for t in s), dtype=np.int32, count=int(lens.sum()))
        out = np.empty((len(sequences), dim), dtype=np.float32)
        i32 = _p(ctypes.c_int32)
        check(self._call("g4r_model_embed", flat.ctypes.data_as(i32), lens.ctypes.data_as(i32),
                                        len(sequences), out.ctypes.data_as(_p(ctypes.c_float)), dim))
        return out

    def cancel(self) -> None:
        """Ask a running evaluation (in another thread) to stop."""
        with self._cond:  # never beside the free in close()
            if self._handle is not None:
                self._lib.g4r_model_cancel(self._handle)



class NativeSequence:
    """One sequence of a :class:`NativeModel`: the calls of one generation (``g4r.h``:
    ingest, start, next, logprobs, finish, score on ``seq``). A view holds no state of its own
    but its buffers, so one thread at a time uses it (the Python layer hands out sequences).

    ``info``, ``token_to_piece`` and ``closed`` are the model's, so the generation loop can
    take a view wherever it takes a model.
    """

    def __init__(self, model: NativeModel, seq: int) -> None:
        self.model = model
        self.seq = seq
        self._lib = model._lib
        self._piece = ctypes.create_string_buffer(256)
        self._in_call = False
        self._last_call = time.monotonic()
        self._token, self._n, self._reason = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int32()

    @property
    def closed(self) -> bool:
        return self.model.closed

    def _call(self, name: str, *args: Any) -> Any:
        """``g4r_<...>(handle, seq, *args)`` through the model's counted call, its time kept
        (:meth:`idle_s`)."""
        self._in_call = True
        try:
            return self.model._call(name, self.seq, *args)
        finally:
            self._in_call, self._last_call = False, time.monotonic()

    def touch(self) -> None:
        """Count the sequence as active now (a caller just took it)."""
        self._last_call = time.monotonic()

    def idle_s(self) -> float:
        """Seconds since its last call returned (0 during one): how long its holder has left
        it, e.g. a stream nobody reads."""
        return 0.0 if self._in_call else time.monotonic() - self._last_call

    def info(self, prop: int) -> int:
        return self.model.info(prop)

    def token_to_piece(self, token: int, *, special: bool = False) -> bytes:
        return self.model.token_to_piece(token, special=special)

    def ingest(self, tokens: Sequence[int], n_batch: int) -> int:
        """Make the sequence hold ``tokens`` (evaluated by the next steps); returns how many
        cached tokens were reused."""
        arr = (ctypes.c_int32 * len(tokens))(*tokens)
        reused = ctypes.c_int32()
        check(self._call("g4r_model_ingest", arr, len(tokens), int(n_batch),
                                         ctypes.byref(reused)))
        return reused.value

    def generate_start(self, *, temp: float, top_k: int, top_p: float, min_p: float,
                       repeat_penalty: float, repeat_last_n: int, seed: int,
                       grammar: str | None = None, trigger_patterns: Sequence[str] = (),
                       trigger_tokens: Sequence[int] = (), n_predict: int | None = None,
                       n_logprobs: int | None = None) -> None:
        """Start sampling (``g4r_generate_start``); trigger patterns or tokens make the grammar
        lazy; at most ``n_predict`` tokens (None: no limit); ``n_logprobs`` alternatives
        recorded per token (None: no log-probabilities). The library checks every value
        (``SamplingParams`` has checked them before, with the same ranges).

        Raises:
            InvalidParameterError: a value out of range (the message names it), triggers
                without a grammar.
            GrammarError: the grammar does not parse.
        """
        params = SamplerParams()
        self._lib.g4r_sampler_default_params(ctypes.byref(params))
        params.temp = float(temp)
        params.top_k = int(top_k)
        params.top_p = float(top_p)
        params.min_p = float(min_p)
        params.repeat_penalty = float(repeat_penalty)
        params.repeat_last_n = int(repeat_last_n)
        params.seed = int(seed) & 0xFFFFFFFF
        # The struct keeps references to what its pointer fields point at (ctypes' _objects).
        params.grammar = utf8(grammar, "grammar") if grammar else None
        if trigger_patterns:
            params.trigger_patterns = (ctypes.c_char_p * len(trigger_patterns))(
                *[p.encode() for p in trigger_patterns])
            params.n_trigger_patterns = len(trigger_patterns)
        if trigger_tokens:
            params.trigger_tokens = (ctypes.c_int32 * len(trigger_tokens))(*trigger_tokens)
            params.n_trigger_tokens = len(trigger_tokens)
        params.n_predict = -1 if n_predict is None else int(n_predict)
        params.n_logprobs = -1 if n_logprobs is None else int(n_logprobs)
        check(self._call("g4r_generate_start", ctypes.byref(params)))

    def generate_next(self) -> tuple[int, bytes, int]:
        """``(token, piece bytes, stop reason)``; see ``g4r_generate_next``."""
        while True:
            status = self._call("g4r_generate_next", ctypes.byref(self._token),
                                      self._piece, len(self._piece), ctypes.byref(self._n),
                                      ctypes.byref(self._reason))
            if status != ERR_BUFFER_TOO_SMALL:
                break
            # The token stays queued; take it again with a buffer of the size it needs.
            self._piece = ctypes.create_string_buffer(max(self._n.value, 2 * len(self._piece)))
        check(status)
        return self._token.value, self._piece.raw[: self._n.value], self._reason.value

    def generate_logprobs(self, n_top: int) -> tuple[float, list[tuple[int, float]]]:
        """Log-probability of the token ``generate_next`` just produced and the ``n_top``
        (<= the ``n_logprobs`` it was started with) most likely ``(token, logprob)`` pairs at
        that step, from the raw logits (``g4r_generate_logprobs``)."""
        logprob, n = ctypes.c_float(), ctypes.c_int32()
        ids, lps = (ctypes.c_int32 * max(n_top, 1))(), (ctypes.c_float * max(n_top, 1))()
        check(self._call("g4r_generate_logprobs", int(n_top),
                                              ctypes.byref(logprob), ids, lps, ctypes.byref(n)))
        return logprob.value, [(ids[i], lps[i]) for i in range(n.value)]

    def generate_finish(self) -> None:
        if not self.model.closed:
            check(self._call("g4r_generate_finish"))

    def score(self, tokens: Sequence[int], n_prompt: int, n_batch: int
              ) -> tuple[list[float], list[int], int]:
        """``(logprobs, ranks, reused)`` of ``tokens[n_prompt:]`` given what precedes each
        (``g4r_model_score``): natural-log probabilities, the number of vocabulary entries with
        a higher logit (0 = greedy), and how many cached tokens were kept."""
        n = len(tokens)
        arr = (ctypes.c_int32 * n)(*tokens)
        m = max(n - int(n_prompt), 1)
        lps, ranks, reused = (ctypes.c_float * m)(), (ctypes.c_int32 * m)(), ctypes.c_int32()
        check(self._call("g4r_model_score", arr, n, int(n_prompt),
                                        int(n_batch), lps, ranks, ctypes.byref(reused)))
        k = n - int(n_prompt)
        return list(lps[:k]), list(ranks[:k]), reused.value
