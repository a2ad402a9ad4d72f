"""The development build's kernel decision (gpt4all_rag/cpu_isa.py), fed the cpuid flags of the
machine kinds this project has run on (facts, kept as test data) and of kinds it has not met."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gpt4all_rag import cpu_isa

AVX2_BASE = ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2")
AVX512_BASE = ("avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl")

#: cpuid-derived flags (Linux names) of the three x86-64 kinds seen on these machines.
MACHINES = {
    # AMD EPYC Zen 3: AVX2 only.
    "zen3": AVX2_BASE,
    # Intel Xeon Sapphire Rapids: AVX-512 with AVX-VNNI, and AMX flags (whose kernels fault).
    "sapphire_rapids": AVX2_BASE + ("avx_vnni",) + AVX512_BASE + (
        "avx512ifma", "avx512vbmi", "avx512_vbmi2", "avx512_vnni", "avx512_bitalg",
        "avx512_vpopcntdq", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile", "amx_int8"),
    # AMD EPYC Zen 4: AVX-512 with VNNI/BF16/VBMI, no AVX-VNNI (the VEX encoding), no AMX.
    "zen4": AVX2_BASE + AVX512_BASE + (
        "avx512ifma", "avx512vbmi", "avx512_vbmi2", "avx512_vnni", "avx512_bitalg",
        "avx512_vpopcntdq", "avx512_bf16"),
}

EXPECTED = {
    "zen3": {"SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2"},
    "sapphire_rapids": {"SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX_VNNI", "AVX512",
                        "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16"},
    "zen4": {"SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2", "AVX512", "AVX512_VBMI",
             "AVX512_VNNI", "AVX512_BF16"},
}


def _on(flags) -> set[str]:
    return {feature for feature, on in cpu_isa.build_features(flags).items() if on}


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_each_machine_kind_gets_exactly_its_features(machine: str) -> None:
    assert _on(MACHINES[machine]) == EXPECTED[machine]


@pytest.mark.parametrize("machine", sorted(MACHINES))
def test_the_module_built_for_a_machine_loads_there(machine: str) -> None:
    """ggml's score is 0 when a module needs a flag the CPU lacks: the decision never asks."""
    assert cpu_isa.missing_flags(_on(MACHINES[machine]), MACHINES[machine]) == []


def test_zen4_without_avx_vnni_gets_no_avx_vnni_kernels() -> None:
    """The regression: the old rule called Zen 4 "avx512" and built AVX-VNNI into it."""
    decided = cpu_isa.build_features(MACHINES["zen4"])
    assert decided["AVX_VNNI"] is False and decided["AVX512_VNNI"] is True
    sapphire_module = _on(MACHINES["sapphire_rapids"])
    assert cpu_isa.missing_flags(sapphire_module, MACHINES["zen4"]) == ["avx_vnni"]


@pytest.mark.parametrize(("flags", "expected"), [
    ((), set()),                                                       # x86-64 baseline
    (("sse4_2",), {"SSE42"}),                                          # Nehalem
    (("sse4_2", "avx"), {"SSE42", "AVX"}),                             # Sandy Bridge
    (AVX2_BASE + ("avx_vnni",), EXPECTED["zen3"] | {"AVX_VNNI"}),      # Alder Lake: VNNI, no AVX-512
    (AVX2_BASE + AVX512_BASE, EXPECTED["zen3"] | {"AVX512"}),          # Skylake-X
    (AVX2_BASE + AVX512_BASE + ("avx512_vnni",),                       # Cascade Lake
     EXPECTED["zen3"] | {"AVX512", "AVX512_VNNI"}),
    # AVX-512 flags without the OS saving ZMM state: the reader drops them, and an extension
    # without its base is not built either.
    (AVX2_BASE + ("avx512_vnni", "avx512_bf16"), EXPECTED["zen3"]),
    # AVX2 without AVX (the OS does not save YMM state): no VEX kernels at all.
    (("sse4_2", "avx2", "bmi2"), {"SSE42", "BMI2"}),
])
def test_kinds_not_yet_met(flags, expected) -> None:
    assert _on(flags) == expected
    assert cpu_isa.missing_flags(expected, flags) == []


def test_amx_is_never_built() -> None:
    assert not any(cpu_isa.build_features(MACHINES["sapphire_rapids"])[f]
                   for f in ("AMX_TILE", "AMX_INT8", "AMX_BF16"))
    assert set(cpu_isa.NOT_BUILT) == {"AMX_TILE", "AMX_INT8", "AMX_BF16"}


def test_missing_flags_names_what_a_module_lacks() -> None:
    assert cpu_isa.missing_flags(["SSE42", "AVX", "AVX2", "AVX512"], ("sse4_2", "avx")) == [
        "avx2", "avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"]
    assert cpu_isa.missing_flags(["USE_DOTPROD"], ()) == []  # not an x86 feature: ignored


def test_the_build_runs_the_file_as_a_script_without_the_package() -> None:
    """CMake runs cpu_isa.py by path, isolated, before the package exists; one line a feature."""
    script = Path(cpu_isa.__file__)
    out = subprocess.run([sys.executable, "-I", str(script), *MACHINES["zen4"]], check=True,
                         capture_output=True, text=True, cwd=script.parent.parent.parent).stdout
    lines = dict(line.split("=") for line in out.split())
    assert list(lines) == list(cpu_isa.GGML_FEATURES)
    assert {f for f, v in lines.items() if v == "ON"} == EXPECTED["zen4"]
