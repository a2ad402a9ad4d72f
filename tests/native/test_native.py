"""The built native library without model weights: ABI, declarations, bad model files."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import gguf
import numpy as np
import pytest

from gpt4all_rag import GPT4All, errors
from gpt4all_rag.engine import native as _native
from gpt4all_rag.engine.native_model import NativeModel

HEADER = Path(__file__).resolve().parents[2] / "native" / "include" / "g4r.h"

_C_TYPES = {
    "int32_t": ctypes.c_int32, "uint32_t": ctypes.c_uint32, "int64_t": ctypes.c_int64,
    "size_t": ctypes.c_size_t, "float": ctypes.c_float, "g4r_status": ctypes.c_int,
    "const char *": ctypes.c_char_p, "char *": ctypes.c_char_p, "void *": ctypes.c_void_p,
    "g4r_model *": ctypes.c_void_p, "const char **": ctypes.POINTER(ctypes.c_char_p),
    "int32_t *": ctypes.POINTER(ctypes.c_int32), "const int32_t *": ctypes.POINTER(ctypes.c_int32),
    "int64_t *": ctypes.POINTER(ctypes.c_int64), "size_t *": ctypes.POINTER(ctypes.c_size_t),
    "float *": ctypes.POINTER(ctypes.c_float), "g4r_log_callback": _native.LOG_CALLBACK,
    "char **": ctypes.POINTER(ctypes.c_void_p), "const char *const *": ctypes.POINTER(ctypes.c_char_p),
    "g4r_sampler_params *": ctypes.POINTER(_native.SamplerParams),
    "const g4r_sampler_params *": ctypes.POINTER(_native.SamplerParams),
    "void": None,
}


def _header_prototypes() -> dict[str, tuple[str, list[str]]]:
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    protos = {}
    for m in re.finditer(r"G4R_API\s+([^;]*?)\b(g4r_\w+)\s*\(([^)]*)\)\s*;", text, flags=re.S):
        ret, name, args = m.group(1).strip(), m.group(2), m.group(3).strip()
        arg_types = []
        if args and args != "void":
            for a in args.split(","):
                a = " ".join(a.split())
                t = re.sub(r"\s*\b\w+$", "", a)  # drop the parameter name
                arg_types.append(t.replace(" *", " *").strip())
        protos[name] = (" ".join(ret.split()), arg_types)
    return protos


def _norm(t: str) -> str:
    return re.sub(r"\s*\*", " *", t).replace("* *", "**").replace(" **", " **").strip()


def test_declarations_match_header() -> None:
    protos = _header_prototypes()
    assert set(protos) == set(_native.DECLARATIONS), "header and DECLARATIONS list different functions"
    for name, (ret, args) in protos.items():
        restype, argtypes = _native.DECLARATIONS[name]
        assert len(args) == len(argtypes), name
        expected_ret = _C_TYPES[_norm(ret)]
        assert restype == expected_ret, f"{name}: return {ret}"
        for c_type, py_type in zip(args, argtypes):
            assert _C_TYPES[_norm(c_type)] == py_type, f"{name}: argument {c_type}"


def test_library_loads_with_matching_abi() -> None:
    lib = _native.lib()
    assert lib.g4r_abi_version() == _native.ABI_VERSION
    assert "CPU" in _native.system_info() or "AVX" in _native.system_info()
    assert "AMX_INT8 = 1" not in _native.system_info()  # AMX faults on these machines
    assert isinstance(GPT4All.list_gpus(), list)


def test_library_exports_only_its_own_symbols() -> None:
    import subprocess

    lib_path = next(Path(p) / "libgpt4all_rag.so" for p in __import__("gpt4all_rag").__path__
                    if (Path(p) / "libgpt4all_rag.so").exists())
    out = subprocess.run(["nm", "-D", "--defined-only", str(lib_path)], capture_output=True,
                         text=True, check=True).stdout
    names = [line.split()[-1] for line in out.splitlines() if line.strip()]
    assert names and all(n.startswith("g4r_") for n in names), [n for n in names if not n.startswith("g4r_")][:5]


def test_ggml_lies_beside_the_library_under_names_of_its_own() -> None:
    # ggml is shared (its backends are modules that link against it) but renamed, so that a
    # process that also loads another package's libggml*.so never binds one to the other; the
    # CPU kernels are modules beside the library, and the AMX variant (SIGILL here) is absent.
    import subprocess

    lib_path = Path(_native.lib()._name).resolve()
    here = lib_path.parent
    assert (here / "libg4r-ggml.so").is_file() and (here / "libg4r-ggml-base.so").is_file()
    cpu = sorted(p.name for p in here.glob("libggml-cpu*.so"))
    assert cpu and not any("sapphirerapids" in name for name in cpu), cpu
    assert not list(here.glob("libggml.so*")) and not list(here.glob("libggml-base.so*"))
    out = subprocess.run(["readelf", "-d", str(lib_path)], capture_output=True, text=True,
                         check=True).stdout
    needed = [line.split("[")[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]
    assert "libg4r-ggml.so" in needed and "libg4r-ggml-base.so" in needed, needed
    assert not any(n.startswith("libggml") or n.startswith("libllama") for n in needed), needed


def test_blas_module_is_loaded_exactly_when_built() -> None:
    # G4R_BLAS=mkl adds ggml's BLAS backend as one more module, Intel MKL linked in statically
    # (no libmkl*/libiomp5 at run time) and none of MKL's symbols exported; the library loads
    # it beside the CPU kernels and names it in system_info. A build without it names none.
    import subprocess

    here = Path(_native.lib()._name).resolve().parent
    blas = here / "libggml-blas.so"
    info = _native.system_info()
    if not blas.is_file():
        assert "ACCEL: BLAS" not in info, info
        return
    assert "ACCEL: BLAS (MKL)" in info, info
    out = subprocess.run(["nm", "-D", "--defined-only", str(blas)], capture_output=True,
                         text=True, check=True).stdout
    names = [line.split()[-1] for line in out.splitlines() if line.strip()]
    assert names and all(n.startswith("ggml_backend_") for n in names), names
    out = subprocess.run(["readelf", "-d", str(blas)], capture_output=True, text=True,
                         check=True).stdout
    needed = [line.split("[")[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]
    assert "libg4r-ggml-base.so" in needed, needed
    assert not any("mkl" in n or "iomp" in n for n in needed), needed


def test_library_without_cpu_kernels_beside_it_is_a_clear_error(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    here = Path(_native.lib()._name).resolve().parent
    for name in ("libgpt4all_rag.so", "libg4r-ggml.so", "libg4r-ggml-base.so"):
        shutil.copy(here / name, tmp_path / name)
    code = ("from gpt4all_rag import errors\nfrom gpt4all_rag.engine import native as _native\n"
            "try:\n    _native.lib()\nexcept errors.NativeLibraryError as e:\n    print('refused:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**__import__("os").environ, _native.LIB_ENV: str(tmp_path / "libgpt4all_rag.so")})
    assert out.returncode == 0, out.stderr
    assert "refused: no CPU kernels beside" in out.stdout, out.stdout


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(errors.ModelNotFoundError):
        NativeModel(tmp_path / "nope.gguf")
    with pytest.raises(FileNotFoundError):
        GPT4All("nope.gguf", model_path=tmp_path, allow_download=False)


@pytest.mark.parametrize("content", [b"", b"GGU", b"not a gguf file at all" * 10,
                                     b"GGUF" + b"\xff" * 64])
def test_not_gguf(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "bad.gguf"
    p.write_bytes(content)
    with pytest.raises(errors.ModelLoadError) as ei:
        GPT4All("bad.gguf", model_path=tmp_path, allow_download=False)
    assert isinstance(ei.value, ValueError)
    assert "bad.gguf" in str(ei.value)


def _write_gguf(path: Path, arch: str) -> None:
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny-test")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_unsupported_architecture(tmp_path: Path) -> None:
    _write_gguf(tmp_path / "alien.gguf", "alien-arch-9000")
    with pytest.raises(errors.ModelLoadError, match="alien-arch-9000|architecture"):
        GPT4All("alien.gguf", model_path=tmp_path, allow_download=False)


def test_truncated_gguf(tmp_path: Path) -> None:
    full = tmp_path / "full.gguf"
    _write_gguf(full, "llama")
    data = full.read_bytes()
    for cut in (len(data) // 3, len(data) - 100):
        p = tmp_path / f"cut{cut}.gguf"
        p.write_bytes(data[:cut])
        with pytest.raises(errors.ModelLoadError):
            GPT4All(p.name, model_path=tmp_path, allow_download=False)


def test_bad_constructor_parameters(tmp_path: Path) -> None:
    for kwargs in ({"n_ctx": 0}, {"n_ctx": -5}, {"n_threads": 0}, {"n_ctx": "big"},
                   {"flash_attention": "yes"}, {"flash_attention": 1}, {"n_parallel": 0},
                   {"n_parallel": 65}, {"n_parallel": 2.5}, {"max_waiting": -1},
                   {"wait_timeout": -1}):
        with pytest.raises(errors.InvalidParameterError):
            GPT4All("x.gguf", model_path=tmp_path, allow_download=False, **kwargs)


def test_contradictory_or_unknown_load_flags(tmp_path: Path) -> None:
    _write_gguf(tmp_path / "m.gguf", "llama")
    L = _native.lib()
    for flags in (_native.LOAD_FLASH_ATTN_ON | _native.LOAD_FLASH_ATTN_OFF, 1 << 20):
        assert not L.g4r_model_load(str(tmp_path / "m.gguf").encode(), 0, 0, None, 1, flags, 1)
        assert L.g4r_last_status() == _native.ERR_INVALID_ARGUMENT
        assert b"invalid load flags" in L.g4r_last_error()


def test_sequence_count_out_of_range(tmp_path: Path) -> None:
    _write_gguf(tmp_path / "m.gguf", "llama")
    L = _native.lib()
    for n_seq in (0, -1, 65):
        assert not L.g4r_model_load(str(tmp_path / "m.gguf").encode(), 0, 0, None, 1, 0, n_seq)
        assert L.g4r_last_status() == _native.ERR_INVALID_ARGUMENT
        assert b"n_seq must be in [1, 64]" in L.g4r_last_error()


def test_unknown_gpu_device(tmp_path: Path) -> None:
    _write_gguf(tmp_path / "m.gguf", "llama")
    with pytest.raises(errors.InvalidParameterError, match="no GPU device"):
        NativeModel(tmp_path / "m.gguf", device="Imaginary GPU 9000")
