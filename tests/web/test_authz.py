"""Authorization on every /web route: one user never sees or changes another's data, anonymous
callers get 401, non-admins 403 on admin routes, and CSRF/Origin checks guard cookie requests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import FakeWorld, local_client
from tests.web.helpers import PASSWORD, Browser, events


def make_conversation(b: Browser, fake: FakeWorld, text: str = "secret of alice") -> dict[str, Any]:
    conv = b.post("/web/conversations", json={}).json()
    fake.engine.enqueue(["private ", "answer"])
    r = b.post(f"/web/conversations/{conv['id']}/messages", json={"content": text})
    assert r.status_code == 200, r.text
    assert events(r.text)[-1]["type"] == "done"
    return b.get(f"/web/conversations/{conv['id']}").json()  # type: ignore[no-any-return]


def owner_routes(conv: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every route that addresses one conversation, with a valid body."""
    cid = conv["id"]
    first_user = next(m for m in conv["messages"] if m["role"] == "user")["id"]
    return [
        ("GET", f"/web/conversations/{cid}", None),
        ("GET", f"/web/conversations/{cid}/messages", None),
        ("PATCH", f"/web/conversations/{cid}", {"title": "pwned"}),
        ("POST", f"/web/conversations/{cid}/messages", {"content": "hi"}),
        ("POST", f"/web/conversations/{cid}/messages", {"regenerate": True}),
        ("POST", f"/web/conversations/{cid}/messages", {"content": "x", "edit_from": first_user}),
        ("DELETE", f"/web/conversations/{cid}", None),
    ]


def test_other_user_gets_404_for_every_conversation_route(
    fake: FakeWorld, alice: Browser, bob: Browser
) -> None:
    conv = make_conversation(alice, fake)
    for method, path, body in owner_routes(conv):
        r = bob.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"
    # nothing of alice's leaks into bob's list, search, export; bob's delete-all spares hers
    assert bob.get("/web/conversations").json()["data"] == []
    assert bob.get("/web/conversations", params={"q": "secret"}).json()["data"] == []
    export = bob.get("/web/export")
    assert export.status_code == 200 and "secret of alice" not in export.text
    assert bob.delete("/web/conversations").json()["deleted"] == 0
    after = alice.get(f"/web/conversations/{conv['id']}").json()
    assert after["title"] == conv["title"] and len(after["messages"]) == 2


def test_bob_cannot_edit_from_a_message_of_alice_in_his_own_conversation(
    fake: FakeWorld, alice: Browser, bob: Browser
) -> None:
    conv = make_conversation(alice, fake)
    mine = bob.post("/web/conversations", json={}).json()
    r = bob.post(f"/web/conversations/{mine['id']}/messages",
                 json={"content": "x", "edit_from": conv["messages"][0]["id"]})
    assert r.status_code in (400, 404)
    assert len(alice.get(f"/web/conversations/{conv['id']}").json()["messages"]) == 2


def test_admin_cannot_read_other_users_conversations(
    fake: FakeWorld, alice: Browser, bob: Browser
) -> None:
    conv = make_conversation(bob, fake, "bob's secret")
    assert alice.get("/web/session").json()["user"]["role"] == "admin"
    for method, path, body in owner_routes(conv):
        assert alice.request(method, path, json=body).status_code == 404, (method, path)
    users = alice.get("/web/admin/users")
    assert users.status_code == 200 and "bob's secret" not in users.text
    assert "password" not in users.text


def test_api_keys_are_per_user(fake: FakeWorld, alice: Browser, bob: Browser) -> None:
    key = alice.post("/web/keys", json={"name": "laptop"}).json()
    assert key["key"].startswith("cove-") and key["prefix"] == key["key"][:12]
    assert alice.get("/web/keys").json()["data"][0]["name"] == "laptop"
    assert "key" not in alice.get("/web/keys").json()["data"][0]
    assert bob.get("/web/keys").json()["data"] == []
    assert bob.delete(f"/web/keys/{key['id']}").status_code == 404
    # a key acts as its owner, and only its owner
    c = local_client(fake.app, headers={"Authorization": f"Bearer {key['key']}"})
    assert c.get("/web/session").json()["user"]["email"] == "alice@example.org"
    conv = make_conversation(bob, fake)
    assert c.get(f"/web/conversations/{conv['id']}").status_code == 404
    assert alice.delete(f"/web/keys/{key['id']}").status_code == 200
    assert c.get("/web/conversations").status_code == 401


ANON_OK = {("GET", "/web/session"), ("POST", "/web/signup"), ("POST", "/web/login"),
           ("POST", "/web/logout"), ("GET", "/web/models"), ("POST", "/web/guest/chat"),
           # guests may search the web and packs (sign-in needed when guest chat is off:
           # tests/features/search/test_web_answers.py)
           ("GET", "/web/search/sources"), ("POST", "/web/search"),
           # knowledge packs are shared by the instance: guests may list and search them
           # (registering and removing them is for admins: tests/features/search/test_packs*)
           ("GET", "/web/knowledge/packs"), ("POST", "/web/knowledge/packs/search")}


def web_routes(fake: FakeWorld) -> list[tuple[str, str]]:
    paths = fake.app.openapi()["paths"]
    return sorted((m.upper(), p) for p, ops in paths.items() if p.startswith("/web") for m in ops)


def test_every_private_route_needs_a_sign_in(fake: FakeWorld, alice: Browser) -> None:
    anon = local_client(fake.app)
    routes = web_routes(fake)
    assert len(routes) >= 20
    for method, path in routes:
        if (method, path) in ANON_OK:
            continue
        url = path.replace("{conversation_id}", "x").replace("{key_id}", "1") \
                  .replace("{user_id}", "1")
        r = anon.request(method, url, json={})
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.json()["error"]["type"] == "authentication_error"


def test_admin_routes_refuse_users(fake: FakeWorld, alice: Browser, bob: Browser) -> None:
    admin = [(m, p) for m, p in web_routes(fake) if p.startswith("/web/admin")]
    assert len(admin) == 5
    for method, path in admin:
        r = bob.request(method, path.replace("{user_id}", "1"), json={"role": "user"})
        assert r.status_code == 403, (method, path)


def test_csrf_token_required_for_cookie_requests(fake: FakeWorld, alice: Browser) -> None:
    r = fake.client.post("/web/conversations", json={})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    r = fake.client.post("/web/conversations", json={}, headers={"X-CSRF-Token": "nope"})
    assert r.status_code == 403
    r = alice.post("/web/conversations", json={}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    assert alice.post("/web/conversations", json={},
                      headers={"Origin": "http://localhost"}).status_code == 200
    r = fake.client.post("/web/login", json={"email": "alice@example.org", "password": PASSWORD},
                         headers={"Origin": "http://evil.example"})
    assert r.status_code == 403


def test_session_cookie_flags(fake: FakeWorld) -> None:
    r = fake.client.post("/web/signup", json={"email": "a@b.c", "password": PASSWORD})
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    https = local_client(fake.app, base_url="https://localhost")
    r = https.post("/web/login", json={"email": "a@b.c", "password": PASSWORD})
    assert r.status_code == 200 and "Secure" in r.headers["set-cookie"]


def test_disabled_user_is_signed_out(fake: FakeWorld, alice: Browser, bob: Browser) -> None:
    bob_id = bob.get("/web/session").json()["user"]["id"]
    assert alice.patch(f"/web/admin/users/{bob_id}", json={"disabled": True}).status_code == 200
    assert bob.get("/web/conversations").status_code == 401
    r = bob.client.post("/web/login", json={"email": "bob@example.org", "password": PASSWORD})
    assert r.status_code == 401
    # the last admin cannot demote herself
    me = alice.get("/web/session").json()["user"]["id"]
    assert alice.patch(f"/web/admin/users/{me}", json={"role": "user"}).status_code == 400


@pytest.mark.parametrize("path", ["/v1/models", "/v1/chat/completions"])
def test_v1_open_on_loopback_until_an_account_exists(fake: FakeWorld, path: str) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "model": "scripted"}

    def call(headers: dict[str, str] | None = None) -> Any:
        if path.endswith("models"):
            return fake.client.get(path, headers=headers)
        fake.engine.enqueue(["ok"])
        return fake.client.post(path, json=body, headers=headers)

    assert call({"Authorization": "Bearer unused"}).status_code == 200
    b = Browser(local_client(fake.app))
    b.signup("owner@example.org")
    r = call()
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert r.json()["error"]["message"].startswith("this server needs an API key")
    wrong = call({"Authorization": "Bearer cove-wrong"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    # a key that was sent but is wrong is named as such, not as a missing key
    assert wrong.json()["error"]["message"].startswith("the API key is not valid")
    key = b.post("/web/keys", json={"name": "cli"}).json()["key"]
    assert call({"Authorization": f"Bearer {key}"}).status_code == 200


def test_v1_needs_a_key_off_loopback_even_without_accounts(tmp_path: Any) -> None:
    from cove.config import Settings
    from cove.engine.fake import ScriptedEngine

    world = FakeWorld(Settings(home=tmp_path, host="0.0.0.0"), ScriptedEngine())
    r = world.client.get("/v1/models", headers={"Authorization": "Bearer unused"})
    assert r.status_code == 401
    assert world.client.get("/web/session").json()["guest"] is False
