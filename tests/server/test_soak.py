"""The soak test, short: a minute of every kind of request against a real server at its
defaults (see :mod:`tests.server.soak`; ``bench/soak_server.py`` runs it for ten)."""

from __future__ import annotations

from pathlib import Path

from .soak import run_soak, soak_server

DURATION_S = 60.0


def test_a_minute_of_mixed_requests(model_dir: Path, tmp_path: Path) -> None:
    with soak_server(model_dir, tmp_path) as url:
        soak = run_soak(url, DURATION_S)
        print(soak.report())
        assert not soak.problems(), soak.report() + "\n" + "\n".join(soak.problems())
        # Every kind got answers: the soak exercised what it claims to.
        for kind in ("chat", "chat_stream", "chat_localdocs", "completion", "embedding", "search"):
            assert soak.counts[(kind, "200")] >= 2, soak.report()
        assert soak.counts[("chat_leave", "left")] >= 1, soak.report()
