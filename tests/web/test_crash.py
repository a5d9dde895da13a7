"""Crash test: kill -9 `cove serve` (real model) in the middle of a streamed answer; after a
restart every acknowledged message is there and the partial answer is kept, marked."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, start_server, stop_server
from tests.web.helpers import PASSWORD

pytestmark = pytest.mark.real_model


def test_kill_9_mid_stream_loses_nothing_acknowledged(tmp_path: Path) -> None:
    port = free_port()
    proc = start_server(tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    try:
        c = httpx.Client(base_url=base, timeout=60)
        csrf = c.post("/web/signup", json={"email": "k@example.org", "password": PASSWORD}
                      ).json()["csrf"]
        h = {"X-CSRF-Token": csrf}
        cid = c.post("/web/conversations", json={}, headers=h).json()["id"]
        r = c.post(f"/web/conversations/{cid}/messages", headers=h,
                   json={"content": "Say hi.", "max_tokens": 8, "temperature": 0})
        assert r.status_code == 200 and '"type": "done"' in r.text
        received = ""
        start: dict[str, object] = {}
        deltas = 0
        with c.stream("POST", f"/web/conversations/{cid}/messages", headers=h,
                      json={"content": "Count from 1 to 300, separated by commas.",
                            "max_tokens": 500, "temperature": 0}) as resp:
            for line in resp.iter_lines():
                if not line.startswith("data: "):
                    continue
                ev = json.loads(line[6:])
                assert ev["type"] in ("start", "delta"), ev  # must still be streaming
                if ev["type"] == "start":
                    start = ev
                else:
                    deltas += 1
                    received += ev["text"]
                if deltas == 20:  # at once: every piece is saved before it is sent
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(10)
                    break
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    proc = start_server(tmp_path, port)
    try:
        c = httpx.Client(base_url=base, timeout=60)
        assert c.post("/web/login", json={"email": "k@example.org", "password": PASSWORD}
                      ).status_code == 200
        msgs = c.get(f"/web/conversations/{cid}").json()["messages"]
        assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
        assert msgs[0]["content"] == "Say hi." and msgs[1]["status"] == "complete"
        assert msgs[1]["content"]
        user = start["user_message"]
        assert isinstance(user, dict)
        assert msgs[2]["id"] == user["id"]
        assert msgs[2]["content"] == "Count from 1 to 300, separated by commas."
        partial = msgs[3]
        assert partial["id"] == start["assistant_message_id"]
        assert partial["status"] == "interrupted"
        # everything the client saw was saved (and perhaps a little more, not yet sent)
        assert partial["content"].startswith(received) and received
    finally:
        stop_server(proc)
