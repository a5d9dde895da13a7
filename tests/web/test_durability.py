"""What a client has been sent of an answer is already in the database: at every event of a
live web stream (scripted engine, a server on loopback), the stored answer holds at least the
text received so far, reasoning and content alike."""

from __future__ import annotations

import json

import httpx

from cove.store.tables import Message
from tests.web.conftest import Site
from tests.web.helpers import PASSWORD


def stored(site: Site, message_id: int) -> tuple[str, str, str]:
    with site.app.state.db.session() as s:
        m = s.get(Message, message_id)
        assert m is not None
        return m.content, m.reasoning, m.status


def test_every_piece_sent_is_already_saved(site: Site) -> None:
    engine = site.engines["thinker:latest"]
    engine.delay = 0.01  # a decode step takes 10 ms: saves and tokens interleave
    thinking = [f"step {i}. " for i in range(30)]
    answer = [f"word{i} " for i in range(30)]
    engine.enqueue([*thinking, "</think>", *answer])
    with httpx.Client(base_url=site.base_url, timeout=30) as c:
        csrf = c.post("/web/signup", json={"email": "d@example.org", "password": PASSWORD}
                      ).json()["csrf"]
        cid = c.post("/web/conversations", json={"model": "thinker:latest"},
                     headers={"X-CSRF-Token": csrf}).json()["id"]
        received = {"content": "", "reasoning": ""}
        checks = 0
        assistant_id = None
        with c.stream("POST", f"/web/conversations/{cid}/messages",
                      headers={"X-CSRF-Token": csrf}, json={"content": "think"}) as resp:
            assert resp.status_code == 200
            for line in resp.iter_lines():
                if not line.startswith("data: "):
                    continue
                ev = json.loads(line[len("data: "):])
                if ev["type"] == "start":
                    assistant_id = ev["assistant_message_id"]
                elif ev["type"] == "delta":
                    received[ev["kind"]] += ev["text"]
                    assert assistant_id is not None
                    content, reasoning, status = stored(site, assistant_id)
                    assert reasoning.startswith(received["reasoning"]), (reasoning, received)
                    assert content.startswith(received["content"]), (content, received)
                    checks += 1
                else:
                    assert ev["type"] == "done", ev
    assert checks >= 40
    assert received["reasoning"].strip() == "".join(thinking).strip()
    assert received["content"].strip() == "".join(answer).strip()
    assert assistant_id is not None
    content, reasoning, status = stored(site, assistant_id)
    assert status == "complete" and content == received["content"]
