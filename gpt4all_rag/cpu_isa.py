"""Which of ggml's x86 CPU-kernel features a CPU's own instruction-set flags allow.

One rule serves three places: the development build (``G4R_CPU_ISA=auto``: CMake runs this file
as a script with the flags its probe read from cpuid, and turns on exactly the ``GGML_<FEATURE>``
options printed ``ON``), the run-time report (:mod:`gpt4all_rag.system` names the flags a
refused kernel module lacks) and the tests, which feed it the flag sets of the machine kinds
seen so far.

There is no map from CPU names or generations to options: each feature is on exactly when the
CPU has every flag that ggml's own variant score checks for it (``ggml_backend_cpu_x86_score``
in ``ggml/src/ggml-cpu/arch/x86/cpu-feats.cpp`` of the pinned llama.cpp) and the features its
kernels are written on top of are on too. Flags are Linux's ``/proc/cpuinfo`` names, as the
native library's ``g4r_cpu_info`` reports them from cpuid and xgetbv (a feature whose register
state the OS does not save counts as absent).

This file imports nothing from the package: the build runs it before the package exists::

    python gpt4all_rag/cpu_isa.py sse4_2 avx f16c fma avx2 bmi2   # prints SSE42=ON ... AVX512=OFF
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping

__all__ = ["GGML_FEATURES", "NOT_BUILT", "REQUIRES", "build_features", "missing_flags"]

#: ggml's x86 feature options (``GGML_<FEATURE>``) and the cpuid flags its variant score
#: requires for each, as ``ggml_backend_cpu_x86_score`` checks them.
GGML_FEATURES: Mapping[str, tuple[str, ...]] = {
    "SSE42": ("sse4_2",),
    "AVX": ("avx",),
    "F16C": ("f16c",),
    "FMA": ("fma",),
    "AVX2": ("avx2",),
    "BMI2": ("bmi2",),
    "AVX_VNNI": ("avx_vnni",),
    "AVX512": ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"),
    "AVX512_VBMI": ("avx512vbmi",),
    "AVX512_VNNI": ("avx512_vnni",),
    "AVX512_BF16": ("avx512_bf16",),
    "AMX_TILE": ("amx_tile",),
    "AMX_INT8": ("amx_int8",),
    "AMX_BF16": ("amx_bf16",),
}

#: Features whose kernels ggml writes inside another's code paths (the VEX extensions inside
#: AVX's, AVX-VNNI inside AVX2's, the AVX-512 extensions inside AVX512F's): on only with them.
REQUIRES: Mapping[str, tuple[str, ...]] = {
    "F16C": ("AVX",),
    "FMA": ("AVX",),
    "AVX2": ("AVX",),
    "AVX_VNNI": ("AVX2",),
    "AVX512": ("AVX2", "FMA", "F16C"),
    "AVX512_VBMI": ("AVX512",),
    "AVX512_VNNI": ("AVX512",),
    "AVX512_BF16": ("AVX512",),
    "AMX_TILE": ("AVX512",),
    "AMX_INT8": ("AMX_TILE",),
    "AMX_BF16": ("AMX_TILE",),
}

#: Features never built, whatever the CPU says, and why.
NOT_BUILT: Mapping[str, str] = {
    feature: "AMX kernels died with SIGILL on the first decode on the Sapphire Rapids VMs these "
             "builds run on, although cpuid and XCR0 advertise AMX there (FACTS.md)"
    for feature in ("AMX_TILE", "AMX_INT8", "AMX_BF16")
}


def build_features(flags: Iterable[str]) -> dict[str, bool]:
    """The ``GGML_<FEATURE>`` options a build for a CPU with these flags turns on.

    Args:
        flags: the CPU's instruction-set flags (Linux ``/proc/cpuinfo`` names, e.g. ``"avx2"``);
            names this module does not know are ignored.

    Returns:
        Every feature of :data:`GGML_FEATURES` (in its order) mapped to True when the CPU has
        all its flags, the features of :data:`REQUIRES` are on and it is not in
        :data:`NOT_BUILT`. A module built with exactly the True ones scores above 0 on this CPU.
    """
    have = set(flags)
    decided: dict[str, bool] = {}
    for feature, needed in GGML_FEATURES.items():
        decided[feature] = (feature not in NOT_BUILT
                            and all(flag in have for flag in needed)
                            and all(decided.get(base, False) for base in REQUIRES.get(feature, ())))
    return decided


def missing_flags(features: Iterable[str], flags: Iterable[str]) -> list[str]:
    """The flags a module built with ``features`` needs that the CPU lacks (empty: it loads).

    Args:
        features: ggml feature names (``"AVX2"``, ``"AVX_VNNI"``, ...); names that are not
            x86 features of :data:`GGML_FEATURES` are ignored.
        flags: the CPU's flags, as for :func:`build_features`.

    Returns:
        The missing flags in :data:`GGML_FEATURES` order: what makes ggml's score 0.
    """
    have, wanted = set(flags), set(features)
    return [flag for feature, needed in GGML_FEATURES.items() if feature in wanted
            for flag in needed if flag not in have]


def _main(argv: list[str]) -> int:
    for feature, on in build_features(argv).items():
        print(f"{feature}={'ON' if on else 'OFF'}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
