"""Fault injection: ``kill -9`` the server in the middle of streamed answers and write bursts,
restart it, and compare the store with what the clients were told.

The server is started by this script on a loopback port with a fresh ``COVE_HOME`` (its store on
SQLite or a throwaway PostgreSQL 15, ``--db``), with one web app account. Each round:

1. ``--streams`` long answers start streaming in new conversations (``/web/conversations/{id}/
   messages``), while ``--writers`` clients burst writes: create conversations, rename, delete,
   send short messages (each writer on its own conversations, one operation at a time);
2. the server gets SIGKILL at a random moment: while the answers stream (a random time after
   their first characters) or early in the write burst (the round's target, chosen at random);
3. the server restarts on the same home and store; every conversation the clients ever created
   is read back through the web API and compared with the ledger of acknowledged operations
   (``bench/faults_ledger.py``).

Reported per round and in total: acknowledged operations by kind, those lost (target 0), other
wrong states (an answer still ``streaming`` after the restart), and for answers cut by the
kill the characters the client saw that were not saved, with the time between the first such
character's arrival and the kill (the answer is saved every ``FLUSH_SECONDS`` of
``cove.chats.turns`` while it streams). Randomness is seeded (``--seed``); every round is
bounded (at most 200 operations per writer, 30 s to the kill). Results are added to
docs/reliability.md as a new section (``--out``).

Usage: .venv/bin/python bench/faults.py [--rounds 20] [--db sqlite|postgres|both] [--seed 0]
       [--streams 2] [--writers 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine  # noqa: E402
from bench.faults_ledger import Answer, Conv, Ledger, Verdict  # noqa: E402
from bench.reliability import (  # noqa: E402
    DATABASES,
    ENV_OPTION,
    MODEL,
    REPORT,
    CoveServer,
    MalformedStream,
    append_run,
    median,
    on_databases,
    parse_env,
    sign_up,
    table,
    web_events,
)

MAX_OPS = 200  # per writer and round
STREAM_PROMPT = "Count from 1 to 400, separated by commas."


@dataclass
class RoundResult:
    number: int
    target: str  # "stream" or "burst"
    kill_after: float  # seconds from the round's start
    first_delta: float  # seconds from the round's start to the first answer characters
    verdict: Verdict
    restart: float  # seconds until the restarted server answered
    unexpected: list[str]  # statuses other than 200 before the kill


class Round:
    """The clients of one round, sharing ``web`` (a signed-in session) and ``ledger``."""

    def __init__(self, web: httpx.AsyncClient, ledger: Ledger, rng: random.Random,
                 number: int) -> None:
        self.web = web
        self.ledger = ledger
        self.rng = rng
        self.number = number
        self.first_delta = asyncio.Event()
        self.first_delta_at = float("nan")
        self.unexpected: list[str] = []
        self.killed = False

    def _bad(self, r: httpx.Response) -> bool:
        if r.status_code == 200:
            return False
        self.unexpected.append(f"{r.request.method} {r.request.url.path}: {r.status_code}")
        return True

    async def create(self, title: str) -> Conv | None:
        r = await self.web.post("/web/conversations", json={"title": title})
        if self._bad(r):
            return None
        conv = Conv(r.json()["id"], r.json()["title"])
        self.ledger.convs[conv.id] = conv
        self.ledger.ack("create")
        return conv

    async def send(self, conv: Conv, content: str, max_tokens: int) -> None:
        """Send a message and read the answer, recording what the events acknowledge."""
        body = {"content": content, "max_tokens": max_tokens, "temperature": 0}
        answer: Answer | None = None
        async with self.web.stream("POST", f"/web/conversations/{conv.id}/messages",
                                   json=body) as r:
            if self._bad(r):
                await r.aread()
                return
            async for ev in web_events(r):
                if ev["type"] == "start":
                    answer = Answer(ev["user_message"]["id"], content,
                                    ev["assistant_message_id"])
                    conv.answers.append(answer)
                    self.ledger.ack("message")
                elif answer is None:
                    raise MalformedStream(f"an event before start: {ev}")
                elif ev["type"] == "delta" and ev["kind"] == "content":
                    answer.text += ev["text"]
                    answer.arrivals.append((time.monotonic(), len(answer.text)))
                    if not self.first_delta.is_set():
                        self.first_delta_at = time.monotonic()
                        self.first_delta.set()
                elif ev["type"] == "done":
                    answer.done = True
                    self.ledger.ack("answer")
                elif ev["type"] == "error":
                    self.unexpected.append(f"error event: {ev.get('error')}")

    async def stream(self) -> None:
        conv = await self.create(f"r{self.number}-stream")
        if conv is not None:
            await self.send(conv, STREAM_PROMPT, 600)

    async def writer(self, tag: str) -> None:
        """Create, rename, send to and delete own conversations until the server dies."""
        mine: list[Conv] = []
        for n in range(MAX_OPS):
            live = [c for c in mine if not c.deleted]
            op = "create" if not live else self.rng.choices(
                ["create", "rename", "send", "delete"], [2, 3, 3, 1])[0]
            if op == "create":
                conv = await self.create(f"{tag}-{n}")
                mine += [conv] if conv else []
                continue
            c = self.rng.choice(live)
            if op == "send":
                await self.send(c, f"Say something about the number {n}.",
                                self.rng.randint(4, 16))
            elif op == "rename":
                c.pending_title = f"{tag}-{n}-renamed"
                r = await self.web.patch(f"/web/conversations/{c.id}",
                                         json={"title": c.pending_title})
                if not self._bad(r):
                    c.title = r.json()["title"]
                    self.ledger.ack("rename")
                c.pending_title = None
            else:
                c.pending_delete = True
                r = await self.web.delete(f"/web/conversations/{c.id}")
                if not self._bad(r):
                    c.deleted = True
                    self.ledger.ack("delete")
                c.pending_delete = False


async def _until_dead(rnd: Round, coro: Any) -> None:
    """Run a client until the kill cuts its connection (which may also cut a line)."""
    try:
        await coro
    except httpx.TransportError:
        pass
    except MalformedStream as e:
        if not rnd.killed:
            rnd.unexpected.append(f"malformed stream: {e}")


async def _load_model(base: str, key: str) -> None:
    """Load the chat model (Ollama's load-only request), so that rounds start at once."""
    async with httpx.AsyncClient(base_url=base, timeout=120) as api:
        r = await api.post("/api/generate", json={"model": MODEL},
                           headers={"Authorization": f"Bearer {key}"})
        r.raise_for_status()


async def _stored(web: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """Every conversation of the account with its messages, as the web API shows them."""
    r = await web.get("/web/conversations")
    r.raise_for_status()
    out = {}
    for c in r.json()["data"]:
        got = await web.get(f"/web/conversations/{c['id']}")
        got.raise_for_status()
        out[c["id"]] = got.json()
    return out


async def run_rounds(server: CoveServer, args: argparse.Namespace) -> list[RoundResult]:
    rng = random.Random(args.seed)
    ledger = Ledger()
    async with httpx.AsyncClient(base_url=server.base, timeout=60) as first:
        await sign_up(first, "faults@example.org")
        cookies, headers = first.cookies, dict(first.headers)
        key = (await first.post("/web/keys", json={"name": "faults"})).json()["key"]
    await _load_model(server.base, key)
    results = []
    for number in range(1, args.rounds + 1):
        target = rng.choice(["stream", "burst"])
        # a new client each round: the pooled connections died with the server
        async with httpx.AsyncClient(base_url=server.base, timeout=60, cookies=cookies,
                                     headers=headers) as web:
            rnd = Round(web, ledger, rng, number)
            t0 = time.monotonic()
            tasks = [asyncio.ensure_future(_until_dead(rnd, rnd.stream()))
                     for _ in range(args.streams)]
            tasks += [asyncio.ensure_future(_until_dead(rnd, rnd.writer(f"r{number}w{w}")))
                      for w in range(args.writers)]
            if target == "stream":
                try:
                    await asyncio.wait_for(rnd.first_delta.wait(), 30)
                except TimeoutError:
                    pass
                await asyncio.sleep(rng.uniform(0.0, 2.0))
            else:
                await asyncio.sleep(rng.uniform(0.02, 0.6))
            killed_at = time.monotonic()
            rnd.killed = True
            server.kill()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
            t1 = time.monotonic()
            try:
                server.start()
            except RuntimeError as e:  # the store may be what keeps it from starting
                rnd.unexpected.append(f"the server did not restart ({e}): "
                                      f"{server.log_tail(600)}")
                results.append(RoundResult(number, target, killed_at - t0,
                                           rnd.first_delta_at - t0, Verdict(), 0.0,
                                           rnd.unexpected))
                break
            restart = time.monotonic() - t1
        await _load_model(server.base, key)
        async with httpx.AsyncClient(base_url=server.base, timeout=60, cookies=cookies,
                                     headers=headers) as web:
            verdict = ledger.check(await _stored(web), killed_at)
        res = RoundResult(number, target, killed_at - t0, rnd.first_delta_at - t0, verdict,
                          restart, rnd.unexpected)
        results.append(res)
        print(f"round {number}: kill during {target} at {res.kill_after:.2f} s, acknowledged "
              f"{verdict.acknowledged}, lost {len(verdict.lost)}, problems "
              f"{len(verdict.problems) + len(rnd.unexpected)}, cut answers "
              f"{[f'{u}/{n}' for n, u, _ in verdict.partial]} chars not saved/seen, first "
              f"characters at {res.first_delta:.1f} s", flush=True)
    return results


def report(results: list[RoundResult], args: argparse.Namespace, label: str, load: str) -> str:
    from cove.chats import turns

    flush = getattr(turns, "FLUSH_SECONDS", None)
    rows: list[list[str]] = []
    acks: dict[str, int] = {}
    for r in results:
        v = r.verdict
        for k, n in v.acknowledged.items():
            acks[k] = acks.get(k, 0) + n
        cut = [f"{u}/{n}" for n, u, _ in v.partial]
        first = "—" if r.first_delta != r.first_delta else f"{r.first_delta:.1f}"  # NaN: none
        rows.append([str(r.number), r.target, first, f"{r.kill_after:.2f}",
                     ", ".join(f"{k} {n}" for k, n in sorted(v.acknowledged.items())) or "—",
                     str(len(v.lost)), str(len(v.problems) + len(r.unexpected)),
                     " / ".join(map(str, cut)) or "—",
                     f"{max((w for _, _, w in v.partial), default=0.0):.2f}", f"{r.restart:.1f}"])
    lost = [x for r in results for x in r.verdict.lost]
    problems = [x for r in results for x in r.verdict.problems + r.unexpected]
    partial = [p for r in results for p in r.verdict.partial]
    chars = [u for _, u, _ in partial]
    windows = [w for _, u, w in partial if u]
    details = "".join(f"\n  - lost: {x}" for x in lost[:10])
    details += "".join(f"\n  - problem: {x}" for x in problems[:10])
    acked = ", ".join(f"{k} {n}" for k, n in sorted(acks.items()))
    shown = ", ".join(f"`{k}={v}`" for k, v in parse_env(args.env).items()) or "defaults"
    return f"""Faults: {len(results)} rounds, seed {args.seed}; per round {args.streams} streamed \
answers (`{STREAM_PROMPT}`, greedy, up to 600 tokens) and {args.writers} writers; store: \
{label}; server settings: {shown}; answers saved while streaming every \
`FLUSH_SECONDS = {flush}` s (main at the time of the run). {args.note}

- Machine: {machine()}; load average at start {load}.
- **Acknowledged operations: {sum(acks.values())}** ({acked}); **lost: {len(lost)}** \
(target 0); other wrong states: {len(problems)}.{details}
- Answers cut by a kill: {len(partial)}; characters seen by the client but not saved: total \
{sum(chars)}, max {max(chars, default=0)} in one answer; the first unsaved character had \
arrived at most {max(windows, default=0.0):.2f} s before the kill.
- Restart until the server answered: median {median([r.restart for r in results]):.1f} s.

{table(["round", "kill during", "first characters at s", "kill at s", "acknowledged", "lost",
        "problems", "chars not saved / seen, per cut answer", "max unsaved window s",
        "restart s"], rows)}
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--db", choices=DATABASES, default="sqlite",
                    help="store of the server (both: one run on each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--streams", type=int, default=2, help="long streamed answers per round")
    ap.add_argument("--writers", type=int, default=3, help="write-burst clients per round")
    ap.add_argument("--env", **ENV_OPTION)
    ap.add_argument("--note", default="", help="a sentence added to the report")
    ap.add_argument("--out", type=Path, default=REPORT, help="report file (a section is added)")
    args = ap.parse_args(argv)
    env = parse_env(args.env)
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())

    def run(label: str, db_url: str | None) -> tuple[str, list[RoundResult]]:
        with CoveServer(db_url, env) as server:
            return label, asyncio.run(run_rounds(server, args))

    bad = 0
    for label, results in on_databases(args.db, run):
        body = report(results, args, label, load)
        print(f"## faults on {label}\n{body}", flush=True)
        rounds = f"{args.rounds} round{'s' if args.rounds != 1 else ''}"
        append_run(f"faults, {rounds}, {label}", body, args.out)
        bad += sum(len(r.verdict.lost) + len(r.verdict.problems) + len(r.unexpected)
                   for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
