"""Which backend serves a request: health, circuit breakers, affinity, load, concurrency caps,
and the per-backend figures ``cove backend list`` and ``/metrics`` show.

For each request the router orders the pool's backends:

1. backends whose breaker is open, and those at their ``max_concurrency``, are left out (a
   pool with none left is :class:`~cove.errors.BackendUnavailable`, 503);
2. with an affinity key (the conversation), the first choice is the key's member on a
   consistent-hash ring with bounded loads (:mod:`cove.backends.ring`), so a conversation
   returns to the replica that holds its prefix in cache; without one, the backend with the
   fewest requests in flight (relative to its weight);
3. the others follow, fewest in flight first: they are tried in turn when an attempt fails
   before its first streamed byte.

**Breaker.** ``breaker_failures`` failures in a row (connection refused, timeout, 5xx, garbage,
a broken stream) open a backend's breaker for ``breaker_cooldown`` seconds: no request goes
there. Then a health probe (``GET {url}/models``) runs; success closes the breaker, failure
keeps it open for another cooldown. A success of any request resets the count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from cove.backends.registry import Backend, BackendRegistry
from cove.backends.ring import Ring
from cove.errors import BackendUnavailable

log = logging.getLogger("cove.backends")


@dataclass
class BackendStats:
    """Live state and figures of one backend. Times are seconds (``time.monotonic()`` for
    ``open_until``); latency is from sending a request to its last byte, ``ttft`` to its first
    streamed event."""

    backend: Backend
    in_flight: int = 0
    requests: int = 0
    errors: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_sum: float = 0.0
    ttft_sum: float = 0.0
    ttft_count: int = 0
    failures: int = 0  # in a row
    open_until: float | None = None  # breaker open until then (None: closed)
    probing: bool = False
    last_error: str = ""
    opened: int = 0  # times the breaker opened
    removed: bool = False  # gone from backends.json: no new request; those in flight finish

    @property
    def state(self) -> str:
        """``closed`` (serving), ``open`` (cooling down), ``probing``, or ``draining`` (removed
        from the registry, requests still in flight)."""
        if self.removed:
            return "draining"
        if self.open_until is None:
            return "closed"
        return "probing" if self.probing else "open"

    def summary(self) -> dict[str, Any]:
        """A JSON-ready view for ``cove backend list`` (``/backends/status``)."""
        done = max(1, self.requests)
        return {
            "name": self.backend.name, "url": self.backend.url,
            "models": [self.backend.prefix + m for m in self.backend.models],
            "state": self.state, "in_flight": self.in_flight, "requests": self.requests,
            "errors": self.errors, "retries": self.retries,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "mean_latency_s": round(self.latency_sum / done, 3) if self.requests else None,
            "mean_ttft_s": round(self.ttft_sum / self.ttft_count, 3) if self.ttft_count
            else None,
            "breaker_opened": self.opened, "last_error": self.last_error,
        }


@dataclass
class RouterConfig:
    """Tuning of the router (from the settings ``backend_*``)."""

    breaker_failures: int = 3
    breaker_cooldown: float = 10.0
    balance: float = 1.25
    connect_timeout: float = 5.0
    first_byte_timeout: float = 120.0


@dataclass
class Attempt:
    """One backend chosen for one try of a request."""

    stats: BackendStats
    upstream: str  # the model's name on that backend


@dataclass
class Router:
    """Routes requests for remote models over the registry's backends."""

    registry: BackendRegistry
    config: RouterConfig = field(default_factory=RouterConfig)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.stats: dict[str, BackendStats] = {b.name: BackendStats(b)
                                                for b in self.registry.backends}
        self.pools = self.registry.pools()
        self._rings: dict[str, Ring] = {}
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._probes: set[asyncio.Task[None]] = set()
        self._draining: list[BackendStats] = []

    def update(self, registry: BackendRegistry) -> None:
        """Route over ``registry`` from now on (``backends.json`` changed). A backend that
        remains (by name) keeps its figures and breaker state, with its new settings; when
        its URL changed, its breaker closes (it is another server). A removed one takes no new
        request, and its requests in flight finish (it shows as ``draining`` until then)."""
        stats: dict[str, BackendStats] = {}
        for b in registry.backends:
            s = self.stats.get(b.name)
            if s is None:
                s = BackendStats(b)
            elif s.backend != b:
                if s.backend.url != b.url:
                    s.open_until, s.failures = None, 0
                s.backend = b
            stats[b.name] = s
        for name, s in self.stats.items():
            if name not in stats:
                s.removed = True
                if s.in_flight:
                    self._draining.append(s)
        self.registry, self.stats, self.pools, self._rings = registry, stats, \
            registry.pools(), {}

    # -- choosing ---------------------------------------------------------------------------

    def serves(self, model: str | None) -> bool:
        """Whether ``model`` is a remote model's public name."""
        return bool(model) and model in self.pools

    def plan(self, model: str, key: str | None) -> list[Attempt]:
        """The backends to try for ``model``, best first (see the module doc).

        Raises:
            BackendUnavailable: none is usable now (breakers open, caps reached).
        """
        pool, stats = self.pools.get(model, []), self.stats  # (replaced whole by update)
        now = self.clock()
        members = [(s, up) for b, up in pool if (s := stats.get(b.name)) is not None]
        usable = [m for m in members if self._usable(m[0], now)]
        if not usable:
            self._probe_due(now)
            wait = [s.open_until - now for s, _ in members if s.open_until is not None]
            full = [s.backend.name for s, _ in members if s.open_until is None]
            why = (f"at their concurrency limit ({', '.join(full)})" if full else
                   "unreachable or failing (circuit breaker open)")
            raise BackendUnavailable(
                f"no backend can serve {model} now: every one is {why}",
                retry_after=max(1, round(min(wait))) if wait and not full else 1)

        def load(s: BackendStats) -> float:
            return s.in_flight / s.backend.weight

        rest = sorted(usable, key=lambda m: (load(m[0]), m[0].requests))
        first = rest[0]
        if key is not None and len(usable) > 1:
            ring = self._ring(model, pool)
            names = [b.name for b, _ in pool]
            chosen = ring.choose(
                key, lambda i: stats[names[i]].in_flight if names[i] in stats else 0,
                lambda i: any(u[0].backend.name == names[i] for u in usable),
                self.config.balance)
            if chosen is not None:
                first = next(m for m in usable if m[0].backend.name == names[chosen])
        order = [first, *(m for m in rest if m is not first)]
        return [Attempt(s, up) for s, up in order]

    def _usable(self, s: BackendStats, now: float) -> bool:
        if s.open_until is not None:
            return False
        cap = s.backend.max_concurrency
        return not cap or s.in_flight < cap

    def _ring(self, model: str, pool: list[tuple[Backend, str]]) -> Ring:
        ring = self._rings.get(model)
        if ring is None:
            ring = self._rings[model] = Ring([b.name for b, _ in pool],
                                             [b.weight for b, _ in pool])
        return ring

    # -- outcomes ---------------------------------------------------------------------------

    def started(self, s: BackendStats) -> float:
        """A request to ``s`` begins; returns its start time."""
        s.in_flight += 1
        return self.clock()

    def finished(self, s: BackendStats, began: float, *, ok: bool, error: str = "",
                 prompt_tokens: int = 0, completion_tokens: int = 0,
                 first_byte: float | None = None, retried: bool = False) -> None:
        """A request to ``s`` ended (``ok``: it ran to its end, or the client left). A failure
        counts towards the breaker; ``retried`` says another backend takes it over."""
        s.in_flight = max(0, s.in_flight - 1)
        s.requests += 1
        s.latency_sum += self.clock() - began
        s.prompt_tokens += prompt_tokens
        s.completion_tokens += completion_tokens
        if first_byte is not None:
            s.ttft_sum += first_byte - began
            s.ttft_count += 1
        if retried:
            s.retries += 1
        if ok:
            s.failures = 0
            return
        s.errors += 1
        s.failures += 1
        s.last_error = error
        log.warning("backend %s failed: %s", s.backend.name, error)
        if s.failures >= self.config.breaker_failures and s.open_until is None:
            s.open_until = self.clock() + self.config.breaker_cooldown
            s.opened += 1
            log.warning("backend %s: circuit breaker open for %.0f s", s.backend.name,
                        self.config.breaker_cooldown)
        self._schedule_probe(s)

    # -- health probes ----------------------------------------------------------------------

    def _probe_due(self, now: float) -> None:
        for s in self.stats.values():
            if s.open_until is not None and now >= s.open_until and not s.probing:
                self._schedule_probe(s)

    def _schedule_probe(self, s: BackendStats) -> None:
        if s.open_until is None or s.probing:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        s.probing = True
        task = loop.create_task(self._probe_loop(s))
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def _probe_loop(self, s: BackendStats) -> None:
        """Wait out the cooldown, probe, and repeat until the backend answers."""
        try:
            while s.open_until is not None and not s.removed:
                await asyncio.sleep(max(0.0, s.open_until - self.clock()))
                if s.open_until is None or s.removed:  # closed by a registry update
                    break
                if await self.probe(s.backend):
                    s.open_until = None
                    s.failures = 0
                    log.info("backend %s answers again: circuit breaker closed", s.backend.name)
                else:
                    s.open_until = self.clock() + self.config.breaker_cooldown
        finally:
            s.probing = False

    async def probe(self, backend: Backend) -> bool:
        """Whether ``GET {url}/models`` answers 200 with JSON within the connect timeout."""
        try:
            r = await self.client().get(f"{backend.url}/models", headers=self.headers(backend),
                                        timeout=self.config.connect_timeout)
            return r.status_code == 200 and isinstance(r.json(), dict)
        except (httpx.HTTPError, ValueError, OSError):
            return False

    # -- the HTTP client --------------------------------------------------------------------

    def client(self) -> httpx.AsyncClient:
        """The shared client of the current event loop (no proxies from the environment: a
        prompt goes only to the backend named)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(
                trust_env=False, follow_redirects=False,
                timeout=httpx.Timeout(self.config.first_byte_timeout,
                                      connect=self.config.connect_timeout),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=32))
            self._loop = loop
        return self._client

    @staticmethod
    def headers(backend: Backend) -> dict[str, str]:
        key = backend.api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    async def aclose(self) -> None:
        for task in list(self._probes):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def summaries(self) -> list[dict[str, Any]]:
        """The summaries of the registry's backends, then of removed ones still draining."""
        self._draining = [s for s in self._draining if s.in_flight]
        return [s.summary() for s in [*self.stats.values(), *self._draining]]
