"""A client that goes away before its streamed answer starts: the generation is cancelled and
the model released at once (not left generating to max_tokens with a slot taken)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from cove.engine.scheduler import Scheduler
from tests.conftest import FakeWorld

CASES = {
    "openai chat": ("/v1/chat/completions", {
        "model": "scripted", "stream": True, "messages": [{"role": "user", "content": "hi"}]}),
    "openai completion": ("/v1/completions", {
        "model": "scripted", "stream": True, "prompt": "hi"}),
    "ollama chat": ("/api/chat", {
        "model": "scripted", "messages": [{"role": "user", "content": "hi"}]}),
    "ollama generate": ("/api/generate", {"model": "scripted", "prompt": "hi"}),
}


def scheduler(world: FakeWorld) -> Scheduler:
    (loaded,) = world.app.state.pipeline.models._models.values()
    return loaded.scheduler  # type: ignore[no-any-return]


async def gone_client(app: Any, path: str, payload: dict[str, Any],
                      gone: Callable[[], bool] | None = None) -> list[dict[str, Any]]:
    """Send the request, then report the connection closed (as uvicorn does when the client
    has gone by the time the response starts); with ``gone``, only once ``gone()`` is true."""
    body = json.dumps(payload).encode()
    inbox: list[dict[str, Any]] = [{"type": "http.request", "body": body, "more_body": False}]
    if gone is None:
        inbox.append({"type": "http.disconnect"})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if inbox:
            return inbox.pop(0)
        if gone is not None and gone():
            return {"type": "http.disconnect"}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "method": "POST", "scheme": "http", "path": path,
        "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"localhost"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 11434),
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize("case", CASES)
def test_a_client_gone_before_the_stream_starts_frees_its_slot(fake: FakeWorld,
                                                                 case: str) -> None:
    path, payload = CASES[case]
    fake.engine.delay = 0.005
    fake.engine.enqueue(["x"] * 100_000)  # would run for minutes if nobody stopped it
    fake.client.post("/api/generate", json={"model": "scripted"})  # load the model
    portal = fake.client.portal
    assert portal is not None
    portal.call(gone_client, fake.app, path, payload)
    sched = scheduler(fake)
    deadline = time.monotonic() + 10
    while sched.pending and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sched.pending == 0
    (loaded,) = fake.app.state.pipeline.models._models.values()
    assert not loaded.busy
