"""A blind battle of two presets of the bundled model on the live server, and a vote that
updates the leaderboard; the CLI's leaderboard."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from tests.conftest import LiveServer
from tests.features.responder import read_sse

pytestmark = pytest.mark.real_model


def test_two_preset_blind_battle_and_vote(live_server: LiveServer) -> None:
    base = live_server.base_url
    for name, system in (("arena-terse", "Answer in five words."),
                         ("arena-poet", "Answer as a short poem.")):
        r = httpx.post(base + "/api/create", json={"model": name, "from": "smollm2:135m",
                                                   "system": system, "stream": False},
                       timeout=60)
        assert r.status_code == 200, r.text
    r = httpx.post(base + "/v1/arena/battles", json={
        "prompt": "What is the sea?", "models": ["arena-terse", "arena-poet"],
        "max_tokens": 24, "seed": 3}, timeout=300)
    assert r.status_code == 200, r.text
    evs = read_sse(r.text)
    start = evs[0]
    assert [c["model"] for c in start["contestants"]] == [None, None]
    texts = {"A": "", "B": ""}
    for e in evs:
        if e["type"] == "delta" and e["kind"] == "content":
            texts[e["slot"]] += e["text"]
    assert texts["A"].strip() and texts["B"].strip()
    assert evs[-1]["type"] == "done"
    bid = start["battle_id"]
    r = httpx.post(f"{base}/v1/arena/battles/{bid}/vote", json={"winner": "A"}, timeout=30)
    assert r.status_code == 200
    winner = r.json()["contestants"][0]["model"]
    assert winner in ("arena-terse:latest", "arena-poet:latest")
    board = httpx.get(base + "/v1/arena/leaderboard", timeout=30).json()
    rows = {row["model"]: row for row in board["models"]}
    assert rows[winner]["wins"] >= 1 and rows[winner]["rating"] > 1000
    # the CLI reads the same leaderboard from the store
    out = subprocess.run([sys.executable, "-m", "cove", "arena", "--leaderboard"],
                         capture_output=True, text=True, timeout=120,
                         env={**live_server.env, "COLUMNS": "120"})
    assert out.returncode == 0, out.stderr
    assert winner.split(":")[0] in out.stdout
    # and runs a battle of its own with a vote given up front
    out = subprocess.run([sys.executable, "-m", "cove", "arena", "Name a colour.", "-m",
                          "arena-terse", "-m", "arena-poet", "--max-tokens", "8", "--vote",
                          "tie"], capture_output=True, text=True, timeout=300,
                         env={**live_server.env, "COLUMNS": "120"}, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert any(line.startswith("Vote kept.") for line in out.stdout.splitlines()), out.stdout
    board = httpx.get(base + "/v1/arena/leaderboard", timeout=30).json()
    assert board["votes"] == 2
    assert json.dumps(board)  # plain JSON
