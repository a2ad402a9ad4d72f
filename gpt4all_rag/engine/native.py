"""ctypes binding of the native library (``native/include/g4r.h``).

This is the only module that imports :mod:`ctypes`. It loads ``libgpt4all_rag`` lazily on first
use, declares every C function once in :data:`DECLARATIONS` (a test checks the table against the
header), maps status codes to the exceptions of :mod:`gpt4all_rag.errors`, and wraps a model
handle in :class:`NativeModel` so that the rest of the package never sees a raw pointer.

Set ``GPT4ALL_RAG_NATIVE_LIB`` to the path of another build of the library to use it instead
of the one installed with the package.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable


from .. import errors

__all__ = ["ABI_VERSION", "DECLARATIONS", "SamplerParams", "lib",
           "gpu_devices", "json_schema_to_grammar", "system_info"]

ABI_VERSION = 3
LIB_ENV = "GPT4ALL_RAG_NATIVE_LIB"
#: Overrides of g4r's BERT encoder choices, read once by the library (benchmarks compare them on
#: one machine): a kernel set of :func:`encoder_kernel_sets`, and who multiplies ("g4r", "ggml").
ENCODER_KERNELS_ENV = "GPT4ALL_RAG_ENCODER_KERNELS"
ENCODER_PRODUCTS_ENV = "GPT4ALL_RAG_ENCODER_PRODUCTS"
_LIB_NAME = "libgpt4all_rag.so"

logger = logging.getLogger("gpt4all_rag.native")

# Status codes of g4r.h.
OK = 0
ERR_INVALID_ARGUMENT = 1
ERR_IO = 2
ERR_MODEL_LOAD = 3
ERR_CONTEXT_OVERFLOW = 4
ERR_DECODE = 5
ERR_NOT_SUPPORTED = 6
ERR_CANCELLED = 7
ERR_BUFFER_TOO_SMALL = 8
ERR_STATE = 9
ERR_NOT_FOUND = 10
ERR_GRAMMAR = 11
ERR_INTERNAL = 12

STOP_CONTINUE = 0
STOP_EOG = 1
STOP_LENGTH = 2

# g4r_model_property
PROP_N_CTX = 0
PROP_N_CTX_TRAIN = 1
PROP_N_VOCAB = 2
PROP_N_EMBD = 3
PROP_IS_EMBEDDING = 4
PROP_ADD_BOS = 5
PROP_ADD_EOS = 6
PROP_N_PAST = 7
PROP_N_DECODED = 8
PROP_N_THREADS = 9
PROP_N_BATCH = 10
PROP_N_SEQ_MAX = 11
PROP_POOLING = 12
PROP_N_PARAMS = 13
PROP_FLASH_ATTN = 14
PROP_N_EVALS = 15
PROP_ENCODER = 16

# g4r_special_token
SPECIAL_TOKENS = {"bos": 0, "eos": 1, "eot": 2, "sep": 3, "pad": 4, "mask": 5, "nl": 6}

#: G4R_MAX_TOP_LOGPROBS: the most alternatives ``generate_logprobs`` reports.
MAX_TOP_LOGPROBS = 20

LOAD_VOCAB_ONLY = 1
LOAD_FLASH_ATTN_ON = 2
LOAD_FLASH_ATTN_OFF = 4
LOAD_LLAMA_ENCODER = 8

_STATUS_ERRORS: dict[int, type[errors.GPT4AllRagError]] = {
    ERR_INVALID_ARGUMENT: errors.InvalidParameterError,
    ERR_IO: errors.ModelNotFoundError,
    ERR_MODEL_LOAD: errors.ModelLoadError,
    ERR_CONTEXT_OVERFLOW: errors.ContextOverflowError,
    ERR_DECODE: errors.GenerationError,
    ERR_NOT_SUPPORTED: errors.UnsupportedOperationError,
    ERR_CANCELLED: errors.CancellationError,
    ERR_STATE: errors.GenerationError,
    ERR_NOT_FOUND: errors.InvalidParameterError,
    ERR_GRAMMAR: errors.GrammarError,
    ERR_INTERNAL: errors.GenerationError,
}

_p = ctypes.POINTER
_c_char_pp = _p(ctypes.c_char_p)
LOG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int32, ctypes.c_char_p, ctypes.c_void_p)


class SamplerParams(ctypes.Structure):
    """``g4r_sampler_params``: the parameters of ``g4r_generate_start`` (fields, ranges and
    defaults are documented in ``g4r.h``; ``g4r_sampler_default_params`` fills them). Passed by
    pointer; the C library checks every field."""

    _fields_ = [
        ("temp", ctypes.c_float),
        ("top_k", ctypes.c_int32),
        ("top_p", ctypes.c_float),
        ("min_p", ctypes.c_float),
        ("repeat_penalty", ctypes.c_float),
        ("repeat_last_n", ctypes.c_int32),
        ("seed", ctypes.c_uint32),
        ("grammar", ctypes.c_char_p),
        ("trigger_patterns", _c_char_pp),
        ("n_trigger_patterns", ctypes.c_int32),
        ("trigger_tokens", _p(ctypes.c_int32)),
        ("n_trigger_tokens", ctypes.c_int32),
        ("n_predict", ctypes.c_int32),
        ("n_logprobs", ctypes.c_int32),
    ]


#: name -> (restype, argtypes). The single declaration table; tests compare it with g4r.h.
DECLARATIONS: dict[str, tuple[Any, tuple[Any, ...]]] = {
    "g4r_abi_version": (ctypes.c_int32, ()),
    "g4r_last_error": (ctypes.c_char_p, ()),
    "g4r_last_status": (ctypes.c_int, ()),
    "g4r_log_set": (None, (LOG_CALLBACK, ctypes.c_void_p)),
    "g4r_system_info": (ctypes.c_char_p, ()),
    "g4r_cpu_flags": (ctypes.c_char_p, ()),
    "g4r_cpu_brand": (ctypes.c_char_p, ()),
    "g4r_encoder_kernels": (ctypes.c_char_p, ()),
    "g4r_encoder_kernel_sets": (ctypes.c_char_p, ()),
    "g4r_encoder_products": (ctypes.c_char_p, ()),
    "g4r_gpu_count": (ctypes.c_int32, ()),
    "g4r_gpu_info": (ctypes.c_int, (ctypes.c_int32, _c_char_pp, _c_char_pp, _c_char_pp)),
    "g4r_model_load": (ctypes.c_void_p, (ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32,
                                         ctypes.c_char_p, ctypes.c_int32, ctypes.c_uint32,
                                         ctypes.c_int32)),
    "g4r_model_free": (None, (ctypes.c_void_p,)),
    "g4r_model_info": (ctypes.c_int, (ctypes.c_void_p, ctypes.c_int32, _p(ctypes.c_int64))),
    "g4r_model_device": (ctypes.c_int, (ctypes.c_void_p, _c_char_pp, _c_char_pp)),
    "g4r_model_meta": (ctypes.c_int, (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                      ctypes.c_size_t, _p(ctypes.c_size_t))),
    "g4r_model_chat_template": (ctypes.c_int, (ctypes.c_void_p, _c_char_pp)),
    "g4r_chat_apply": (ctypes.c_int, (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                      _p(ctypes.c_void_p))),
    "g4r_chat_parse": (ctypes.c_int, (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t,
                                      ctypes.c_int32, _p(ctypes.c_void_p))),
    "g4r_string_free": (None, (ctypes.c_char_p,)),
    "g4r_json_schema_to_grammar": (ctypes.c_int, (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t,
                                                  _p(ctypes.c_size_t))),
    "g4r_model_special_token": (ctypes.c_int, (ctypes.c_void_p, ctypes.c_int32, _p(ctypes.c_int32))),
    "g4r_model_token_is_eog": (ctypes.c_int32, (ctypes.c_void_p, ctypes.c_int32)),
    "g4r_tokenize": (ctypes.c_int, (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32,
                                    ctypes.c_int32, _p(ctypes.c_int32), ctypes.c_int32,
                                    _p(ctypes.c_int32))),
    "g4r_token_to_piece": (ctypes.c_int, (ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32,
                                          ctypes.c_char_p, ctypes.c_int32, _p(ctypes.c_int32))),
    "g4r_detokenize": (ctypes.c_int, (ctypes.c_void_p, _p(ctypes.c_int32), ctypes.c_int32,
                                      ctypes.c_int32, ctypes.c_char_p, ctypes.c_int32,
                                      _p(ctypes.c_int32))),
    "g4r_model_set_threads": (ctypes.c_int, (ctypes.c_void_p, ctypes.c_int32)),
    "g4r_model_ingest": (ctypes.c_int, (ctypes.c_void_p, ctypes.c_int32, _p(ctypes.c_int32),
                                        ctypes.c_int32, ctypes.c_int32, _p(ctypes.c_int32))),
    "g4r_model_reset": (ctypes.c_int, (ctypes.c_void_p,)),
    "g4r_sampler_default_params": (None, (_p(SamplerParams),)),
    "g4r_generate_start": (ctypes.c_int, (ctypes.c_void_p, ctypes.c_int32, _p(SamplerParams))),
    "g4r_generate_next": (ctypes.c_int, (ctypes.c_void_p, ctypes.c_int32, _p(ctypes.c_int32),
                                         ctypes.c_char_p, ctypes.c_int32, _p(ctypes.c_int32),
                                         _p(ctypes.c_int32))),
    "g4r_generate_finish": (ctypes.c_int, (ctypes.c_void_p, ctypes.c_int32)),
    "g4r_generate_logprobs": (ctypes.c_int, (ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32,
                                             _p(ctypes.c_float), _p(ctypes.c_int32),
                                             _p(ctypes.c_float), _p(ctypes.c_int32))),
    "g4r_model_score": (ctypes.c_int, (ctypes.c_void_p, ctypes.c_int32, _p(ctypes.c_int32),
                                       ctypes.c_int32, ctypes.c_int32, ctypes.c_int32,
                                       _p(ctypes.c_float), _p(ctypes.c_int32), _p(ctypes.c_int32))),
    "g4r_model_embed": (ctypes.c_int, (ctypes.c_void_p, _p(ctypes.c_int32), _p(ctypes.c_int32),
                                       ctypes.c_int32, _p(ctypes.c_float), ctypes.c_int32)),
    "g4r_model_cancel": (None, (ctypes.c_void_p,)),
}

_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()
_log_callback_ref: Any = None


def _candidate_paths() -> list[Path]:
    env = os.environ.get(LIB_ENV)
    if env:
        return [Path(env)]
    # The package's __path__ (read, not imported: the package imports this module) may hold
    # several folders (an editable install keeps sources and the built library apart); the
    # library sits in one of them.
    package = sys.modules[__name__.partition(".")[0]]
    return [Path(p) / _LIB_NAME for p in package.__path__]


def _log_to_logging(level: int, text: bytes | None, _user_data: Any) -> None:
    msg = (text or b"").decode("utf-8", "replace").rstrip("\n")
    if not msg.strip():
        return
    py_level = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}.get(
        level, logging.DEBUG)
    logger.log(py_level, "%s", msg)


def lib() -> ctypes.CDLL:
    """Load (once) and return the native library.

    Raises:
        NativeLibraryError: the library is missing, cannot be loaded, has another ABI version,
            or has no CPU kernels (ggml's ``libggml-cpu*`` modules) beside it; or
            ``GPT4ALL_RAG_ENCODER_KERNELS`` names a kernel set this CPU does not run, or
            ``GPT4ALL_RAG_ENCODER_PRODUCTS`` is neither ``g4r`` nor ``ggml`` (``g4r`` with a
            set that has no product kernel).
    """
    global _lib, _log_callback_ref
    if _lib is not None:
        return _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        candidates = _candidate_paths()
        path = next((p for p in candidates if p.exists()), None)
        if path is None:
            raise errors.NativeLibraryError(
                f"native library {_LIB_NAME} not found (looked in: "
                f"{', '.join(str(p) for p in candidates)}); reinstall gpt4all-rag or set {LIB_ENV}")
        if not any(path.parent.glob("*ggml-cpu*")):
            raise errors.NativeLibraryError(
                f"no CPU kernels beside {path}: ggml's libggml-cpu* modules must lie in the same "
                "folder; reinstall gpt4all-rag or rebuild it")
        try:
            handle = ctypes.CDLL(str(path))
        except OSError as exc:
            raise errors.NativeLibraryError(f"cannot load {path}: {exc}") from exc
        for name, (restype, argtypes) in DECLARATIONS.items():
            try:
                fn = getattr(handle, name)
            except AttributeError as exc:
                raise errors.NativeLibraryError(f"{path} lacks {name}: rebuild it") from exc
            fn.restype = restype
            fn.argtypes = list(argtypes)
        version = handle.g4r_abi_version()
        if version != ABI_VERSION:
            raise errors.NativeLibraryError(
                f"{path} has ABI version {version}, this package needs {ABI_VERSION}: rebuild it")
        _check_encoder_overrides(handle)
        _log_callback_ref = LOG_CALLBACK(_log_to_logging)
        handle.g4r_log_set(_log_callback_ref, None)
        _lib = handle
        return handle


def _check_encoder_overrides(handle: ctypes.CDLL) -> None:
    """Raise where an encoder override is set but the library could not follow it (it falls
    back to its own choice silently)."""
    kernels = os.environ.get(ENCODER_KERNELS_ENV)
    if kernels and (handle.g4r_encoder_kernels() or b"").decode() != kernels:
        sets = (handle.g4r_encoder_kernel_sets() or b"").decode().split()
        raise errors.NativeLibraryError(
            f"{ENCODER_KERNELS_ENV}={kernels!r} is not a kernel set this CPU runs: "
            f"{', '.join(sets)}")
    products = os.environ.get(ENCODER_PRODUCTS_ENV)
    if products and (handle.g4r_encoder_products() or b"").decode() != products:
        why = ("the encoder's kernel set has no product kernel" if products == "g4r"
               else "it must be 'g4r' or 'ggml'")
        raise errors.NativeLibraryError(f"{ENCODER_PRODUCTS_ENV}={products!r}: {why}")


def _last_error() -> str:
    return (lib().g4r_last_error() or b"").decode("utf-8", "replace")


def check(status: int, what: str = "") -> None:
    """Raise the exception mapped to a non-zero status, with the library's message."""
    if status == OK:
        return
    message = _last_error() or f"status {status}"
    cls = _STATUS_ERRORS.get(status, errors.GenerationError)
    raise cls(f"{what}: {message}" if what else message)


def system_info() -> str:
    """The CPU features of the CPU kernels in use (llama.cpp's system info line), then
    ``ACCEL: name (description) |`` for each accelerator backend loaded beside them."""
    return (lib().g4r_system_info() or b"").decode()


def cpu_flags() -> list[str]:
    """The running CPU's instruction-set flags that decide ggml's CPU kernels, as cpuid and
    xgetbv report them (Linux ``/proc/cpuinfo`` names; a feature the OS does not enable is
    absent). Under an emulator these are the emulated CPU's. Empty off x86.

    Raises:
        NativeLibraryError: the native library cannot be loaded.
    """
    return (lib().g4r_cpu_flags() or b"").decode().split()


def cpu_brand() -> str:
    """The CPU's brand string from cpuid ("" where it has none).

    Raises:
        NativeLibraryError: the native library cannot be loaded.
    """
    return (lib().g4r_cpu_brand() or b"").decode(errors="replace").strip()


def encoder_kernels() -> str:
    """The kernel set of g4r's BERT encoder on this CPU: the first of
    :func:`encoder_kernel_sets`, or the one ``GPT4ALL_RAG_ENCODER_KERNELS`` names.

    Raises:
        NativeLibraryError: the native library cannot be loaded.
    """
    return (lib().g4r_encoder_kernels() or b"").decode()


def encoder_kernel_sets() -> list[str]:
    """The kernel sets of g4r's BERT encoder this CPU runs, best first (from
    :func:`cpu_flags`): ``"avx512"`` (AVX-512F with AVX2, FMA and F16C: products 16 lanes wide,
    the other kernels AVX2's), ``"avx2"`` (AVX2, FMA, F16C), ``"baseline"`` (plain C++; always).

    Raises:
        NativeLibraryError: the native library cannot be loaded.
    """
    return (lib().g4r_encoder_kernel_sets() or b"").decode().split()


def encoder_products() -> str:
    """Who multiplies g4r's BERT encoder's F16, F32 and Q8_0 weights on this CPU: ``"g4r"``
    (its own product, in :func:`encoder_kernels`' set) or ``"ggml"`` (ggml's ``mul_mat``;
    where that set has no product kernel, or the CPU has AVX-512), unless
    ``GPT4ALL_RAG_ENCODER_PRODUCTS`` says which.

    Raises:
        NativeLibraryError: the native library cannot be loaded.
    """
    return (lib().g4r_encoder_products() or b"").decode()


#: Written by the build beside the CPU modules: module file name -> ggml features it was built for.
CPU_VARIANTS_FILE = "ggml-cpu-variants.json"


def cpu_modules() -> list[dict[str, Any]]:
    """ggml's CPU kernel modules beside the native library and the score ggml gives each on
    this CPU (its own ``ggml_backend_score``, which reads cpuid; 0: refused). ggml loads the
    one with the highest score (the first of equals).

    Returns:
        ``[{"file": "libggml-cpu-haswell.so", "score": int, "features": ["SSE42", ...] or
        None}]`` sorted by file name; ``features`` come from the build's
        ``ggml-cpu-variants.json`` (None for a module it does not list).

    Raises:
        NativeLibraryError: the native library cannot be loaded.
    """
    handle = lib()
    folder = Path(handle._name).parent  # noqa: SLF001 - the path ctypes loaded
    try:
        recorded = json.loads((folder / CPU_VARIANTS_FILE).read_text())
    except (OSError, ValueError):
        recorded = {}
    modules = []
    for path in sorted(folder.glob("*ggml-cpu*")):
        if path.suffix not in (".so", ".dll", ".dylib"):
            continue
        score = 0
        try:
            module = ctypes.CDLL(str(path))
            fn = module.ggml_backend_score
            fn.restype, fn.argtypes = ctypes.c_int, []
            score = int(fn())
        except (OSError, AttributeError):
            score = 0
        modules.append({"file": path.name, "score": score, "features": recorded.get(path.name)})
    return modules


def has_blas() -> bool:
    """Whether ggml's BLAS backend is loaded (a ``G4R_BLAS=mkl`` build): llama.cpp then
    evaluates matrix products of 32 or more rows with it."""
    return "ACCEL: BLAS" in system_info()


# The process's own symbols, the C library's among them (None until first needed).
_LIBC: Any = None
_M_ARENA_MAX = -8  # glibc's mallopt parameter


def _libc_function(name: str) -> Any:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None)
    return getattr(_LIBC, name, None)


def release_freed_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim(0)``; nothing
    where the C library has none). Called after a model is freed: its buffers (KV cache,
    compute buffers, hundreds of MiB) otherwise stay in glibc's arenas, and a process that
    loads and frees models grows (figures: :func:`limit_malloc_arenas`)."""
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)


def limit_malloc_arenas(n: int) -> bool:
    """Let glibc's allocator use at most ``n`` arenas (``mallopt(M_ARENA_MAX, n)``) for the
    rest of the process; call it before threads allocate. glibc's default, 8 per core, gives
    each of a server's worker threads an arena that keeps what it freed. ``gpt4all-rag
    serve`` uses 2. Measured with ``bench/soak_server.py`` (three models, two loaded at most,
    8 clients, 2 cores): the server's RSS after the run against after the first round was
    +53% after 60 s and +65% after 180 s by default, +17% after 120 s with
    :func:`release_freed_memory` after each freed model, 0% and -5% after 120 s with both;
    the requests answered in the same time did not change.

    Returns:
        False where the C library has no ``mallopt`` (nothing changed).
    """
    mallopt = _libc_function("mallopt")
    return bool(mallopt is not None and mallopt(_M_ARENA_MAX, int(n)))


def _read_string(call: Callable[[Any, int, Any], int], size: int) -> tuple[int, bytes]:
    """Run a g4r_ call that writes a NUL-terminated string into ``(buf, buf_size, &n_needed)``,
    starting with a ``size``-byte buffer and retrying once with the size it reports when it
    returns ERR_BUFFER_TOO_SMALL. Returns ``(status, the string's bytes)``; the bytes are only
    meaningful when the status is OK."""
    need = ctypes.c_size_t()
    buf = ctypes.create_string_buffer(size)
    status = call(buf, size, ctypes.byref(need))
    if status == ERR_BUFFER_TOO_SMALL:
        size = need.value + 1
        buf = ctypes.create_string_buffer(size)
        status = call(buf, size, ctypes.byref(need))
    return status, buf.raw[: need.value]


def json_schema_to_grammar(schema_json: str) -> str:
    """GBNF grammar of a JSON schema given as JSON text (``g4r_json_schema_to_grammar``).

    Raises:
        InvalidParameterError: not JSON, or a schema the converter rejects (the message says why).
    """
    L = lib()
    data = schema_json.encode("utf-8")
    status, grammar = _read_string(
        lambda buf, size, need: L.g4r_json_schema_to_grammar(data, buf, size, need), 4096)
    check(status)
    return grammar.decode("utf-8")


def _take_string(status: int, out: ctypes.c_void_p) -> str:
    """Check ``status``, then copy and free a string the library allocated."""
    try:
        check(status)
        return ctypes.string_at(out.value).decode("utf-8", "replace") if out.value else ""
    finally:
        if out.value:
            lib().g4r_string_free(ctypes.cast(out, ctypes.c_char_p))


def chat_parse(parser: dict[str, Any] | bytes, text: str, *, partial: bool) -> dict[str, Any]:
    """Split a reply into content, reasoning and tool calls with llama.cpp's parser for the
    chat format ``parser`` describes (``g4r_chat_parse``; ``parser`` holds ``format_id``,
    ``parser`` and ``generation_prompt`` from :meth:`NativeModel.chat_apply`, as a dict or
    already as JSON bytes, which a caller parsing every streamed token passes to save the
    encoding).

    Raises:
        GrammarError: a complete reply that does not follow the format.
        InvalidParameterError: a malformed parser description.
    """
    data = text.encode("utf-8")
    out = ctypes.c_void_p()
    spec = parser if isinstance(parser, bytes) else json.dumps(parser).encode()
    status = lib().g4r_chat_parse(spec, data, len(data), int(partial), ctypes.byref(out))
    return json.loads(_take_string(status, out))


def gpu_devices() -> list[dict[str, str]]:
    """The GPU devices of this build: dicts with ``name``, ``description`` and ``backend``."""
    L = lib()
    out = []
    for i in range(L.g4r_gpu_count()):
        name, desc, backend = ctypes.c_char_p(), ctypes.c_char_p(), ctypes.c_char_p()
        check(L.g4r_gpu_info(i, ctypes.byref(name), ctypes.byref(desc), ctypes.byref(backend)))
        out.append({"name": (name.value or b"").decode(), "description": (desc.value or b"").decode(),
                    "backend": (backend.value or b"").decode()})
    return out


def native_device(device: str | None) -> str | None:
    """The native library's device name of a GPT4All device string: None for the CPU
    (``None``/``"cpu"``), ``"gpu"`` for the first GPU (``"gpu"``, ``"kompute"``, ``"amd"``,
    ``"nvidia"``, ``"intel"``), the name after ``"cuda:"``/``"kompute:"``/``"vulkan:"``, else the
    string itself (a device name from ``GPT4All.list_gpus()``, ``"cuda"``, ``"metal"`` ...).

    Raises:
        InvalidParameterError: not a non-empty string or None.
    """
    if device is None or device == "cpu":
        return None
    if not isinstance(device, str) or not device:
        raise errors.InvalidParameterError(f"device must be a string, got {device!r}")
    for prefix in ("cuda:", "kompute:", "vulkan:"):
        if device.startswith(prefix):
            return device[len(prefix):]
    if device in ("kompute", "amd", "nvidia", "intel"):
        return "gpu"
    return device
