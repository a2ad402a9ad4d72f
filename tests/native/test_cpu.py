"""The CPU kernels of the built library: its flags come from cpuid, the module it carries loads on
this machine, the decision table is ggml's own score, and the report explains a refusal (also
under CPU emulation, where /proc/cpuinfo shows the host's flags and cpuid the emulated CPU's)."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpt4all_rag import cpu_isa, errors, system
from gpt4all_rag.engine import native as _native

ROOT = Path(__file__).resolve().parents[2]

#: QEMU CPU models below every machine these tests run on, and the flags cpuid then reports
#: (QEMU 7.2's TCG; it emulates no AVX-512, so no emulated level above Haswell is possible).
#: Nothing below x86-64-v2 (Nehalem): numpy, which the package imports, needs SSE4.2 and
#: POPCNT and dies with SIGILL on QEMU's plain "qemu64".
EMULATED = {
    "Nehalem": {"sse4_2"},
    "Haswell": {"sse4_2", "avx", "f16c", "fma", "avx2", "bmi2"},
}


def _proc_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def test_cpu_flags_are_cpuids_and_agree_with_the_kernel() -> None:
    flags = _native.cpu_flags()
    known = {flag for needed in cpu_isa.GGML_FEATURES.values() for flag in needed} | {"avx512_fp16"}
    assert flags and set(flags) <= known
    assert set(flags) <= _proc_flags()  # natively, cpuid and Linux agree
    assert "sse4_2" in flags  # every x86-64 machine this project has met
    assert _native.cpu_brand()


def test_the_module_beside_the_library_loads_on_this_cpu() -> None:
    """The regression of the Zen 4 failure: a development build never carries kernels that
    its own machine refuses; a wheel loads its best variant."""
    facts = system.cpu_report()
    system.check(facts)
    flags = _native.cpu_flags()
    in_use = next(m for m in facts["modules"] if m["in_use"])
    assert in_use["missing"] == [] and in_use["score"] == max(m["score"] for m in facts["modules"])
    if [m["file"] for m in facts["modules"]] == ["libggml-cpu.so"]:  # G4R_CPU_ISA=auto
        wanted = {f for f, on in cpu_isa.build_features(flags).items() if on}
        assert set(in_use["features"]) == wanted
    for module in facts["modules"]:  # ggml's score and our reading of the flags agree
        assert (module["score"] > 0) == (module["missing"] == [])


def _ggml_tree() -> Path:
    for cache in sorted(ROOT.glob("build/*/CMakeCache.txt")):
        m = re.search(r"^G4R_LLAMA_CPP_DIR:\w+=(.+)$", cache.read_text(), flags=re.M)  # a tree of one's own
        if m:
            return Path(m.group(1))
    for tree in sorted(ROOT.glob("build/*/_deps/llama-sdist/*/vendor/llama.cpp")):
        return tree
    pytest.fail("no llama.cpp tree under build/: run bash scripts/setup.sh first")


def test_the_decision_table_is_ggmls_own_score() -> None:
    """cpu_isa.GGML_FEATURES holds the flags ggml_backend_cpu_x86_score checks per feature,
    read here from the pinned llama.cpp's cpu-feats.cpp."""
    source = (_ggml_tree() / "ggml/src/ggml-cpu/arch/x86/cpu-feats.cpp").read_text()
    body = source[source.index("ggml_backend_cpu_x86_score()"):]
    body = body[:body.index("return score;")]
    upstream = {}
    for feature, block in re.findall(r"#ifdef GGML_(\w+)(.*?)#endif", body, flags=re.S):
        names = re.findall(r"is\.(\w+)\(\)", block)
        upstream[feature] = tuple({"SSE42": "sse4_2", "AVX512_VBMI": "avx512vbmi"}.get(n, n.lower())
                                  for n in names)
    ours = {f: flags for f, flags in cpu_isa.GGML_FEATURES.items() if f in upstream}
    assert ours == upstream
    assert set(cpu_isa.GGML_FEATURES) - set(upstream) <= {"AMX_TILE", "AMX_BF16"}  # unscored


def test_report_lists_each_flag_and_module() -> None:
    text = system.report()
    for flag in ("sse4_2", "avx2", "avx_vnni", "avx512f"):
        assert re.search(rf"\b{flag}: (yes|no)\b", text)
    assert "score" in text and ", in use [" in text
    assert "CPU kernels in use: CPU :" in text
    facts = system.cpu_report()
    assert f"Embedding encoder kernels (attention, GELU): {facts['encoder_kernels']}" in text
    assert f"Embedding encoder products (F16, F32, Q8_0 weights): {facts['encoder_products']}" in text


def test_encoder_products_are_g4rs_where_its_kernel_set_has_them_and_the_cpu_has_no_avx512() -> None:
    flags = set(_native.cpu_flags())
    has_avx2_set = {"avx2", "fma", "f16c"} <= flags
    expected = (["avx512"] if has_avx2_set and "avx512f" in flags else []) \
        + (["avx2"] if has_avx2_set else []) + ["baseline"]
    assert _native.encoder_kernel_sets() == expected
    assert _native.encoder_kernels() == expected[0]
    assert _native.encoder_products() == ("g4r" if has_avx2_set and "avx512f" not in flags else "ggml")


def _encoder_choice(**env: str) -> subprocess.CompletedProcess:
    """``(kernels, products)`` of a fresh process with ``env`` added (the library reads the
    overrides once), as JSON on stdout."""
    code = ("import json; from gpt4all_rag.engine import native as n; "
            "print(json.dumps([n.encoder_kernels(), n.encoder_products()]))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_encoder_overrides_pick_any_set_this_cpu_runs_and_either_products() -> None:
    for kernels in _native.encoder_kernel_sets():
        for products in ("g4r", "ggml"):
            proc = _encoder_choice(GPT4ALL_RAG_ENCODER_KERNELS=kernels, GPT4ALL_RAG_ENCODER_PRODUCTS=products)
            if kernels == "baseline" and products == "g4r":  # the plain set has no product kernel
                assert proc.returncode != 0
                assert "GPT4ALL_RAG_ENCODER_PRODUCTS='g4r': the encoder's kernel set has no product kernel" \
                    in proc.stderr, proc.stderr
                continue
            assert proc.returncode == 0, proc.stderr
            assert json.loads(proc.stdout) == [kernels, products]


@pytest.mark.parametrize("env,message", [
    ({"GPT4ALL_RAG_ENCODER_KERNELS": "sse9"}, "GPT4ALL_RAG_ENCODER_KERNELS='sse9' is not a kernel set this CPU runs"),
    ({"GPT4ALL_RAG_ENCODER_PRODUCTS": "blas"}, "GPT4ALL_RAG_ENCODER_PRODUCTS='blas': it must be 'g4r' or 'ggml'"),
])
def test_an_encoder_override_the_library_cannot_follow_is_an_error(env: dict, message: str) -> None:
    proc = _encoder_choice(**env)
    assert proc.returncode != 0 and "NativeLibraryError" in proc.stderr and message in proc.stderr, proc.stderr


def _qemu() -> str:
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        pytest.fail("qemu-x86_64 is missing: scripts/test.sh installs Debian's qemu-user")
    return qemu


@pytest.mark.skipif(sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"),
                    reason="QEMU user-mode emulation of x86-64 CPUs is tested on x86-64 Linux")
@pytest.mark.parametrize("cpu", sorted(EMULATED))
def test_under_an_emulated_lower_cpu(cpu: str) -> None:
    """Under ``qemu-x86_64 -cpu MODEL`` the flags are the emulated CPU's, and the module is
    loaded exactly when it needs none the CPU lacks; else --check fails naming them."""
    run = subprocess.run([_qemu(), "-cpu", cpu, sys.executable, "-m", "gpt4all_rag.system",
                          "--json", "--check"], capture_output=True, text=True, timeout=300)
    facts = json.loads(run.stdout)
    assert {flag for flag, on in facts["flags"].items() if on} == EMULATED[cpu]
    loadable = [m for m in facts["modules"] if m["missing"] == []]
    for module in facts["modules"]:
        assert (module["score"] > 0) == (module in loadable)
        if module["missing"]:
            assert set(module["missing"]) == set(cpu_isa.missing_flags(module["features"],
                                                                       EMULATED[cpu]))
    if loadable:
        assert run.returncode == 0 and facts["in_use"] in {m["file"] for m in loadable}
    else:
        assert run.returncode == 1 and facts["in_use"] is None
        refused = facts["modules"][0]
        assert f"{refused['file']} needs {' '.join(refused['missing'])}" in run.stderr


def test_check_raises_naming_the_missing_flags() -> None:
    facts = {"brand": "Some CPU", "in_use": None, "modules": [
        {"file": "libggml-cpu.so", "score": 0, "features": ["AVX2", "AVX_VNNI"],
         "missing": ["avx_vnni"], "in_use": False}]}
    with pytest.raises(errors.NativeLibraryError, match="libggml-cpu.so needs avx_vnni"):
        system.check(facts)
