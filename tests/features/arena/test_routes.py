"""``/v1/arena`` over a scripted model: two presets of one model battle side by side in one
batch, blind names revealed by the vote, the leaderboard, errors in OpenAI's shape, guests
(only the vote kept) and owners (another's battle is 404), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from cove.app import create_app
from cove.config import Settings
from cove.engine.fake import ScriptedEngine
from cove.features.arena.store import Battle
from cove.models.registry import ModelEntry, ModelRegistry
from tests.conftest import local_client
from tests.features.responder import answer_by_prompt, read_sse
from tests.web.conftest import pg_url, settings  # noqa: F401 - SQLite and PostgreSQL
from tests.web.helpers import PASSWORD, Browser

WEIGHTS = Path("/nonexistent/base.gguf")


class Arena:
    def __init__(self, settings: Settings) -> None:  # noqa: F811
        self.engine = ScriptedEngine(name="base:latest", delay=0.002)
        registry = ModelRegistry()
        registry.add(ModelEntry("base:latest", WEIGHTS, "base"))
        registry.add(ModelEntry("terse:latest", WEIGHTS, "preset", system="Be terse.",
                                options={"temperature": 0.1}))
        registry.add(ModelEntry("chatty:latest", WEIGHTS, "preset", system="Be chatty."))
        self.loads: list[str] = []

        def load(entry: ModelEntry, s: Settings) -> ScriptedEngine:
            self.loads.append(entry.name)
            return self.engine

        self.app = create_app(settings, registry=registry, loader=load)
        self.client = local_client(self.app)

        def respond(prompt: str) -> str:
            if "Be terse." in prompt:
                return "Short."
            if "Be chatty." in prompt:
                return "Oh, what a lovely question, let me tell you at length."
            return "Plain."
        answer_by_prompt(self.engine, respond)

    def battles(self) -> list[Battle]:
        with self.app.state.db.session() as s:
            return list(s.scalars(select(Battle)))


@pytest.fixture
def arena(settings: Settings) -> Iterator[Arena]:  # noqa: F811
    a = Arena(settings)
    with a.client:
        yield a


def battle(client: object, **kw: object) -> list[dict[str, object]]:
    body = {"prompt": "Say something.", "models": ["terse", "chatty"], **kw}
    r = client.post("/v1/arena/battles", json=body)  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    return read_sse(r.text)


def test_blind_battle_vote_and_leaderboard(arena: Arena) -> None:
    evs = battle(arena.client)
    start = evs[0]
    assert start["type"] == "start" and start["blind"] is True
    assert [c["model"] for c in start["contestants"]] == [None, None]
    texts: dict[str, str] = {"A": "", "B": ""}
    for e in evs:
        if e["type"] == "delta":
            texts[str(e["slot"])] += str(e["text"])
    assert sorted(texts.values()) == sorted(
        ["Short.", "Oh, what a lovely question, let me tell you at length."])
    assert [e["slot"] for e in evs if e["type"] == "answer"] == ["A", "B"] or \
        [e["slot"] for e in evs if e["type"] == "answer"] == ["B", "A"]
    assert evs[-1] == {"type": "done", "battle_id": start["battle_id"]}
    # the two presets ran on the one loaded model, decoded in the same steps
    assert arena.loads == [arena.loads[0]]
    assert any(len([f for f in step if f[2]]) == 2 for step in arena.engine.decodes)
    # interleaved: deltas of both slots before the first answer ends
    first_end = next(i for i, e in enumerate(evs) if e["type"] == "answer")
    assert {e["slot"] for e in evs[:first_end] if e["type"] == "delta"} == {"A", "B"}
    bid = start["battle_id"]
    shown = arena.client.get(f"/v1/arena/battles/{bid}").json()
    assert [c["model"] for c in shown["contestants"]] == [None, None]
    terse = next(s for s, t in texts.items() if t == "Short.")
    r = arena.client.post(f"/v1/arena/battles/{bid}/vote", json={"winner": terse})
    assert r.status_code == 200
    revealed = {c["slot"]: c["model"] for c in r.json()["contestants"]}
    assert revealed[terse] == "terse:latest"
    board = arena.client.get("/v1/arena/leaderboard").json()
    assert board["votes"] == 1
    top, second = board["models"]
    assert top["model"] == "terse:latest" and top["wins"] == 1 and top["battles"] == 1
    assert second["model"] == "chatty:latest" and second["losses"] == 1
    assert top["rating"] > 1000 > second["rating"]
    assert top["ci"][0] <= top["rating"] <= top["ci"][1]
    # no prompt kept: the caller is a guest (no account exists)
    (row,) = arena.battles()
    assert row.prompt is None and row.answers is None and row.winner == terse
    # voting twice, a bad winner, a missing battle
    r = arena.client.post(f"/v1/arena/battles/{bid}/vote", json={"winner": "A"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_voted"
    r = arena.client.post(f"/v1/arena/battles/{bid}/vote", json={"winner": "C"})
    assert r.status_code in (400, 409)
    r = arena.client.post("/v1/arena/battles/bt_nope/vote", json={"winner": "A"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "battle_id"


def test_open_battle_whole_answer_and_ties(arena: Arena) -> None:
    r = arena.client.post("/v1/arena/battles", json={
        "prompt": "Hi", "models": ["base", "terse", "chatty"], "blind": False,
        "stream": False})
    assert r.status_code == 200
    body = r.json()
    assert [a["model"] for a in body["answers"]] == ["base:latest", "terse:latest",
                                                     "chatty:latest"]
    assert [a["content"] for a in body["answers"]][:2] == ["Plain.", "Short."]
    r = arena.client.post(f"/v1/arena/battles/{body['id']}/vote", json={"winner": "tie"})
    assert r.status_code == 200
    rows = arena.client.get("/v1/arena/leaderboard").json()["models"]
    assert sorted(r["ties"] for r in rows) == [1, 1, 1]
    assert all(abs(r["rating"] - 1000) < 1e-6 for r in rows)
    # the same model twice is allowed when names are shown
    r = arena.client.post("/v1/arena/battles", json={
        "prompt": "Hi", "models": ["terse", "terse"], "blind": False, "stream": False})
    assert r.status_code == 200


@pytest.mark.parametrize(("models", "blind", "status", "param"), [
    (["terse"], True, 400, "models"),
    (["terse", "chatty", "base", "terse:latest", "chatty"], False, 400, "models"),
    (["terse", "nope:7b"], True, 404, "models[1]"),
    (["terse", "terse:latest"], True, 400, "models"),
])
def test_bad_battles(arena: Arena, models: list[str], blind: bool, status: int,
                     param: str) -> None:
    r = arena.client.post("/v1/arena/battles", json={"prompt": "Hi", "models": models,
                                                     "blind": blind})
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param
    assert arena.battles() == []


def test_prompt_limits(arena: Arena) -> None:
    for prompt in ("  ", "x" * 20_001):
        r = arena.client.post("/v1/arena/battles", json={"prompt": prompt,
                                                         "models": ["terse", "chatty"]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"


def test_owners_guests_export_and_erasure(arena: Arena) -> None:
    Browser(arena.client).signup("admin@example.org")  # the first account: admin
    bob = Browser(local_client(arena.app))
    bob.signup("bob@example.org")
    carol = Browser(local_client(arena.app))
    carol.signup("carol@example.org")
    guest = local_client(arena.app)
    bid = str(battle(bob)[0]["battle_id"])
    (row,) = arena.battles()
    assert row.prompt == "Say something." and len(json.loads(row.answers or "[]")) == 2
    # another user's battle, and a guest's look at it, are 404
    assert carol.post(f"/v1/arena/battles/{bid}/vote", json={"winner": "A"}).status_code == 404
    assert guest.post(f"/v1/arena/battles/{bid}/vote", json={"winner": "A"}).status_code == 404
    assert carol.get(f"/v1/arena/battles/{bid}").status_code == 404
    # a guest battles while accounts exist (guests are on, bound to loopback)
    gid = str(battle(guest)[0]["battle_id"])
    assert bob.post(f"/v1/arena/battles/{gid}/vote", json={"winner": "A"}).status_code == 404
    assert guest.post(f"/v1/arena/battles/{gid}/vote", json={"winner": "B"}).status_code == 200
    assert bob.post(f"/v1/arena/battles/{bid}/vote", json={"winner": "A"}).status_code == 200
    assert arena.client.get("/v1/arena/leaderboard").json()["votes"] == 2
    guest_row = next(b for b in arena.battles() if b.id == gid)
    assert guest_row.user_id is None and guest_row.prompt is None and guest_row.answers is None
    export = bob.get("/web/export").json()["arena"]
    assert [b["id"] for b in export] == [bid] and export[0]["prompt"] == "Say something."
    assert bob.delete("/web/account", json={"password": PASSWORD}).status_code == 200
    assert [b.id for b in arena.battles()] == [gid]
