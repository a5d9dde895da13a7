"""Smoke test of the reliability suite (bench/soak.py, bench/faults.py): each runs briefly
against the bundled model, so that the scripts cannot rot unnoticed. The measurements
themselves are made by hand (README → Development → Reliability)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import faults, soak
from tests import pg

pytestmark = pytest.mark.real_model

# one llama.cpp thread: the load generator shares this machine's two cores with the server
QUIET = ["--env", "COVE_N_THREADS=1"]


def test_soak_few_clients_no_failures(tmp_path: Path) -> None:
    out = tmp_path / "reliability.md"
    code = soak.main(["--clients", "3", "--minutes", "0.2", "--deadline", "60", "--out", str(out),
                      *QUIET])
    text = out.read_text()
    assert "soak, 3 clients × 0.2 min, sqlite" in text
    for kind in ("openai chat stream", "ollama chat stream", "bad request", "web chat (stored)"):
        assert f"| {kind} |" in text, text
    assert "**failures 0**" in text.replace("\\\n", ""), text
    assert code == 0


def test_faults_one_round_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "reliability.md"
    db = "postgres" if pg.available() else "sqlite"
    # seed 1: the first round kills the server while the answers stream
    code = faults.main(["--rounds", "1", "--seed", "1", "--db", db, "--out", str(out), *QUIET])
    text = out.read_text()
    assert f"faults, 1 round, {db}" in text
    assert "**lost: 0**" in text, text
    assert "\n| 1 | stream |" in text, text
    assert code == 0
