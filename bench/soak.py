"""Soak test: many clients for minutes, every kind of request, faults included.

N clients (default 32) run for T minutes against a Cove server this script starts on a loopback
port with a fresh ``COVE_HOME`` (or ``--url`` for a running one). Each client loops: it picks a
kind of request at random (its own seeded generator), sends it, checks the answer
(``bench/soak_kinds.py``), and waits a moment; after a 503 with ``Retry-After`` it waits as told
(at most 5 s).
Kinds: OpenAI and Ollama streamed chats (half of them follow-up turns), completions (streamed or
not), ``/api/generate``, ``/api/embed`` and ``/v1/embeddings`` (when the route exists), clients
that disconnect mid-stream, bad requests (malformed JSON, bad fields, unknown model: 4xx in the
API's shape), and stored web app chats. The server started here has ``--accounts`` web accounts
(4): each client belongs to one and sends its API key (which the store checks on every request)
and has a web session of it; each account is one client of the scheduler's fair shares.

A *failure* is anything but the expected answer: a 5xx, a 503 without ``Retry-After``, another
wrong status, a malformed stream, a stream that ends without its final event, an error event in
a stream, a wrong error or answer shape, a stored answer that differs from the streamed one, a
transport error, or no answer within ``--deadline`` seconds. After the run, the server must have
no generation left running. The report gives requests by outcome, failures by kind with
examples, p50/p95 latency per kind, and the server's RSS at start, middle and end; it is added
to docs/reliability.md as a new section (``--out``).

Bounded: each client stops starting requests after ``--minutes`` or ``--max-requests``; every
request has a deadline; only loopback addresses.

Usage: .venv/bin/python bench/soak.py [--clients 32] [--minutes 3] [--db sqlite|postgres|both]
       [--accounts 4] [--seed 0] [--env COVE_PROMPT_CACHE_MB=64 ...]
       [--url URL [--api-key K] [--pid PID]]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import resource
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine  # noqa: E402
from bench.reliability import (  # noqa: E402
    DATABASES,
    ENV_OPTION,
    MODEL,
    REPORT,
    CoveServer,
    append_run,
    log_in,
    median,
    on_databases,
    parse_env,
    percentile,
    rss_mib,
    sign_up,
    table,
)
from bench.soak_checks import Failure, Overloaded  # noqa: E402
from bench.soak_kinds import SoakClient  # noqa: E402


@dataclass
class Record:
    kind: str
    outcome: str  # ok, overloaded, failure
    seconds: float
    failure: str = ""
    detail: str = ""


@dataclass
class SoakResult:
    label: str
    records: list[Record]
    wall: float
    rss: list[tuple[float, float]]  # (seconds since start, MiB)
    left_running: int | None  # generations still pending after the run (None: not known)
    embeddings_v1: bool
    client_cpu: float
    server_log: str = ""  # the server's log, when this script started it


async def _one(kind: str, request: Callable[[], Awaitable[None]], deadline: float) -> Record:
    t0 = time.perf_counter()
    try:
        await asyncio.wait_for(request(), deadline)
        return Record(kind, "ok", time.perf_counter() - t0)
    except Overloaded as e:
        return Record(kind, "overloaded", time.perf_counter() - t0, detail=str(e.retry_after))
    except Failure as e:
        return Record(kind, "failure", time.perf_counter() - t0, e.kind, e.detail)
    except (TimeoutError, httpx.TimeoutException):
        return Record(kind, "failure", time.perf_counter() - t0, "hang",
                      f"no complete answer within {deadline:.0f} s")
    except httpx.TransportError as e:
        return Record(kind, "failure", time.perf_counter() - t0, "transport error",
                      f"{type(e).__name__}: {e}")
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        # an answer the checks could not even take apart (not JSON, a missing field)
        return Record(kind, "failure", time.perf_counter() - t0, "wrong answer shape",
                      f"{type(e).__name__}: {e}")


async def _client(c: SoakClient, stop_at: float, max_requests: int, deadline: float,
                  records: list[Record]) -> None:
    kinds = c.kinds()
    names = list(kinds)
    weights = [kinds[n][0] for n in names]
    for _ in range(max_requests):
        if time.monotonic() >= stop_at:
            return
        name = c.rng.choices(names, weights)[0]
        rec = await _one(name, kinds[name][1], deadline)
        records.append(rec)
        if rec.outcome == "overloaded":
            await asyncio.sleep(min(float(rec.detail), 5.0) * c.rng.uniform(0.5, 1.0))
        else:
            await asyncio.sleep(c.rng.uniform(0.0, 0.2))


async def _has_route(api: httpx.AsyncClient, path: str) -> bool:
    """Whether the server has the route POST ``path`` (an unknown route is 404 ``not_found``)."""
    r = await api.post(path, json={"model": MODEL, "input": "probe"})
    return r.status_code != 404 or "model_not_found" in r.text


async def _rss_sampler(pid: int | None, t0: float, out: list[tuple[float, float]]) -> None:
    while pid is not None:
        mib = rss_mib(pid)
        if mib is not None:
            out.append((time.monotonic() - t0, mib))
        await asyncio.sleep(2.0)


async def _pending(api: httpx.AsyncClient) -> int:
    r = await api.get("/health")
    return sum(m["pending"] for m in r.json().get("loaded", []))


async def _accounts(stack: AsyncExitStack, base: str, args: argparse.Namespace, label: str,
                    timeout: httpx.Timeout,
                    ) -> tuple[list[httpx.AsyncClient], list[httpx.AsyncClient]]:
    """Sign up ``args.accounts`` web accounts (the server then needs API keys); an API client
    with its own key for each, and for client i a web session of account ``i % accounts``."""
    apis, webs = [], []
    for a in range(args.accounts):
        async with httpx.AsyncClient(base_url=base, timeout=timeout) as c:
            await sign_up(c, f"soak-{label}-{a}@example.org")
            r = await c.post("/web/keys", json={"name": "soak"})
            r.raise_for_status()
        apis.append(await stack.enter_async_context(httpx.AsyncClient(
            base_url=base, limits=httpx.Limits(max_connections=2 * args.clients + 4),
            timeout=timeout, headers={"Authorization": f"Bearer {r.json()['key']}"})))
    for i in range(args.clients):
        w = await stack.enter_async_context(httpx.AsyncClient(
            base_url=base, limits=httpx.Limits(max_connections=2), timeout=timeout))
        await log_in(w, f"soak-{label}-{i % args.accounts}@example.org")
        webs.append(w)
    return apis, webs


async def soak(base: str, args: argparse.Namespace, pid: int | None, web: bool,
               api_key: str | None, label: str) -> SoakResult:
    """Run the clients against ``base``. ``web``: with accounts (:func:`_accounts`), whose
    clients use the web app too; else one API client with ``api_key`` (if any)."""
    timeout = httpx.Timeout(args.deadline, connect=10)
    async with AsyncExitStack() as stack:
        if web:
            apis, webs = await _accounts(stack, base, args, label, timeout)
        else:
            headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
            apis = [await stack.enter_async_context(httpx.AsyncClient(
                base_url=base, limits=httpx.Limits(max_connections=2 * args.clients + 4),
                timeout=timeout, headers=headers))]
            webs = []
        api = apis[0]
        v1_embed = await _has_route(api, "/v1/embeddings")
        # warm-up: load the chat and the embedding model before measuring
        for path, body in (("/v1/chat/completions", {"model": MODEL, "max_tokens": 4, "messages":
                                                     [{"role": "user", "content": "hi"}]}),
                           ("/api/embed", {"model": MODEL, "input": "hi"})):
            (await api.post(path, json=body)).raise_for_status()
        clients = [SoakClient(apis[i % len(apis)], webs[i] if webs else None,
                              random.Random(args.seed * 1000 + i), v1_embed)
                   for i in range(args.clients)]
        records: list[Record] = []
        rss: list[tuple[float, float]] = []
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        sampler = asyncio.ensure_future(_rss_sampler(pid, t0, rss))
        await asyncio.gather(*(_client(c, t0 + args.minutes * 60, args.max_requests,
                                       args.deadline, records) for c in clients))
        wall = time.monotonic() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        left: int | None = None
        for _ in range(40):  # every generation must end once its client is gone
            left = await _pending(api)
            if left == 0:
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(2.1)  # one more RSS sample after the load
        sampler.cancel()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return SoakResult(label, records, wall, rss, left, v1_embed, cpu)


EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*)$")


def server_exceptions(log: str) -> Counter[str]:
    """The final line of every traceback in a server log (``ValueError: ...``), counted."""
    found: Counter[str] = Counter()
    in_tb = False
    for line in log.splitlines():
        if line.startswith("Traceback (most recent call last)"):
            in_tb = True
        elif in_tb and (m := EXCEPTION_LINE.match(line)):
            found[m.group(1)[:200]] += 1
            in_tb = False
    return found


def report(res: SoakResult, settings: str, load: str) -> str:
    """The markdown section of one run."""
    recs = res.records
    fails = [r for r in recs if r.outcome == "failure"]
    by_kind: dict[str, list[Record]] = defaultdict(list)
    for r in recs:
        by_kind[r.kind].append(r)
    rows = []
    for kind in sorted(by_kind):
        rs = by_kind[kind]
        ok = [r.seconds * 1000 for r in rs if r.outcome == "ok"]
        rows.append([kind, str(len(rs)), str(len(ok)),
                     str(sum(r.outcome == "overloaded" for r in rs)),
                     str(sum(r.outcome == "failure" for r in rs)),
                     f"{median(ok):.0f}", f"{percentile(ok, 0.95):.0f}"])
    examples: dict[str, list[str]] = defaultdict(list)
    for r in fails:
        examples[r.failure].append(f"{r.kind}: {r.detail}")
    fail_rows = [[k, str(len(v)), "<br>".join(e.replace("|", "\\|")[:300] for e in v[:3])]
                 for k, v in sorted(examples.items(), key=lambda kv: -len(kv[1]))]
    overloaded = sum(r.outcome == "overloaded" for r in recs)
    no_retry = len(examples.get("503 without Retry-After", []))
    exc = server_exceptions(res.server_log) if res.server_log else Counter()
    exc_line = ("; ".join(f"`{k}` ×{n}" for k, n in exc.most_common(8)) if exc
                else "none" if res.server_log else "not read (--url)")
    left = "not known" if res.left_running is None else str(res.left_running)
    embed_note = ("" if res.embeddings_v1 else
                  "\n- `/v1/embeddings` does not exist on this server yet: that kind was left out.")
    return f"""{settings}

- Machine: {machine()}; load average at start {load}.{embed_note}
- **{len(recs)} requests** in {res.wall:.0f} s ({len(recs) / res.wall:.1f}/s): ok \
{sum(r.outcome == "ok" for r in recs)}, 503 with `Retry-After` {overloaded}, **failures \
{len(fails)}** (target 0; 503 without `Retry-After`: {no_retry}).
- Generations still running after the last client stopped (waited up to 10 s): {left}.
- Server RSS: {rss_summary(res.rss, res.wall)}.
- Exceptions in the server log: {exc_line}.
- Client CPU: {res.client_cpu:.1f} s ({100 * res.client_cpu / res.wall:.0f}% of one core).

{table(["kind", "requests", "ok", "503 + Retry-After", "failures", "p50 ms", "p95 ms"], rows)}
{"" if not fails else chr(10) + table(["failure", "count", "examples"], fail_rows)}
"""


def rss_summary(rss: list[tuple[float, float]], wall: float) -> str:
    """Start, middle, end and max of the RSS samples, and ten points along the run."""
    if not rss:
        return "not measured (a server given by --url without --pid)"
    mid = min(rss, key=lambda s: abs(s[0] - wall / 2))
    step = max(1, len(rss) // 10)
    along = ", ".join(f"{t:.0f} s {m:.0f}" for t, m in rss[::step])
    return (f"start {rss[0][1]:.0f} MiB, middle ({mid[0]:.0f} s) {mid[1]:.0f} MiB, end "
            f"{rss[-1][1]:.0f} MiB (**{rss[-1][1] - mid[1]:+.0f} MiB over the second half**), "
            f"max {max(m for _, m in rss):.0f} MiB; along the run (s MiB): {along}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--accounts", type=int, default=4,
                    help="web accounts the clients are spread over (each a fair share)")
    ap.add_argument("--db", choices=DATABASES, default="sqlite",
                    help="store of the server started here (both: one run on each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--deadline", type=float, default=120.0,
                    help="seconds a request may take before it counts as a hang")
    ap.add_argument("--max-requests", type=int, default=100_000, help="per client")
    ap.add_argument("--env", **ENV_OPTION)
    ap.add_argument("--url", help="a running Cove server instead (API requests only)")
    ap.add_argument("--api-key", help="with --url: the API key to send")
    ap.add_argument("--pid", type=int, help="with --url: the server's process id, for its RSS")
    ap.add_argument("--note", default="", help="a sentence added to the report")
    ap.add_argument("--out", type=Path, default=REPORT, help="report file (a section is added)")
    args = ap.parse_args(argv)
    env = parse_env(args.env)
    if args.url and urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("--url must be a loopback address")
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    shown = ", ".join(f"`{k}={v}`" for k, v in env.items()) or "defaults"
    head = (f"{args.clients} clients for {args.minutes:g} min, seed {args.seed}, deadline "
            f"{args.deadline:g} s; model {MODEL} (bundled)")

    def run(label: str, db_url: str | None) -> SoakResult:
        with CoveServer(db_url, env) as server:
            res = asyncio.run(soak(server.base, args, server.proc.pid, True, None, label))
            alive = server.proc.poll() is None
            res.server_log = server.log.read_text(errors="replace")
        if not alive:
            res.records.append(Record("server", "failure", 0.0, "server died",
                                      server.log_tail(500)))
        return res

    if args.url:
        results = [asyncio.run(soak(args.url.rstrip("/"), args, args.pid, False, args.api_key,
                                    "its own"))]
        where = f"the running server at {args.url}"
    else:
        results = on_databases(args.db, run)
        where = (f"a server started by the script (fresh `COVE_HOME`, clients spread over "
                 f"{args.accounts} web accounts, each with an API key)")
    failures = 0
    for res in results:
        settings = (f"Soak: {head}; against {where}; store: {res.label}; server settings: "
                    f"{shown}. {args.note}".rstrip())
        body = report(res, settings, load)
        print(f"## soak on {res.label}\n{body}", flush=True)
        append_run(f"soak, {args.clients} clients × {args.minutes:g} min, {res.label}", body,
                   args.out)
        failures += sum(r.outcome == "failure" for r in res.records)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
