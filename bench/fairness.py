"""A short question while a long document is being read: its time to first token.

A 15,000-character prompt (a new document each round, so no prefix is cached) is sent with a
16-token answer; 0.5 s later a short question is sent. Measured per side: the short request's
time to first token (target: under 1 s on a 2-core machine), the long request's time to first
token alone and with the short one running (its prefill speed, tokens/s). Sides: this checkout
of Cove, optionally an older Cove (``--before DIR``: a checkout's ``src``, e.g. a worktree of
the commit before the fairness change) and llama.cpp's llama-server (``--llama-server PATH``),
each with 4 slots, all loaded at once and run alternately, ``--rounds`` rounds, medians kept.
Results go to docs/reliability.md.

Usage: .venv/bin/python bench/fairness.py [--rounds 3] [--before DIR] [--llama-server PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cove_server, machine, process_server, write_section  # noqa: E402
from cove.models.registry import bundled_model_path  # noqa: E402

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
WORDS = ("river stone lantern harbour meadow engine quiet copper garden signal winter orchard "
         "market ladder candle thunder valley mirror basket planet").split()


def document(seed: int, chars: int = 15_000) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    n = 0
    while n < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize()
        out.append(sentence + ".")
        n += len(sentence) + 2
    return " ".join(out)[:chars]


def has_text(line: str) -> bool:
    """Whether an SSE line is a chat chunk carrying generated text (not the empty role chunk)."""
    if not line.startswith("data: {"):
        return False
    for choice in json.loads(line[6:]).get("choices", []):
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("reasoning_content"):
            return True
    return False


async def first_token(client: httpx.AsyncClient, base: str, content: str) -> tuple[float, float]:
    """(seconds to the first streamed text, seconds to the end of the stream) of a streamed
    chat request with a 16-token answer."""
    body = {"model": "smollm2:135m", "messages": [{"role": "user", "content": content}],
            "max_tokens": 16, "temperature": 0, "stream": True}
    t0 = time.perf_counter()
    ttft = -1.0
    async with client.stream("POST", base + "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if ttft < 0 and has_text(line):
                ttft = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return (ttft if ttft >= 0 else total), total


async def one_round(base: str, seed: int) -> tuple[float, float, float, float]:
    """(short TTFT with the long one reading, the short one's whole answer, long TTFT alone,
    long TTFT with the short one)."""
    async with httpx.AsyncClient(timeout=600) as client:
        alone, _ = await first_token(client, base, "Summarise:\n" + document(seed))
        long = asyncio.ensure_future(
            first_token(client, base, "Summarise:\n" + document(seed + 1000)))
        await asyncio.sleep(0.5)
        short, short_total = await first_token(
            client, base, f"What is {seed % 7} plus {seed % 5}?")
        return short, short_total, alone, (await long)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before", help="src/ folder of an older Cove to run beside this one")
    ap.add_argument("--llama-server", help="path to llama.cpp's llama-server binary")
    args = ap.parse_args()
    threads = str(os.cpu_count() or 2)
    with ExitStack() as stack:
        sides: dict[str, str] = {}
        for name, src in [("Cove", None), ("Cove before", args.before)]:
            if name != "Cove" and not src:
                continue
            home = stack.enter_context(tempfile.TemporaryDirectory())
            env = {"COVE_HOME": home, **({"PYTHONPATH": src} if src else {})}
            sides[name] = stack.enter_context(cove_server(env))
        if args.llama_server:
            sides["llama-server"] = stack.enter_context(process_server(
                [args.llama_server, "-m", str(bundled_model_path()), "--parallel", "4",
                 "-c", str(4 * 4096), "-t", threads, "--host", "127.0.0.1"], "/health"))
        results: dict[str, list[tuple[float, float, float, float]]] = {k: [] for k in sides}
        for r in range(args.rounds):
            for name, base in sides.items():
                results[name].append(asyncio.run(one_round(base, 100 * r + len(name))))
                print(name, r, results[name][-1], flush=True)
    rows = ["| side | short question's TTFT | its 16-token answer | long prompt's TTFT alone "
            "| with the short one |", "|---|---|---|---|---|"]
    for name, runs in results.items():
        med = [statistics.median(x[i] for x in runs) for i in range(4)]
        rows.append(f"| {name} | {med[0]:.2f} s | {med[1]:.1f} s | {med[2]:.1f} s "
                    f"| {med[3]:.1f} s |")
    body = (f"{dt.date.today()}, {machine()}; SmolLM2-135M Q4_1, 4 slots, defaults otherwise; "
            f"medians of {args.rounds} rounds. A 15,000-character prompt (~2,400 tokens, new "
            "each round) with a 16-token answer; 0.5 s later a short question. Target: the "
            "short question's first token in under 1 s.\n\n" + "\n".join(rows) + "\n")
    write_section("A short question during a long prefill (bench/fairness.py)", body,
                  path=RESULTS, heading="# Reliability\n\nMeasured by hand; see bench/.\n")
    print(body)


if __name__ == "__main__":
    main()
