"""The C++ tests of the native library (native/tests/test_g4r.cpp), which reach what ctypes
cannot: our repetition penalty against llama.cpp's own penalty sampler on the same logits, the
one check of ``g4r_sampler_params``, the scheduler's policy driven without a model, and every
kernel set of the BERT encoder (the plain C++ one too, which only CPUs without AVX2 choose)
against double-precision references; and those kernel tests again over an emulated build
(``bin/test_g4r_emulated``: SIMDe's forms of the intrinsics), where every set runs, AVX-512's
included, whatever this CPU has.

The development build (``bash scripts/setup.sh``: CMake option ``G4R_BUILD_TESTS=ON``) builds
the binary into ``build/<wheel tag>/bin/``; a development build without it fails here.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from gpt4all_rag.engine import native as _native
from gpt4all_rag.engine.sampling import SamplingParams

ROOT = Path(__file__).resolve().parents[2]


def _build_dir() -> Path:
    """``build/<wheel tag>``: pyproject's scikit-build ``build-dir`` for the tag of the
    installed (editable) development build."""
    dist = importlib.metadata.distribution("gpt4all-rag")
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]
    editable = json.loads(dist.read_text("direct_url.json") or "{}").get("dir_info", {}).get("editable")
    if not tags or not editable:
        pytest.fail("gpt4all-rag is not installed as the development build: run bash scripts/setup.sh")
    template = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["scikit-build"]["build-dir"]
    return ROOT / template.format(wheel_tag=tags[0])


@pytest.fixture(scope="module")
def test_binary() -> Path:
    path = _build_dir() / "bin" / "test_g4r"
    if not path.is_file():
        pytest.fail(f"{path} is missing: the development build needs the CMake option "
                    "G4R_BUILD_TESTS=ON (bash scripts/setup.sh sets it)")
    return path


def test_cpp_tests_pass(test_binary: Path) -> None:
    proc = subprocess.run([str(test_binary)], capture_output=True, text=True, timeout=600)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert " 0 failures" in proc.stdout and "FAIL" not in report, report


def test_kernel_tests_pass_over_every_kernel_set_emulated(test_binary: Path) -> None:
    # bin/test_g4r_emulated: the encoder's kernels built over SIMDe (G4R_EMULATE_AVX512), every
    # set listed, so the AVX-512 kernels are tested on this CPU whatever it has
    emulated = test_binary.with_name("test_g4r_emulated")
    if not emulated.is_file():
        pytest.fail(f"{emulated} is missing: the development build makes it with G4R_BUILD_TESTS=ON "
                    "(bash scripts/setup.sh, which installs simde-py for it)")
    proc = subprocess.run([str(emulated)], capture_output=True, text=True, timeout=600)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert " 0 failures" in proc.stdout and "FAIL" not in report, report
    assert "ok   encoder_kernel_sets_follow_the_cpus_flags" in proc.stdout, report  # avx512 listed
    assert "ok   encoder_products_match_a_double_reference" in proc.stdout, report


def test_ctypes_struct_has_the_c_layout(test_binary: Path) -> None:
    # g4r_sampler_params crosses the ABI by pointer: the ctypes Structure must match the C
    # compiler's offsets and size field by field.
    proc = subprocess.run([str(test_binary), "--layout"], capture_output=True, text=True,
                          timeout=60, check=True)
    layout = json.loads(proc.stdout)
    ours = {name: getattr(_native.SamplerParams, name).offset
            for name, _ in _native.SamplerParams._fields_}
    assert ours == layout["fields"]
    assert ctypes.sizeof(_native.SamplerParams) == layout["size"]


def test_native_defaults_are_the_sdks() -> None:
    params = _native.SamplerParams()
    _native.lib().g4r_sampler_default_params(ctypes.byref(params))
    sdk = SamplingParams()
    f32 = lambda x: ctypes.c_float(x).value  # noqa: E731 - the C fields are float32
    assert (params.temp, params.top_k, params.top_p, params.min_p) == (
        f32(sdk.temp), sdk.top_k, f32(sdk.top_p), f32(sdk.min_p))
    assert (params.repeat_penalty, params.repeat_last_n) == (f32(sdk.repeat_penalty), sdk.repeat_last_n)
    assert params.seed == 0xFFFFFFFF  # G4R_DEFAULT_SEED: a fresh seed, as the SDK's None
    assert not params.grammar and params.n_trigger_patterns == 0 and params.n_trigger_tokens == 0
    assert (params.n_predict, params.n_logprobs) == (-1, -1)
