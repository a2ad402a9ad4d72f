"""The installed wheel's run-time choice of CPU kernels, proven below the build machine's level.

The wheel carries every variant of ggml's CPU kernels and ggml loads the one the running CPU
scores highest. On the build machine that choice is its own level only; here the wheel's Python
runs under QEMU's user-mode emulator (Debian's ``qemu-user``) as lower CPUs: the variant chosen
must be the expected one for that CPU, and generation and embeddings must work there and agree
with the host's within rounding (other kernels, same model).

Run by ``scripts/wheel_smoke.sh`` with the Python of the wheel's fresh virtual environment
(``python -I -m pytest -c tests/wheel/pytest.ini tests/wheel``), so that everything imported
comes from the wheel; the main suite does not collect this folder.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import gpt4all_rag
from gpt4all_rag import cpu_isa

#: QEMU CPU models and the ggml features of the variant expected to run there (the flags
#: QEMU 7.2's TCG emulates for them). Nothing below x86-64-v2: numpy needs SSE4.2 and POPCNT.
CPUS = {
    "Nehalem": {"SSE42"},
    "Haswell": {"SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2"},
}
#: AVX-512 levels: run where the emulator can, else skipped saying why.
AVX512_CPUS = ("Skylake-Server", "Cooperlake")

#: What the child computes, under emulation and natively: the kernels' facts, a
#: log-likelihood, a short greedy generation and an embedding.
CHILD = textwrap.dedent("""
    import json, sys
    from gpt4all_rag import Embed4All, GPT4All, system
    from gpt4all_rag.models import pypi as pypi_models
    models = pypi_models.model_folder()
    facts = system.cpu_report()
    with GPT4All("SmolLM2-135M-Instruct.Q4_1.gguf", model_path=models, n_threads=2) as model:
        ll = model.loglikelihood("The capital of France is", " Paris")
        text = model.generate("The capital of France is", max_tokens=4, temp=0)
        generated = model.stats.completion_tokens
    with Embed4All(model_path=models, n_threads=2) as embedder:
        vector = embedder.embed("A sentence to embed.")
        encoder = embedder.engine.model.encoder
    json.dump({"facts": facts, "logprob": ll.logprob, "text": text, "generated": generated,
               "vector": vector, "encoder": encoder}, sys.stdout)
""")


def _qemu() -> str:
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        pytest.fail("qemu-x86_64 is missing: install Debian's qemu-user (scripts/test.sh does)")
    return qemu


def _run(prefix: list[str]) -> dict[str, Any]:
    run = subprocess.run(prefix + [sys.executable, "-I", "-c", CHILD], capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


@pytest.fixture(scope="module")
def native() -> dict[str, Any]:
    return _run([])


@pytest.fixture(scope="module", params=sorted(CPUS))
def emulated(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, _run([_qemu(), "-cpu", request.param])


def test_everything_comes_from_the_wheel() -> None:
    assert "site-packages" in str(Path(gpt4all_rag.__file__).resolve())


def test_the_expected_variant_is_chosen(emulated: tuple[str, dict[str, Any]]) -> None:
    cpu, result = emulated
    facts = result["facts"]
    flags = [flag for flag, on in facts["flags"].items() if on]
    modules = {m["file"]: m for m in facts["modules"]}
    assert len(modules) > 10 and all(m["features"] is not None for m in modules.values())
    chosen = modules[facts["in_use"]]
    assert set(chosen["features"]) == CPUS[cpu]
    assert chosen["score"] == max(m["score"] for m in modules.values())
    for module in modules.values():  # ggml's scores and the flags' verdicts agree
        assert (module["score"] > 0) == (cpu_isa.missing_flags(module["features"], flags) == [])


def test_generation_and_embeddings_work_and_agree_with_the_host(
        emulated: tuple[str, dict[str, Any]], native: dict[str, Any]) -> None:
    cpu, result = emulated
    assert result["generated"] > 0 and result["text"]
    # The same model through other kernels: rounding-level differences only (seen: 0.000 nats
    # on Haswell, 0.033 on Nehalem against an AVX-512 host; cosine 0.9999999 both).
    assert abs(result["logprob"] - native["logprob"]) < 0.1, (cpu, result["logprob"], native["logprob"])
    # The embedding goes through g4r's own encoder, whose attention and GELU kernels are
    # chosen from the same flags: AVX2 with FMA and F16C where the CPU has all three, else
    # plain C++.
    assert result["encoder"] == native["encoder"] == "g4r"
    expected = "avx2" if {"AVX2", "FMA", "F16C"} <= CPUS[cpu] else "baseline"
    assert result["facts"]["encoder_kernels"] == expected, (cpu, result["facts"]["encoder_kernels"])
    # ... and so are its products: g4r's own with the AVX2 set (neither emulated CPU has AVX-512)
    products = "g4r" if expected == "avx2" else "ggml"
    assert result["facts"]["encoder_products"] == products, (cpu, result["facts"]["encoder_products"])
    a, b = result["vector"], native["vector"]
    cosine = sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    assert len(a) == 384 and cosine > 0.9999, (cpu, cosine)


@pytest.mark.parametrize("cpu", AVX512_CPUS)
def test_avx512_levels_where_the_emulator_has_them(cpu: str) -> None:
    probe = subprocess.run([_qemu(), "-cpu", cpu, sys.executable, "-I", "-c",
                            "from gpt4all_rag.engine import native as _native; print(' '.join(_native.cpu_flags()))"],
                           capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-2000:]
    if "avx512f" not in probe.stdout.split():
        pytest.skip(f"QEMU's TCG emulates no AVX-512: -cpu {cpu} reports only {probe.stdout.strip()}; "
                    "the AVX-512 variants are proven on the machines that have them")
    run = subprocess.run([_qemu(), "-cpu", cpu, sys.executable, "-I", "-m", "gpt4all_rag.system",
                          "--json", "--check"], capture_output=True, text=True, timeout=300)
    facts = json.loads(run.stdout)
    chosen = next(m for m in facts["modules"] if m["in_use"])
    assert "AVX512" in chosen["features"]
