"""Back-off for failed sign-ins and API keys, per account and per client address.

:class:`Backoff` counts failures per key. After ``free`` failures, a key must wait before its
next attempt: ``base`` seconds after the first failure beyond ``free``, doubling with each
further one, never more than ``cap`` (exponential back-off, as OWASP's authentication cheat
sheet suggests instead of a hard lock-out). An attempt made while its key waits is refused
(HTTP 429 with ``Retry-After``) without being checked and is not counted, so hammering does
not lengthen the wait. A key without failures for ``forget`` seconds starts afresh.

:class:`SignInGuard` applies it for one server:

- a sign-in waits while its account (the e-mail as typed, whether or not it has an account, so
  a 429 tells nothing about existence) or its client address waits. An attempt counts as a
  failure from the moment it starts, so parallel guesses cannot outrun the count; success
  resets the account's count and takes back that one from the address (never its earlier
  failures: signing in to one's own account does not clear guesses at others).
- an account's wait is bounded by ``cap``, so failures from elsewhere can delay its owner but
  never lock them out; and a browser that has signed in to the account before (it holds a
  device cookie, an HMAC of the e-mail under a per-process key) is not held up by the
  account's failures at all, only by its own address's.
- a request with an unknown API key counts against its client address (a separate count from
  sign-ins, so a misconfigured script does not block the web sign-in on the same machine).

State lives in memory: it resets when the server restarts, and at most ``max_keys`` keys are
kept per count (those idle longest are dropped first). On PostgreSQL it lives in the database
instead (:mod:`cove.auth.shared_throttle`), shared by every process of it, with the device
cookie's key. The clock is injectable, so tests run on
a scripted one.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cove.config import Settings
from cove.errors import RateLimited

if TYPE_CHECKING:
    from cove.store.db import Database

Clock = Callable[[], float]
FORGET_SECONDS = 3600.0
MAX_KEYS = 50_000


@dataclass
class _Count:
    failures: int
    last: float  # clock time of the latest failure


class Backoff:
    """Failures per key and the wait they impose (see the module docstring). Thread-safe."""

    def __init__(self, free: int, base: float, cap: float, *, clock: Clock = time.monotonic,
                 forget: float | None = None, max_keys: int = MAX_KEYS) -> None:
        self.free = free
        self.base = base
        self.cap = cap
        self.clock = clock
        self.forget = forget if forget is not None else max(FORGET_SECONDS, 2 * cap)
        self.max_keys = max_keys
        self._counts: OrderedDict[str, _Count] = OrderedDict()
        self.lock = threading.RLock()

    def delay(self, failures: int) -> float:
        """Seconds a key with ``failures`` failures waits after its latest one: 0 up to
        ``free``, then ``base``, ``2 * base``, ``4 * base``, ... at most ``cap``."""
        if failures <= self.free:
            return 0.0
        return min(self.cap, self.base * 2.0 ** min(failures - self.free - 1, 64))

    def _count(self, key: str) -> _Count | None:
        count = self._counts.get(key)
        if count is not None and self.clock() - count.last > self.forget:
            del self._counts[key]
            return None
        return count

    def wait(self, key: str) -> float:
        """Seconds before ``key`` may try again (0: now)."""
        with self.lock:
            count = self._count(key)
            if count is None:
                return 0.0
            return max(0.0, count.last + self.delay(count.failures) - self.clock())

    def failures(self, key: str) -> int:
        """Failures of ``key`` still remembered."""
        with self.lock:
            count = self._count(key)
            return count.failures if count is not None else 0

    def fail(self, key: str) -> None:
        """Count a failure of ``key`` now."""
        with self.lock:
            count = self._count(key) or _Count(0, 0.0)
            count.failures += 1
            count.last = self.clock()
            self._counts[key] = count
            self._counts.move_to_end(key)
            while len(self._counts) > self.max_keys:
                self._counts.popitem(last=False)

    def forgive(self, key: str) -> None:
        """Take back one failure of ``key`` (an attempt counted in advance that succeeded)."""
        with self.lock:
            count = self._count(key)
            if count is not None:
                count.failures -= 1
                if count.failures <= 0:
                    del self._counts[key]

    def reset(self, key: str) -> None:
        """Forget every failure of ``key``."""
        with self.lock:
            self._counts.pop(key, None)


def _retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))


def _refuse_while_waiting(backoff: Backoff, key: str, what: str) -> None:
    wait = backoff.wait(key)
    if wait > 0:
        raise RateLimited(f"too many {what}; try again in {_retry_after(wait)} s",
                          _retry_after(wait))


class SignInGuard:
    """The sign-in and API-key limits of one server, from ``settings`` (``signin_failures``,
    ``signin_address_failures``, ``signin_backoff``, ``signin_backoff_max``)."""

    def __init__(self, settings: Settings, clock: Clock = time.monotonic,
                 db: Database | None = None) -> None:
        base, cap = settings.signin_backoff, settings.signin_backoff_max
        self._lock = threading.Lock()
        if db is not None:  # shared by every process of the database (PostgreSQL)
            from cove.auth.shared_throttle import SharedBackoff, shared_secret

            self.accounts: Backoff = SharedBackoff(db, "account", settings.signin_failures,
                                                   base, cap)
            self.addresses: Backoff = SharedBackoff(db, "address",
                                                    settings.signin_address_failures, base, cap)
            self.keys: Backoff = SharedBackoff(db, "key", settings.signin_address_failures,
                                               base, cap)
            self._secret = shared_secret(db, "device")
            return
        self.accounts = Backoff(settings.signin_failures, base, cap, clock=clock)
        self.addresses = Backoff(settings.signin_address_failures, base, cap, clock=clock)
        self.keys = Backoff(settings.signin_address_failures, base, cap, clock=clock)
        self._secret = secrets.token_bytes(32)

    @staticmethod
    def account(email: str) -> str:
        """The account key of an e-mail as typed (normalised as accounts are)."""
        return email.strip().lower()

    def device_token(self, email: str) -> str:
        """The device cookie value that marks a browser as having signed in to ``email``."""
        mac = hmac.new(self._secret, self.account(email).encode(), hashlib.sha256)
        return mac.hexdigest()

    def _trusted(self, email: str, device: str | None) -> bool:
        return bool(device) and hmac.compare_digest(device or "", self.device_token(email))

    def begin_signin(self, email: str, address: str, device: str | None = None) -> None:
        """Admit a password check for ``email`` from ``address`` and count it as a failure until
        :meth:`signed_in` says otherwise.

        Raises:
            RateLimited: the account (unless ``device`` is its device cookie) or the address
                must wait.
        """
        account = self.account(email)
        with self._lock:
            wait = self.addresses.wait(address)
            if not self._trusted(email, device):
                wait = max(wait, self.accounts.wait(account))
            if wait > 0:
                raise RateLimited(f"too many failed sign-ins; try again in "
                                  f"{_retry_after(wait)} s", _retry_after(wait))
            self.accounts.fail(account)
            self.addresses.fail(address)

    def signed_in(self, email: str, address: str) -> str:
        """The attempt begun for ``email`` succeeded: reset the account's count, take this
        attempt back from the address's, and return the device cookie value."""
        self.accounts.reset(self.account(email))
        self.addresses.forgive(address)
        return self.device_token(email)

    def check_address(self, address: str) -> None:
        """Refuse a sign-up from an address that must wait (sign-up that finds an e-mail taken
        counts as a failed sign-in, see :meth:`failed_signup`).

        Raises:
            RateLimited: the address must wait.
        """
        _refuse_while_waiting(self.addresses, address, "failed attempts from this address")

    def failed_signup(self, address: str) -> None:
        """Count a sign-up that hit a registered e-mail against ``address``."""
        self.addresses.fail(address)

    def check_key(self, address: str) -> None:
        """Refuse an API-key check from an address that sent too many unknown keys.

        Raises:
            RateLimited: the address must wait.
        """
        _refuse_while_waiting(self.keys, address,
                              "requests with an invalid API key from this address")

    def key_failed(self, address: str) -> None:
        """Count a request with an unknown API key against ``address``."""
        self.keys.fail(address)
