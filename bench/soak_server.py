"""Soak ``gpt4all-rag serve``: ten minutes (by default) of every kind of request at once.

The same soak as ``tests/server/test_soak.py`` (see ``tests/server/soak.py``), longer, and
printing its figures: requests by kind and outcome, 503s, p50/p95 latency of the 200s per
kind, the slowest ``/health``, and the server's RSS after the first full round and after the
run. Exits 1 when the soak fails (a crash, an undocumented error, a malformed 200, a slow
``/health``, RSS growth over 10%).

    .venv/bin/python bench/soak_server.py [--minutes 10] [--clients 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from gpt4all_rag.models import pypi as pypi_models  # noqa: E402
from tests.server.soak import run_soak, soak_server  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model_dir = pypi_models.model_folder()
    with tempfile.TemporaryDirectory() as work, soak_server(model_dir, Path(work)) as url:
        soak = run_soak(url, args.minutes * 60, args.clients, args.seed)
    print(soak.report())
    problems = soak.problems()
    for p in problems:
        print("FAIL:", p)
    print("PASS" if not problems else "FAIL")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
