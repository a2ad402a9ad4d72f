"""What this machine's CPU offers and which of ggml's CPU kernel modules runs on it.

``python -m gpt4all_rag.system`` prints what a bug report needs: the CPU's instruction-set flags
as cpuid reports them (each present or absent), every CPU module beside the native library with
the score ggml gives it here (0: refused, and which flags it lacks), and the features of the one
in use. CI prints it before the tests: kernels differ between CPU kinds, and so does rounding.

``--check`` exits with status 1 and a message naming the missing flags when no module loads
(``scripts/setup.sh`` runs it right after building, before any model or test); ``--json``
prints the same facts as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import errors

from .engine import native as _native
from .cpu_isa import GGML_FEATURES, missing_flags

__all__ = ["check", "cpu_report", "report"]


def _relevant_flags(present: list[str]) -> list[str]:
    """Every flag ggml's kernels are decided by, in order, then any other the CPU reported."""
    ordered = list(dict.fromkeys(flag for needed in GGML_FEATURES.values() for flag in needed))
    return ordered + [flag for flag in present if flag not in ordered]


def cpu_report() -> dict[str, Any]:
    """The facts of :func:`report` as data.

    Returns:
        ``{"brand": str, "flags": {flag: bool}, "modules": [{"file", "score", "features",
        "missing", "in_use"}], "in_use": file name or None, "kernels": str,
        "encoder_kernels": str, "encoder_products": str}``: ``flags`` maps
        each kernel-relevant flag (Linux ``/proc/cpuinfo`` names, read with cpuid) to whether
        this CPU has it; ``missing`` lists the flags a module needs that the CPU lacks (empty
        for a module that loads; None where the build did not record the module's features);
        ``in_use`` is the module with the highest score, which ggml loads (None: none loads);
        ``kernels`` is llama.cpp's system-info line for the loaded kernels;
        ``encoder_kernels`` the kernel set of g4r's BERT encoder (``"avx512"``, ``"avx2"`` or
        ``"baseline"``); ``encoder_products`` who multiplies its F16, F32 and Q8_0 weights
        (``"g4r"`` or ``"ggml"``).

    Raises:
        NativeLibraryError: the native library cannot be loaded.
    """
    present = _native.cpu_flags()
    modules = _native.cpu_modules()
    best = max(modules, key=lambda m: m["score"], default=None)
    in_use = best["file"] if best is not None and best["score"] > 0 else None
    for module in modules:
        features = module["features"]
        module["missing"] = None if features is None else missing_flags(features, present)
        module["in_use"] = module["file"] == in_use
    return {
        "brand": _native.cpu_brand(),
        "flags": {flag: flag in present for flag in _relevant_flags(present)},
        "modules": modules,
        "in_use": in_use,
        "kernels": _native.system_info().strip() if in_use else "",
        "encoder_kernels": _native.encoder_kernels(),
        "encoder_products": _native.encoder_products(),
    }


def report(facts: dict[str, Any] | None = None) -> str:
    """The CPU, its flags, each CPU module's score and why a refused one is refused, and the
    kernels in use, as lines of text.

    Args:
        facts: a :func:`cpu_report` result; None computes it.

    Raises:
        NativeLibraryError: the native library cannot be loaded.
    """
    facts = cpu_report() if facts is None else facts
    flags = ", ".join(f"{flag}: {'yes' if on else 'no'}" for flag, on in facts["flags"].items())
    lines = [f"CPU: {facts['brand'] or '(no brand string)'}",
             f"CPU flags (cpuid): {flags or '(not an x86 CPU)'}",
             "CPU kernel modules (ggml's score on this CPU; the highest loads):"]
    for module in facts["modules"]:
        features = " ".join(module["features"]) if module["features"] is not None else "?"
        if module["in_use"]:
            verdict = "in use"
        elif module["score"] > 0:
            verdict = "loadable, lower score"
        elif module["missing"]:
            verdict = "refused: this CPU lacks " + " ".join(module["missing"])
        else:
            verdict = "refused"
        lines.append(f"  {module['file']}: score {module['score']}, {verdict} [{features}]")
    if not facts["modules"]:
        lines.append("  (none beside the native library)")
    lines.append(f"CPU kernels in use: {facts['kernels'] or '(none: no module loads on this CPU)'}")
    lines.append(f"Embedding encoder kernels (attention, GELU): {facts['encoder_kernels']}")
    lines.append(f"Embedding encoder products (F16, F32, Q8_0 weights): {facts['encoder_products']}")
    return "\n".join(lines)


def check(facts: dict[str, Any] | None = None) -> None:
    """Raise unless one of the CPU modules beside the native library loads on this CPU.

    Args:
        facts: a :func:`cpu_report` result; None computes it.

    Raises:
        NativeLibraryError: the library cannot be loaded, or ggml refuses every CPU module
            here; the message names, per module, the flags this CPU lacks.
    """
    facts = cpu_report() if facts is None else facts
    if facts["in_use"] is not None:
        return
    why = "; ".join(
        f"{m['file']} needs {' '.join(m['missing'])}" if m["missing"] else f"{m['file']} scores 0"
        for m in facts["modules"]) or "there are none"
    raise errors.NativeLibraryError(
        f"no CPU kernels for this CPU ({facts['brand'] or 'unknown'}): ggml refuses every CPU "
        f"module beside the native library ({why}). Rebuild on this machine "
        "(bash scripts/setup.sh decides the kernels from this CPU's own flags) or install the "
        "portable wheel (pip install ., every variant)")


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpt4all_rag.system", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1, naming the missing flags, when no CPU module loads here")
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")
    args = parser.parse_args(argv)
    try:
        facts = cpu_report()
    except errors.NativeLibraryError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(facts, indent=2) if args.json else report(facts))
    if args.check:
        try:
            check(facts)
        except errors.NativeLibraryError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main(sys.argv[1:]))
