"""``POST /v1/logic/solve`` and ``cove logic``: scripted (exact) and with the bundled model."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.api.test_openai_scripted import assert_error
from tests.conftest import FakeWorld, LiveServer


def test_solve_route_scripted(fake: FakeWorld) -> None:
    for text in ["2 + 2 = 4\nAnswer: 4", "Answer: 5", "Answer: 4"]:
        fake.engine.enqueue([text])
    r = fake.client.post("/v1/logic/solve", json={"question": "2+2?", "k": 3, "seed": 7,
                                                  "model": "scripted", "tools": False})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "logic.result" and body["model"] == "scripted:latest"
    assert body["answer"] == "4" and body["votes"] == 2 and body["k"] == 3
    assert body["agreement"] == pytest.approx(2 / 3)
    assert sorted(s["seed"] for s in body["samples"]) == [7, 8, 9]
    assert sorted(s["answer"] for s in body["samples"]) == ["4", "4", "5"]


@pytest.mark.parametrize(("body", "param"), [
    ({}, "question"), ({"question": ""}, "question"), ({"question": "q", "k": 0}, "k"),
    ({"question": "q", "k": 99}, "k"), ({"question": "q", "k": True}, "k"),
    ({"question": "q", "temperature": -1}, "temperature"),
    ({"question": "q", "max_rounds": 6}, "max_rounds"),
])
def test_solve_route_bad_input(fake: FakeWorld, body: dict[str, object], param: str) -> None:
    assert_error(fake.client.post("/v1/logic/solve", json=body), 400, param=param)


def test_solve_route_unknown_model(fake: FakeWorld) -> None:
    r = fake.client.post("/v1/logic/solve", json={"question": "q", "model": "nope:1b"})
    assert_error(r, 404, param="model", code="model_not_found")
    r = fake.client.post("/v1/logic/solve", content=b"{not json",
                         headers={"content-type": "application/json"})
    assert_error(r, 400)
    assert fake.client.get("/health").status_code == 200


@pytest.mark.real_model
def test_solve_route_live(live_server: LiveServer) -> None:
    r = httpx.post(live_server.base_url + "/v1/logic/solve", timeout=300, json={
        "question": "Tom has 3 bags with 4 apples each. How many apples does he have?",
        "k": 2, "seed": 1, "max_tokens": 96, "max_rounds": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "smollm2:135m" and body["k"] == 2 and len(body["samples"]) == 2
    assert all(s["text"] for s in body["samples"])
    votes = [s["answer"] for s in body["samples"]]
    assert body["votes"] == (votes.count(body["answer"]) if body["answer"] else 0)
    assert 0 <= body["agreement"] <= 1


@pytest.mark.real_model
def test_logic_cli_live() -> None:
    r = subprocess.run([sys.executable, "-m", "cove", "logic", "What is 5 plus 7?", "-k", "2",
                        "--seed", "3", "--max-tokens", "64", "--no-tools"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("sample 1 (seed 3):") and lines[1].startswith("sample 2 (seed 4):")
    assert lines[-1].startswith("Answer: ") and "agreement" in lines[-1]
    bad = subprocess.run([sys.executable, "-m", "cove", "logic", "q", "-m", "nope:1b"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "does not exist" in bad.stderr
