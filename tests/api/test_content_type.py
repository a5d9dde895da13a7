"""A JSON body is accepted on /api and /v1 whatever its Content-Type (as `curl -d` sends it),
from non-browser clients only; the web routes keep their CSRF protection."""

from __future__ import annotations

import json

from tests.conftest import FakeWorld
from tests.web.helpers import Browser

FORM = {"content-type": "application/x-www-form-urlencoded"}


def test_curl_style_bodies_are_read_as_json(fake: FakeWorld) -> None:
    fake.engine.enqueue(["Hi"])
    r = fake.client.post("/api/generate", headers=FORM, content=json.dumps(
        {"model": "scripted", "prompt": "hello", "stream": False}))
    assert r.status_code == 200, r.text
    assert r.json()["response"] == "Hi"
    fake.engine.enqueue(["Yo"])
    r = fake.client.post("/v1/chat/completions", headers={"content-type": "text/plain"},
                         content=json.dumps({"model": "scripted", "messages": [
                             {"role": "user", "content": "hey"}]}))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Yo"


def test_a_body_that_is_not_json_is_a_clear_error(fake: FakeWorld) -> None:
    r = fake.client.post("/api/generate", headers=FORM, content="model=scripted&prompt=hi")
    assert r.status_code == 400 and "error" in r.json()
    r = fake.client.post("/v1/chat/completions", headers=FORM, content="a=b")
    assert r.status_code == 400 and r.json()["error"]["message"]


def test_browser_cross_site_posts_are_not_upgraded(fake: FakeWorld) -> None:
    body = json.dumps({"model": "scripted", "prompt": "hello", "stream": False})
    for origin in ("http://evil.example", "http://localhost:3000"):
        r = fake.client.post("/api/generate", content=body,
                             headers={**FORM, "origin": origin})
        assert r.status_code != 200
    assert fake.engine.history == []  # nothing was generated


def test_web_routes_keep_requiring_the_csrf_token(fake: FakeWorld) -> None:
    alice = Browser(fake.client)
    assert alice.signup("alice@example.org").status_code == 200
    body = json.dumps({"title": "x"})
    r = fake.client.post("/web/conversations", content=body, headers=FORM)
    assert r.status_code == 403
    r = fake.client.post("/web/conversations", content=body,
                         headers={"content-type": "application/json"})
    assert r.status_code == 403
    assert alice.post("/web/conversations", json={"title": "x"}).status_code == 200


def test_malformed_json_sent_the_curl_way_says_what_is_wrong(fake: FakeWorld) -> None:
    """`curl -d '{"model": "x", messages: []}'` (form content type, unquoted key) is reported as
    malformed JSON with the decoder's reason and position, not as "must be a JSON object"."""
    bad = '{"model": "scripted", messages: []}'
    r = fake.client.post("/v1/chat/completions", headers=FORM, content=bad)
    assert r.status_code == 400
    msg = r.json()["error"]["message"]
    assert msg.startswith("malformed JSON body: Expecting property name"), msg
    assert "at character 22" in msg
    r = fake.client.post("/api/chat", headers=FORM, content=bad)
    assert r.status_code == 400 and r.json()["error"].startswith("malformed JSON body: "), r.text


def test_an_empty_body_is_named_as_such(fake: FakeWorld) -> None:
    for path in ("/v1/chat/completions", "/api/generate"):
        r = fake.client.post(path, headers={"content-type": "application/json"}, content=b"")
        assert r.status_code == 400
        body = r.json()["error"]
        msg = body["message"] if isinstance(body, dict) else body
        assert msg == "the request body is empty: send a JSON object", msg


def test_a_web_body_without_the_json_type_says_which_type_to_send(fake: FakeWorld) -> None:
    """`curl -d '{...}'` to a /web route (form content type): not upgraded, and the 400 names
    the header to add."""
    r = fake.client.post("/web/signup", headers=FORM, content=json.dumps(
        {"email": "me@example.org", "password": "a long enough password"}))
    assert r.status_code == 400
    assert "Content-Type: application/json" in r.json()["error"]["message"], r.text
