"""What this machine's CPU offers and which CPU kernels the native library runs on it.

``python -m gpt4all_rag.system`` prints both (CI prints it before the tests, so a red run tells
which kind of machine it ran on). On the CPUs these builds meet, one kind has AVX2 only and
another AVX-512 with VNNI/BF16: kernels differ between them, and so does rounding.
"""

from __future__ import annotations

import platform
from pathlib import Path

from . import _native

__all__ = ["cpu_features", "report"]

#: The instruction-set flags of /proc/cpuinfo that decide which ggml kernels run.
_RELEVANT = ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx_vnni", "avx512f", "avx512bw",
             "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx512vbmi", "amx_tile",
             "amx_int8", "amx_bf16")


def cpu_features(cpuinfo: str | None = None) -> dict[str, str | list[str]]:
    """The CPU model name and which of the kernel-relevant flags it has.

    Args:
        cpuinfo: the text of ``/proc/cpuinfo``; None reads it (on other systems the result
            has only ``model`` from :func:`platform.processor`).

    Returns:
        ``{"model": str, "flags": [flag, ...]}``, flags in the order of ``_RELEVANT``.
    """
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text(errors="replace") if path.exists() else ""
    model, flags = platform.processor() or platform.machine(), set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    return {"model": model, "flags": [f for f in _RELEVANT if f in flags]}


def report() -> str:
    """Two lines: the machine's CPU and flags, and the features of the CPU kernels in use (the
    variant of ggml's CPU backend that the native library loaded for this CPU).

    Raises:
        NativeLibraryError: the native library cannot be loaded.
    """
    cpu = cpu_features()
    return (f"CPU: {cpu['model']}; flags: {' '.join(cpu['flags']) or '(none of the relevant)'}\n"
            f"CPU kernels in use: {_native.system_info().strip()}")


if __name__ == "__main__":  # pragma: no cover
    print(report())
