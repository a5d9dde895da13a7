"""Sign-in hardening through the routes: an unknown e-mail costs the same argon2 work as a wrong
password; failed sign-ins and invalid API keys are answered 429 with Retry-After in each API's
error shape; an attacker elsewhere cannot lock an account's owner out. The back-off runs on a
scripted clock."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher, extract_parameters

from cove.auth import secrets
from cove.auth.throttle import SignInGuard
from cove.config import Settings
from tests.conftest import FakeWorld, local_client
from tests.unit.test_throttle import Clock
from tests.web.helpers import PASSWORD, Browser

LIMITS = {"signin_failures": 3, "signin_address_failures": 6, "signin_backoff": 2.0,
          "signin_backoff_max": 60.0}


@pytest.fixture
def clock(fake: FakeWorld) -> Clock:
    clock = Clock()
    settings: Settings = fake.app.state.settings
    fake.app.state.signin_guard = SignInGuard(settings.model_copy(update=LIMITS), clock=clock)
    return clock


def at(fake: FakeWorld, address: str) -> Browser:
    """A browser of its own (cookies) at client address ``address``."""
    return Browser(local_client(fake.app, client=(address, 40000)))


def login(b: Browser, email: str, password: str = "wrong password!") -> Any:
    return b.client.post("/web/login", json={"email": email, "password": password})


def assert_429(r: Any, shape: str) -> int:
    assert r.status_code == 429, r.text
    retry = int(r.headers["retry-after"])
    assert retry >= 1
    if shape == "ollama":
        assert set(r.json()) == {"error"} and isinstance(r.json()["error"], str)
    else:
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"}
        assert (err["type"], err["code"]) == ("rate_limit_error", "rate_limit_exceeded")
        assert str(retry) in err["message"]
    return retry


def test_unknown_or_disabled_account_costs_one_argon2_verification_too(
        fake: FakeWorld, alice: Browser, bob: Browser, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = PasswordHasher.verify

    def counting(self: PasswordHasher, hash: str, password: str) -> bool:
        calls.append(hash)
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    bob_id = bob.get("/web/session").json()["user"]["id"]
    assert alice.patch(f"/web/admin/users/{bob_id}", json={"disabled": True}).status_code == 200
    answers = {}
    for case, email in (("wrong password", "alice@example.org"),
                        ("unknown e-mail", "nobody@example.org"),
                        ("disabled account", "bob@example.org")):
        calls.clear()
        r = login(at(fake, f"10.0.0.{len(answers)}"), email, PASSWORD + "!")
        answers[case] = (r.status_code, r.json())
        assert len(calls) == 1, case  # the same work in every case, so the same time
        assert extract_parameters(calls[0]) == extract_parameters(
            secrets.hash_password("any password"))
    assert len(set(map(str, answers.values()))) == 1  # and the same answer
    assert answers["unknown e-mail"][0] == 401


def test_failed_signins_get_429_with_retry_after(fake: FakeWorld, alice: Browser,
                                                 clock: Clock) -> None:
    b = at(fake, "10.0.0.1")
    for _ in range(4):  # three free failures and one more
        assert login(b, "alice@example.org").status_code == 401
    retry = assert_429(login(b, "alice@example.org", PASSWORD), "openai")
    assert retry == 2
    # an unknown e-mail is limited exactly alike (nothing tells it apart)
    for _ in range(4):
        login(at(fake, "10.0.1.1"), "nobody@example.org")
    assert assert_429(login(at(fake, "10.0.1.2"), "nobody@example.org"), "openai") == 2
    clock.advance(retry)
    r = login(b, "alice@example.org", PASSWORD)
    assert r.status_code == 200  # the wait is over; success resets the account's count ...
    for _ in range(3):
        assert login(at(fake, "10.0.2.1"), "alice@example.org").status_code == 401
    assert login(at(fake, "10.0.2.1"), "alice@example.org").status_code == 401
    assert_429(login(at(fake, "10.0.2.1"), "alice@example.org"), "openai")  # ... to zero


def test_an_address_guessing_many_accounts_waits(fake: FakeWorld, clock: Clock) -> None:
    b = at(fake, "10.0.0.7")
    for i in range(7):
        assert login(b, f"user{i}@example.org").status_code == 401
    assert_429(login(b, "user99@example.org"), "openai")
    assert login(at(fake, "10.0.0.8"), "user99@example.org").status_code == 401


def test_an_attacker_elsewhere_cannot_lock_the_owner_out(fake: FakeWorld, clock: Clock) -> None:
    owner = at(fake, "192.168.1.5")
    assert owner.signup("ada@example.org").status_code == 200  # sets the device cookie
    attacker = at(fake, "203.0.113.7")
    retries = []
    for i in range(12):  # fail as often as allowed, from ever new addresses
        r = login(at(fake, f"203.0.113.{i}"), "ada@example.org")
        if r.status_code == 429:
            retries.append(int(r.headers["retry-after"]))
            clock.advance(retries[-1])
            r = login(at(fake, f"203.0.113.{i}"), "ada@example.org")
        assert r.status_code == 401
    assert retries == [2, 4, 8, 16, 32, 60, 60, 60]  # growing, bounded by signin_backoff_max
    assert_429(login(attacker, "ada@example.org"), "openai")
    # a new browser of Ada's waits too, at most the cap ...
    assert assert_429(login(at(fake, "192.168.1.5"), "ada@example.org", PASSWORD), "openai") <= 60
    # ... but the one she signed in with before is not held up by the attacker's failures
    assert login(owner, "ada@example.org", PASSWORD).status_code == 200
    assert login(attacker, "ada@example.org").status_code == 401  # the count was reset


def test_invalid_api_keys_get_429_in_each_apis_shape(fake: FakeWorld, alice: Browser,
                                                     clock: Clock) -> None:
    client = local_client(fake.app, client=("10.0.0.3", 40000))
    bad = {"Authorization": "Bearer cove-not-a-key"}
    paths = ["/v1/models", "/api/tags", "/web/conversations"]
    for i in range(7):  # six free failures and one more, on any of the APIs
        assert client.get(paths[i % 3], headers=bad).status_code == 401
    assert_429(client.get("/v1/models", headers=bad), "openai")
    assert_429(client.get("/api/tags", headers=bad), "ollama")
    assert_429(client.post("/api/chat", headers=bad, json={}), "ollama")
    assert_429(client.get("/web/conversations", headers=bad), "openai")
    # a valid key from the same address still passes (one misconfigured local program must
    # not lock out the others); other addresses' invalid keys are counted apart
    key = alice.post("/web/keys", json={"name": "cli"}).json()["key"]
    good = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/tags", headers=good).status_code == 200
    assert_429(client.get("/api/tags", headers=bad), "ollama")
    other = local_client(fake.app, client=("10.0.0.4", 40000))
    assert other.get("/api/tags", headers=bad).status_code == 401
    # sign-ins from the address are a separate count
    assert login(Browser(client), "alice@example.org", PASSWORD).status_code == 200
    clock.advance(2)
    assert client.get("/api/tags", headers=bad).status_code == 401  # the wait is over


def test_signup_says_an_email_is_taken_but_not_in_bulk(fake: FakeWorld, alice: Browser,
                                                       clock: Clock) -> None:
    b = at(fake, "10.0.0.5")
    r = b.signup("alice@example.org")
    assert r.status_code == 409 and "already exists" in r.json()["error"]["message"]
    for _ in range(6):
        assert b.signup("alice@example.org").status_code == 409
    assert_429(b.signup("someone-new@example.org"), "openai")
    assert_429(login(b, "alice@example.org", PASSWORD), "openai")


def test_wrong_passwords_to_delete_an_account_count_too(fake: FakeWorld, alice: Browser,
                                                        clock: Clock) -> None:
    alice.client.cookies.delete("cove_device")  # a stolen session cookie, not Alice's browser
    for _ in range(4):
        r = alice.delete("/web/account", json={"password": "not my password"})
        assert r.status_code == 401
    assert_429(alice.delete("/web/account", json={"password": PASSWORD}), "openai")
    assert alice.get("/web/session").json()["user"] is not None
