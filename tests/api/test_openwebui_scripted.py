"""Open WebUI's first chat (36 built-in tools) over the scripted engine: only the relevant tools
reach the prompt, and the response headers say which, on both APIs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cove.config import Settings
from cove.engine.fake import ScriptedEngine
from tests.conftest import FakeWorld

FIXTURES = Path(__file__).parent.parent / "fixtures"


def body(api: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads((FIXTURES / f"openwebui_first_chat_{api}.json").read_text())
    out["model"] = "scripted"
    return out


@pytest.fixture
def wide(settings: Settings) -> Iterator[FakeWorld]:
    world = FakeWorld(settings, ScriptedEngine(name="scripted:latest", n_ctx=32768))
    with world.client:
        yield world


@pytest.mark.parametrize("api,route", [("openai", "/v1/chat/completions"),
                                       ("ollama", "/api/chat")])
def test_only_relevant_tools_reach_the_prompt(wide: FakeWorld, api: str, route: str) -> None:
    wide.engine.enqueue(["It is ", "sunny."])
    r = wide.client.post(route, json=body(api))
    assert r.status_code == 200, r.text
    assert r.headers["x-cove-tools-offered"] == "36"
    selected = r.headers["x-cove-tools-selected"].split(", ")
    assert len(selected) == 8
    prompt = bytes(wide.engine.history[-1][0]).decode()
    described = {t["function"]["name"] for t in body(api)["tools"]
                 if f"- {t['function']['name']}(" in prompt}
    assert described == set(selected)
    assert "JSON Schema" not in prompt and '"properties"' not in prompt  # compact form


def test_all_tools_with_no_limit_and_no_header(settings: Settings) -> None:
    world = FakeWorld(settings.model_copy(update={"max_prompt_tools": 0}),
                      ScriptedEngine(name="scripted:latest", n_ctx=32768))
    with world.client:
        world.engine.enqueue(["ok"])
        r = world.client.post("/v1/chat/completions", json={**body("openai"), "stream": False})
        assert r.status_code == 200
        assert "x-cove-tools-offered" not in r.headers
        prompt = bytes(world.engine.history[-1][0]).decode()
        assert all(f"- {t['function']['name']}(" in prompt for t in body("openai")["tools"])


def test_few_tools_send_no_header(wide: FakeWorld) -> None:
    wide.engine.enqueue(["ok"])
    few = {**body("openai"), "tools": body("openai")["tools"][:3], "stream": False}
    r = wide.client.post("/v1/chat/completions", json=few)
    assert r.status_code == 200 and "x-cove-tools-selected" not in r.headers
