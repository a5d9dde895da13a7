"""Open WebUI's first chat with default settings: its 36 built-in tools on both connections
(OpenAI and Ollama APIs), answered with 200 by the bundled model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, start_server, stop_server

pytestmark = pytest.mark.real_model

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``cove serve`` with default settings (the test servers' usual COVE_N_CTX=1024 undone)."""
    port = free_port()
    home = tmp_path_factory.mktemp("owu-home")
    proc = start_server(home, port, COVE_N_CTX="auto", COVE_PORT=str(port))
    yield f"http://127.0.0.1:{port}"
    stop_server(proc)


def recorded(api: str, **limit: Any) -> dict[str, Any]:
    """The recorded request, with a token limit so the test stays short."""
    body: dict[str, Any] = json.loads(
        (FIXTURES / f"openwebui_first_chat_{api}.json").read_text())
    assert len(body["tools"]) == 36
    return {**body, **limit}


def test_openai_connection(server: str) -> None:
    with httpx.stream("POST", server + "/v1/chat/completions", timeout=120,
                      json=recorded("openai", max_tokens=48)) as r:
        assert r.status_code == 200, r.read()
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all("error" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length", "tool_calls")
    assert r.headers["x-cove-tools-offered"] == "36"


def test_ollama_connection(server: str) -> None:
    with httpx.stream("POST", server + "/api/chat", timeout=120,
                      json=recorded("ollama", options={"num_predict": 48})) as r:
        assert r.status_code == 200, r.read()
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert all("error" not in x for x in lines)
    assert lines[-1]["done"] is True and lines[-1]["prompt_eval_count"] > 0


def test_the_window_follows_the_trained_length(server: str) -> None:
    ps = httpx.get(server + "/api/ps", timeout=10).json()
    assert [m["context_length"] for m in ps["models"]] == [8192]
