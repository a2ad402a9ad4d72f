"""Interleaved measurement rounds, for figures taken on a machine whose speed drifts.

The machines these benchmarks run on are virtual: the same command can run 30% faster or
slower a minute later. Measuring each system in one block and dividing the blocks turns that
drift into a false ratio. Here every round measures every system once, one after the other,
and a ratio is taken within each round; the summary is the median over rounds of each figure
and of each within-round ratio, with the lowest and highest ratio seen.
"""

from __future__ import annotations

import statistics
from typing import Callable

Measure = Callable[[int], "dict[str, float] | None"]


def run_rounds(systems: dict[str, Measure], rounds: int, *, log: bool = True
               ) -> dict[str, list[dict[str, float]]]:
    """Call every measure once per round, in order, with the round's index (0-based);
    returns each system's results per round.

    A measure returning None (the system is not installed) is not called again.
    """
    results: dict[str, list[dict[str, float]]] = {name: [] for name in systems}
    missing: set[str] = set()
    for r in range(rounds):
        for name, measure in systems.items():
            if name in missing:
                continue
            out = measure(r)
            if out is None:
                missing.add(name)
                continue
            results[name].append(out)
            if log:
                figures = ", ".join(f"{k} {v:.1f}" for k, v in out.items() if isinstance(v, float))
                print(f"  round {r + 1}: {name}: {figures}", flush=True)
    return results


def median_of(results: list[dict[str, float]], key: str) -> float:
    """Median of one figure over the rounds."""
    return statistics.median(r[key] for r in results)


def ratio(ours: list[dict[str, float]], other: list[dict[str, float]], key: str
          ) -> tuple[float, float, float]:
    """(median, lowest, highest) over rounds of ours[key] / other[key] within each round."""
    rs = [a[key] / b[key] for a, b in zip(ours, other)]
    return statistics.median(rs), min(rs), max(rs)


def format_ratio(ours: list[dict[str, float]], other: list[dict[str, float]], key: str) -> str:
    med, lo, hi = ratio(ours, other, key)
    return f"{med:.2f}x [{lo:.2f}-{hi:.2f}]"
