"""Sign-in and API-key back-off on a scripted clock (no sleeps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.auth.throttle import Backoff, SignInGuard
from cove.config import Settings
from cove.errors import RateLimited


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_free_failures_then_doubling_waits_up_to_the_cap(clock: Clock) -> None:
    b = Backoff(free=3, base=1.0, cap=10.0, clock=clock)
    for _ in range(3):
        assert b.wait("k") == 0
        b.fail("k")
    assert b.wait("k") == 0  # three free failures: the fourth attempt is not held up
    waits = []
    for _ in range(6):
        b.fail("k")
        waits.append(b.wait("k"))
        clock.advance(waits[-1])
        assert b.wait("k") == 0
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert b.wait("other") == 0


def test_attempts_while_waiting_are_not_counted(clock: Clock) -> None:
    b = Backoff(free=1, base=2.0, cap=60.0, clock=clock)
    b.fail("k")
    b.fail("k")
    assert b.wait("k") == 2.0
    clock.advance(1.5)
    assert b.wait("k") == pytest.approx(0.5)  # asking does not lengthen the wait
    assert b.failures("k") == 2


def test_reset_forgive_and_forgetting(clock: Clock) -> None:
    b = Backoff(free=1, base=1.0, cap=100.0, clock=clock, forget=50.0)
    for _ in range(4):
        b.fail("k")
    assert b.wait("k") == 4.0
    b.forgive("k")
    assert b.failures("k") == 3 and b.wait("k") == 2.0
    b.reset("k")
    assert b.failures("k") == 0 and b.wait("k") == 0
    for _ in range(4):
        b.fail("k")
    clock.advance(50.5)  # idle longer than `forget`: a fresh start
    assert b.failures("k") == 0 and b.wait("k") == 0


def test_memory_is_bounded(clock: Clock) -> None:
    b = Backoff(free=0, base=1.0, cap=10.0, clock=clock, max_keys=3)
    for key in ("a", "b", "c", "d"):
        b.fail(key)
    assert b.failures("a") == 0 and b.failures("d") == 1  # the longest idle was dropped


def guard(clock: Clock, tmp_path: Path, **kw: object) -> SignInGuard:
    settings = Settings(home=tmp_path, signin_failures=3, signin_address_failures=5,
                        signin_backoff=1.0, signin_backoff_max=30.0, **kw)  # type: ignore[arg-type]
    return SignInGuard(settings, clock=clock)


def fail_signins(g: SignInGuard, email: str, address: str, n: int) -> None:
    for _ in range(n):
        g.begin_signin(email, address)  # counted as failed until signed_in says otherwise


def test_signin_waits_per_account_and_per_address(clock: Clock, tmp_path: Path) -> None:
    g = guard(clock, tmp_path)
    fail_signins(g, "Ada@Example.org", "10.0.0.1", 4)
    with pytest.raises(RateLimited) as e:
        g.begin_signin("ada@example.org ", "10.0.0.2")  # the account waits, from any address
    assert e.value.status == 429 and e.value.headers["Retry-After"] == "1"
    g.begin_signin("bob@example.org", "10.0.0.1")
    g.begin_signin("carol@example.org", "10.0.0.1")  # after 5 free failures, one more
    with pytest.raises(RateLimited):
        g.begin_signin("dave@example.org", "10.0.0.1")  # then the address waits, any account


def test_an_unknown_email_is_limited_like_a_real_one(clock: Clock, tmp_path: Path) -> None:
    g = guard(clock, tmp_path)
    fail_signins(g, "nobody@example.org", "10.0.0.1", 4)
    with pytest.raises(RateLimited) as e:
        g.begin_signin("nobody@example.org", "10.0.0.9")
    assert e.value.retry_after == 1  # the same answer as for an account that exists


def test_success_resets_the_account_not_the_address(clock: Clock, tmp_path: Path) -> None:
    g = guard(clock, tmp_path)
    fail_signins(g, "ada@example.org", "10.0.0.1", 2)
    fail_signins(g, "bob@example.org", "10.0.0.1", 2)
    g.begin_signin("ada@example.org", "10.0.0.1")
    g.signed_in("ada@example.org", "10.0.0.1")
    assert g.accounts.failures("ada@example.org") == 0
    assert g.accounts.failures("bob@example.org") == 2
    # the four failures from this address stay: signing in to one's own account does not clear
    # guesses at others (only the successful attempt itself is taken back)
    assert g.addresses.failures("10.0.0.1") == 4


def test_parallel_attempts_cannot_outrun_the_count(clock: Clock, tmp_path: Path) -> None:
    g = guard(clock, tmp_path)
    admitted = 0
    for _ in range(10):  # none has finished its password check yet
        try:
            g.begin_signin("ada@example.org", f"10.0.1.{admitted}")
            admitted += 1
        except RateLimited:
            pass
    assert admitted == 4  # the 3 free failures and one more, then the account waits


def test_an_attacker_cannot_lock_the_owner_out(clock: Clock, tmp_path: Path) -> None:
    g = guard(clock, tmp_path)
    g.begin_signin("ada@example.org", "192.168.1.5")
    device = g.signed_in("ada@example.org", "192.168.1.5")  # Ada's browser, once
    waits = []
    for i in range(40):  # an attacker elsewhere fails as often as allowed
        try:
            g.begin_signin("ada@example.org", f"203.0.113.{i}")
        except RateLimited as e:
            waits.append(e.retry_after)
            clock.advance(e.retry_after)
            g.begin_signin("ada@example.org", f"203.0.113.{i}")
    assert max(waits) == 30  # bounded: from a new browser, Ada waits at most the cap
    with pytest.raises(RateLimited):
        g.begin_signin("ada@example.org", "192.168.1.5")  # a new browser at Ada's address
    g.begin_signin("ada@example.org", "192.168.1.5", device)  # her own browser: no wait
    g.signed_in("ada@example.org", "192.168.1.5")
    g.begin_signin("ada@example.org", "203.0.113.99")  # and the account's count is reset
    forged = SignInGuard(Settings(home=tmp_path), clock=clock).device_token("ada@example.org")
    assert forged != device  # another server's (or a restarted one's) cookie is not trusted
    fail_signins(g, "ada@example.org", "203.0.113.98", 3)
    with pytest.raises(RateLimited):
        g.begin_signin("ada@example.org", "198.51.100.1", forged)


def test_api_keys_are_limited_per_address(clock: Clock, tmp_path: Path) -> None:
    g = guard(clock, tmp_path)
    for _ in range(5):
        g.check_key("10.0.0.1")
        g.key_failed("10.0.0.1")
    g.check_key("10.0.0.1")  # five free
    g.key_failed("10.0.0.1")
    with pytest.raises(RateLimited) as e:
        g.check_key("10.0.0.1")
    assert e.value.retry_after == 1
    g.check_key("10.0.0.2")
    g.begin_signin("ada@example.org", "10.0.0.1")  # a separate count from sign-ins
    clock.advance(1)
    g.check_key("10.0.0.1")
