"""Many users in long conversations at once: Cove vs llama.cpp's llama-server (optional).

U users chat at the same time, each a conversation of T turns: every user sends the next turn
as soon as the previous answer has arrived (32-token greedy answers, each user with an own
system prompt). Both servers get the same number of slots S < U (Cove's default, 4), so which
conversation's KV cells are still held when its next turn comes decides time to first token.
Measured: time to first token of each turn (median over users), the whole run's wall time and
completion tokens/s. Both sides stay loaded and run alternately, several rounds; the median
round of each is kept. Results go to docs/benchmarks.md.

Usage: .venv/bin/python bench/conversations.py [--users 8] [--turns 6] [--slots 4]
       [--rounds 3] [--llama-server PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cove_server, machine, process_server, write_section  # noqa: E402
from bench.load import TOPICS, _body, _Reader  # noqa: E402
from cove.models.registry import bundled_model_path  # noqa: E402

THREADS = os.cpu_count() or 2
N_CTX_SEQ = 2048


@dataclass
class RunResult:
    ttft_by_turn: list[float]  # seconds, median over users, per turn
    wall: float  # seconds for every user's whole conversation
    tokens: int  # completion tokens


async def _user(client: httpx.AsyncClient, base: str, user: int, turns: int, tag: str,
                ) -> tuple[list[float], int]:
    history = [{"role": "system",
                "content": f"User {tag}-{user} likes {TOPICS[user % len(TOPICS)]}. "
                           "You are a helpful assistant who tells stories."}]
    ttfts, tokens = [], 0
    for t in range(turns):
        history.append({"role": "user", "content": f"Continue the story, part {t + 1}."})
        reader = _Reader()
        body = _body("smollm2:135m", history, 32, 0.0, user)
        async with client.stream("POST", base + "/v1/chat/completions", json=body) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                reader.line(line)
        res = reader.result()
        ttfts.append(res.ttft)
        tokens += res.tokens
        history.append({"role": "assistant", "content": "".join(reader.text)})
    return ttfts, tokens


def run_conversations(base: str, users: int, turns: int, tag: str) -> RunResult:
    """All ``users`` converse at once, ``turns`` turns each; ``tag`` makes the prompts new."""

    async def go() -> RunResult:
        limits = httpx.Limits(max_connections=users + 1, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=600, limits=limits) as client:
            t0 = time.perf_counter()
            done = await asyncio.gather(*(_user(client, base, u, turns, tag)
                                          for u in range(users)))
            wall = time.perf_counter() - t0
        by_turn = [statistics.median(d[0][t] for d in done) for t in range(turns)]
        return RunResult(by_turn, wall, sum(d[1] for d in done))

    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--llama-server", default=None, help="path to llama.cpp's llama-server")
    args = ap.parse_args()
    model = bundled_model_path()
    runs: dict[str, list[RunResult]] = {}
    with ExitStack() as stack:
        bases = {"Cove": stack.enter_context(cove_server(
            {"COVE_N_PARALLEL": str(args.slots), "COVE_N_CTX": str(N_CTX_SEQ)}))}
        if args.llama_server:
            bases["llama-server"] = stack.enter_context(process_server(
                [args.llama_server, "-m", str(model), "--host", "127.0.0.1",
                 "--parallel", str(args.slots), "-c", str(N_CTX_SEQ * args.slots),
                 "-t", str(THREADS), "-tb", str(THREADS)], "/health"))
        for base in bases.values():
            run_conversations(base, 1, 1, "warm-up")
        for r in range(args.rounds):
            for name, base in (list(bases.items())[::-1] if r % 2 else bases.items()):
                res = run_conversations(base, args.users, args.turns, f"r{r}")
                runs.setdefault(name, []).append(res)
                print(f"{name:12s} round {r}: wall {res.wall:.1f} s, "
                      f"{res.tokens / res.wall:.1f} tok/s, TTFT by turn (ms) "
                      f"{[round(x * 1000) for x in res.ttft_by_turn]}", flush=True)
    best = {name: sorted(v, key=lambda x: x.wall)[len(v) // 2] for name, v in runs.items()}
    rows = []
    for name, res in best.items():
        ttft = " / ".join(f"{x * 1000:.0f}" for x in res.ttft_by_turn)
        rows.append(f"| {name} | {res.wall:.1f} | {res.tokens / res.wall:.1f} | {ttft} |")
    ratio = ""
    if "llama-server" in best:
        ratio = (f"\nCove ÷ llama-server, wall time: "
                 f"**{best['Cove'].wall / best['llama-server'].wall:.2f}** (lower is better).\n")
    write_section(
        "Many users in long conversations",
        f"""Measured {dt.date.today().isoformat()} on {machine()}; model SmolLM2-135M-Instruct Q4_1
(bundled), {THREADS} threads. {args.users} users chat at once, {args.turns} turns each (32-token
greedy answers; each user has an own system prompt and sends the next turn when the answer has
arrived), on {args.slots} slots of {N_CTX_SEQ} tokens each: more users than slots, so the servers
must keep or recompute conversations' KV cells. Median of {args.rounds} rounds, the two servers
taking turns (`bench/conversations.py`). llama-server ran with `--parallel {args.slots}` and its
default host-memory prompt cache.

| system | wall s | tok/s | TTFT by turn, median over users (ms) |
|---|---|---|---|
{chr(10).join(rows)}
{ratio}""",
    )


if __name__ == "__main__":
    main()
