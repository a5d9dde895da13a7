"""``/v1/ideas`` over a scripted model: the event stream, the whole answer, follow-ups, errors
in OpenAI's shape, and boards (saved for signed-in users only, 404 for others, markdown,
export, erasure) on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from cove.config import Settings
from cove.engine.fake import ScriptedEngine
from cove.features.ideas.store import Board
from tests.conftest import FakeWorld, local_client
from tests.features.ideas.conftest import Brain
from tests.features.ideas.test_service import BIKES, GARDENS
from tests.features.responder import answer_by_prompt, read_sse
from tests.web.conftest import pg_url, settings  # noqa: F401 - SQLite and PostgreSQL
from tests.web.helpers import PASSWORD, Browser

BODY = {"goal": "Make our town greener", "n": 4, "seed": 7, "max_tokens": 1000,
        "criteria": ["cheap", "fun"]}


@pytest.fixture
def world(settings: Settings, brain: Brain) -> Iterator[FakeWorld]:  # noqa: F811
    engine = ScriptedEngine(name="scripted:latest", n_ctx=4096)
    answer_by_prompt(engine, brain)
    w = FakeWorld(settings, engine)
    brain.ideas = lambda p: BIKES if "concrete" in p else GARDENS
    brain.score = lambda title: len(title) % 10 + 1
    with w.client:
        yield w


def boards(world: FakeWorld) -> int:
    with world.app.state.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Board)) or 0)


def test_streamed_events_and_guest_board_not_kept(world: FakeWorld) -> None:
    r = world.client.post("/v1/ideas", json=BODY)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    evs = read_sse(r.text)
    kinds = [e["type"] for e in evs]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert kinds.count("candidate") == 4 and kinds.count("score") == 4
    done = evs[-1]
    assert "board_id" not in done  # no account: a guest, nothing saved
    for idea in done["ideas"]:
        assert {"title", "pitch", "group", "score", "rank"} <= set(idea)
    assert [i["score"] for i in done["ideas"]] == sorted(
        (i["score"] for i in done["ideas"]), reverse=True)
    assert boards(world) == 0


def test_whole_answer(world: FakeWorld) -> None:
    r = world.client.post("/v1/ideas", json={**BODY, "stream": False,
                                             "criteria": "cheap\nfun"})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "ideas.result" and len(body["ideas"]) == 4
    assert body["criteria"] == ["cheap", "fun"]
    assert set(body["ideas"][0]["scores"]) == {"cheap", "fun"}


@pytest.mark.parametrize(("change", "status", "param"), [
    ({"n": 49}, 400, "n"),
    ({"goal": "x" * 2001}, 400, "goal"),
    ({"goal": ""}, 400, "goal"),
    ({"criteria": ["c"] * 11}, 400, "criteria"),
    ({"criteria": ["x" * 301]}, 400, "criteria[0]"),
    ({"model": "nope:1b"}, 404, "model"),
])
def test_bad_input_is_a_clear_error(world: FakeWorld, change: dict[str, object], status: int,
                                    param: str) -> None:
    for stream in (True, False):
        r = world.client.post("/v1/ideas", json={**BODY, **change, "stream": stream})
        assert r.status_code == status, r.text
        err = r.json()["error"]
        assert err["param"] == param and err["message"] and err["type"]
    assert world.client.get("/health").status_code == 200


def test_follow_ups(world: FakeWorld, brain: Brain) -> None:
    idea = {"title": BIKES[0][0], "pitch": BIKES[0][1]}
    plan = {"title": "Plan", "summary": "Do it.", "steps": ["a", "b", "c"], "first_step": "Go"}
    original = brain.ideas
    brain.ideas = lambda p: original(p)
    respond = brain.__call__

    def answer(prompt: str) -> str:
        if "short plan" in prompt:
            return json.dumps(plan)
        if "Pre-mortem" in prompt:
            return json.dumps({"failure": "Nobody came.", "causes": ["x", "y", "z"],
                               "mitigations": ["p", "q", "r"]})
        if "more ideas in the same spirit" in prompt:
            return json.dumps({"ideas": [{"title": BIKES[0][0], "pitch": BIKES[0][1],
                                          "why": "w"},
                                         {"title": "Bike bells", "pitch": "Bells for all.",
                                          "why": "w"},
                                         {"title": "Tree planting", "pitch": "Plant trees.",
                                          "why": "w"}]})
        return respond(prompt)

    answer_by_prompt(world.engine, answer)
    r = world.client.post("/v1/ideas/followups", json={"action": "expand", "goal": "g",
                                                       "ideas": [idea]})
    assert r.status_code == 200 and r.json()["result"] == plan
    r = world.client.post("/v1/ideas/followups", json={"action": "premortem", "goal": "g",
                                                       "ideas": [idea]})
    assert r.json()["result"]["failure"] == "Nobody came."
    r = world.client.post("/v1/ideas/followups", json={"action": "more", "goal": "g",
                                                       "ideas": [idea]})
    more = r.json()["result"]
    assert [i["title"] for i in more["ideas"]] == ["Bike bells", "Tree planting"]
    assert more["duplicates"] == 1
    for bad, param in (({"action": "dance"}, "action"),
                       ({"action": "combine"}, "ideas")):
        r = world.client.post("/v1/ideas/followups", json={"goal": "g", "ideas": [idea],
                                                           **bad})
        assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_boards_of_signed_in_users(world: FakeWorld) -> None:
    admin = Browser(world.client)  # the first account (an admin may not delete itself)
    assert admin.signup("admin@example.org").status_code == 200
    bob = Browser(local_client(world.app))
    assert bob.signup("bob@example.org").status_code == 200
    done = read_sse(bob.post("/v1/ideas", json=BODY).text)[-1]
    board_id = done["board_id"]
    listed = bob.get("/v1/ideas/boards").json()["boards"]
    assert [b["id"] for b in listed] == [board_id] and listed[0]["ideas"] == 4
    board = bob.get(f"/v1/ideas/boards/{board_id}").json()
    assert [i["title"] for i in board["ideas"]] == [i["title"] for i in done["ideas"]]
    md = bob.get(f"/v1/ideas/boards/{board_id}/markdown")
    assert md.status_code == 200 and "attachment" in md.headers["content-disposition"]
    assert md.text.startswith("# Ideas: Make our town greener")
    assert all(i["title"] in md.text for i in done["ideas"])
    # a follow-up is kept on the board
    r = bob.post("/v1/ideas/followups", json={
        "action": "combine", "goal": "g", "board_id": board_id,
        "ideas": [{"title": BIKES[0][0], "pitch": "p"}, {"title": BIKES[1][0], "pitch": "p"}]})
    assert r.status_code == 200
    assert len(bob.get(f"/v1/ideas/boards/{board_id}").json()["followups"]) == 1
    # another user sees none of it
    for path in (f"/v1/ideas/boards/{board_id}", f"/v1/ideas/boards/{board_id}/markdown"):
        assert admin.get(path).status_code == 404
    assert admin.delete(f"/v1/ideas/boards/{board_id}").status_code == 404
    assert admin.post("/v1/ideas/followups", json={
        "action": "expand", "goal": "g", "board_id": board_id,
        "ideas": [{"title": "t"}]}).status_code == 404
    assert admin.get("/v1/ideas/boards").json()["boards"] == []
    # export, then erasure with the account
    export = bob.get("/web/export").json()
    assert [b["id"] for b in export["ideas"]] == [board_id]
    r = bob.delete("/web/account", json={"password": PASSWORD})
    assert r.status_code == 200, r.text
    assert boards(world) == 0


def test_board_delete(world: FakeWorld) -> None:
    alice = Browser(world.client)
    alice.signup("alice@example.org")
    board_id = read_sse(alice.post("/v1/ideas", json={**BODY, "n": 2}).text)[-1]["board_id"]
    assert alice.delete(f"/v1/ideas/boards/{board_id}").json()["deleted"] == board_id
    assert alice.get(f"/v1/ideas/boards/{board_id}").status_code == 404
    assert boards(world) == 0
