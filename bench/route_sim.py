"""Routing simulation: conversation affinity vs round robin vs least loaded, over replicas with
prefix caches.

A discrete-event simulation (no network, no model in the loop): ``--users`` users (default
10,000) each hold one multi-turn conversation (a shared system prompt, then turns of a user
message and an answer, with think time between turns), arriving as a Poisson stream; every
turn's prompt is the whole history so far. ``--replicas`` replicas (default 8) each have
``--slots`` sequences decoded at once, a FIFO queue and an LRU prefix cache of
``--cache-tokens`` tokens of KV (per conversation: the history it last served; plus the shared
system prompt). A request's cost on a replica: ``prefill`` seconds per prompt token not in that
replica's cache, then ``decode`` seconds per answer token; its time to first token is its wait
in the queue plus its prefill.

The per-token costs are measured on this machine with the bundled model (``--measure``:
llama-cpp-python, one thread, CPU seconds of a 512-token prompt and of 64 decoded tokens, the
median of 3 runs), else taken from ``--prefill-ms`` / ``--decode-ms``.

Policies (each on the same arrival schedule):

- ``round_robin``: replica ``i mod n``;
- ``least_loaded``: the replica with the fewest requests running or queued;
- ``affinity``: Cove's router: consistent hashing of the conversation with bounded loads
  (:class:`cove.backends.ring.Ring`, the same code, balance factor ``--balance``), load being
  requests running or queued.

Reported per policy: prefix-cache hit rate (cached prompt tokens / prompt tokens), mean and
p95 time to first token, mean utilisation. Results: docs/scale.md (table) and
docs/route_sim.png (plot).

Usage: .venv/bin/python bench/route_sim.py [--measure] [--users 10000] [--replicas 8]
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import random
import statistics
import sys
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from cove.backends.ring import Ring  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"
SYSTEM_TOKENS = 300


@dataclass
class Turn:
    conv: int
    index: int
    prompt: int  # tokens of the whole prompt (history + this message)
    answer: int
    arrive: float = 0.0
    start: float = 0.0
    first: float = 0.0
    cached: int = 0


@dataclass
class Conversation:
    id: int
    start: float
    turns: list[tuple[int, int]]  # (user message tokens, answer tokens)
    think: list[float]


def workload(users: int, rate: float, seed: int) -> list[Conversation]:
    """``users`` conversations arriving at ``rate`` per second: 1-20 turns (geometric, mean
    about 6), user messages 20-200 tokens, answers 50-400 tokens, think time exponential with
    mean 20 s."""
    rng = random.Random(seed)
    t = 0.0
    out = []
    for i in range(users):
        t += rng.expovariate(rate)
        n = min(20, 1 + int(rng.expovariate(1 / 5.0)))
        turns = [(rng.randint(20, 200), rng.randint(50, 400)) for _ in range(n)]
        out.append(Conversation(i, t, turns, [rng.expovariate(1 / 20.0) for _ in range(n)]))
    return out


class Cache:
    """LRU prefix cache of one replica: conversation -> tokens of its history held."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held: OrderedDict[int, int] = OrderedDict()
        self.size = 0

    def hit(self, conv: int, prompt: int) -> int:
        """Prompt tokens found: the conversation's held history, else the system prompt."""
        held = self.held.get(conv, 0)
        if held:
            self.held.move_to_end(conv)
        return min(prompt, max(held, SYSTEM_TOKENS))

    def keep(self, conv: int, tokens: int) -> None:
        self.size -= self.held.pop(conv, 0)
        self.held[conv] = tokens
        self.size += tokens
        while self.size > self.capacity and self.held:
            _, n = self.held.popitem(last=False)
            self.size -= n


@dataclass
class Replica:
    slots: int
    cache: Cache
    running: int = 0
    queue: deque[Turn] = field(default_factory=deque)
    busy_time: float = 0.0

    @property
    def load(self) -> int:
        return self.running + len(self.queue)


def simulate(convs: list[Conversation], policy: str, replicas: int, slots: int,
             cache_tokens: int, prefill: float, decode: float, balance: float) -> dict[str, float]:
    """Run one policy; returns hit rate, mean/p95 TTFT (s), utilisation."""
    reps = [Replica(slots, Cache(cache_tokens)) for _ in range(replicas)]
    ring = Ring([f"r{i}" for i in range(replicas)])
    events: list[tuple[float, int, str, object]] = []
    seq = 0

    def push(t: float, kind: str, obj: object) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, obj))

    for c in convs:
        push(c.start, "arrive", (c, 0, SYSTEM_TOKENS))
    rr = 0
    done: list[Turn] = []
    where: dict[int, int] = {}

    def start(r: int, turn: Turn, now: float) -> None:
        rep = reps[r]
        rep.running += 1
        turn.start = now
        turn.cached = rep.cache.hit(turn.conv, turn.prompt)
        pre = (turn.prompt - turn.cached) * prefill
        turn.first = now + pre
        service = pre + turn.answer * decode
        rep.busy_time += service
        push(now + service, "finish", (r, turn))

    end = 0.0
    while events:
        now, _, kind, obj = heapq.heappop(events)
        end = now
        if kind == "arrive":
            c, i, history = obj  # type: ignore[misc]
            user, answer = c.turns[i]
            turn = Turn(c.id, i, history + user, answer, arrive=now)
            if policy == "round_robin":
                r = rr % replicas
                rr += 1
            elif policy == "least_loaded":
                r = min(range(replicas), key=lambda j: (reps[j].load, j))
            else:
                chosen = ring.choose(f"conv{c.id}", lambda j: reps[j].load, lambda j: True,
                                     balance)
                assert chosen is not None
                r = chosen
            where[c.id] = r
            if reps[r].running < slots:
                start(r, turn, now)
            else:
                reps[r].queue.append(turn)
        else:
            r, turn = obj  # type: ignore[misc]
            rep = reps[r]
            rep.running -= 1
            rep.cache.keep(turn.conv, turn.prompt + turn.answer)
            done.append(turn)
            c = convs[turn.conv]
            if turn.index + 1 < len(c.turns):
                push(now + c.think[turn.index], "arrive",
                     (c, turn.index + 1, turn.prompt + turn.answer))
            if rep.queue:
                start(r, rep.queue.popleft(), now)
    ttft = sorted(t.first - t.arrive for t in done)
    prompt = sum(t.prompt for t in done)
    history = sum(t.prompt - SYSTEM_TOKENS for t in done)
    return {
        "requests": len(done),
        "hit_rate": sum(t.cached for t in done) / prompt,
        "history_hit_rate": sum(max(0, t.cached - SYSTEM_TOKENS) for t in done) / history,
        "ttft_mean": statistics.fmean(ttft),
        "ttft_p95": ttft[int(0.95 * (len(ttft) - 1))],
        "utilisation": sum(r.busy_time for r in reps) / (replicas * slots * end),
    }


def measure() -> tuple[float, float]:
    """CPU seconds per prefill token and per decoded token of the bundled model on one thread
    here (a 512-token prompt, 64 greedy tokens). CPU time rather than wall time, so that other
    work on a shared machine does not inflate the costs (the medians of 3 runs)."""
    import llama_cpp

    from cove.models.registry import bundled_model_path

    llm = llama_cpp.Llama(str(bundled_model_path()), n_ctx=1024, n_threads=1,
                          n_threads_batch=1, n_batch=512, verbose=False)
    tokens = llm.tokenize(b" harbour" * 511)[:512]
    pres, decs = [], []
    for _ in range(3):
        llm.reset()
        t0 = time.process_time()
        llm.eval(tokens)
        pres.append((time.process_time() - t0) / len(tokens))
        t0 = time.process_time()
        for _ in range(64):
            llm.eval([llm.sample(temp=0.0)])
        decs.append((time.process_time() - t0) / 64)
    llm.close()
    return statistics.median(pres), statistics.median(decs)


def main() -> None:
    global SYSTEM_TOKENS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--replicas", type=int, default=8)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--cache-tokens", type=int, default=200_000)
    ap.add_argument("--balance", type=float, default=1.25)
    ap.add_argument("--measure", action="store_true")
    ap.add_argument("--prefill-ms", type=float, default=3.0)
    ap.add_argument("--decode-ms", type=float, default=15.0)
    ap.add_argument("--loads", default="0.5,0.7,0.85", help="target utilisations of round "
                    "robin to sweep (the arrival rate is set for each)")
    ap.add_argument("--system-tokens", type=int, default=300,
                    help="tokens of the system prompt every conversation shares")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    SYSTEM_TOKENS = args.system_tokens
    prefill, decode = (measure() if args.measure
                       else (args.prefill_ms / 1000, args.decode_ms / 1000))
    print(f"prefill {prefill * 1000:.2f} ms/token, decode {decode * 1000:.2f} ms/token")
    policies = ["round_robin", "least_loaded", "affinity"]
    sweeps: list[tuple[float, dict[str, dict[str, float]]]] = []
    for target in (float(x) for x in args.loads.split(",")):
        # the arrival rate at which round robin runs at the target utilisation (bisection:
        # utilisation grows with the rate until the replicas saturate)
        def util_at(rate: float) -> float:
            return simulate(workload(args.users, rate, args.seed), "round_robin",
                            args.replicas, args.slots, args.cache_tokens, prefill, decode,
                            args.balance)["utilisation"]

        lo, hi = 0.0, 1.0
        while util_at(hi) < target:
            lo, hi = hi, hi * 2
        for _ in range(10):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if util_at(mid) < target else (lo, mid)
        rate = (lo + hi) / 2
        convs = workload(args.users, rate, args.seed)
        results: dict[str, dict[str, float]] = {}
        for p in policies:
            res = results[p] = simulate(convs, p, args.replicas, args.slots,
                                        args.cache_tokens, prefill, decode, args.balance)
            print(f"load {target:.2f} ({rate:.3f} users/s) {p:13s} hit {res['hit_rate']:.1%} "
                  f"(history {res['history_hit_rate']:.1%}) "
                  f"ttft mean {res['ttft_mean']:.2f}s p95 {res['ttft_p95']:.2f}s "
                  f"util {res['utilisation']:.1%}", flush=True)
        sweeps.append((results["round_robin"]["utilisation"], results))
    if not args.no_write:
        write(sweeps, args, prefill, decode)


def write(sweeps: list[tuple[float, dict[str, dict[str, float]]]], args: argparse.Namespace,
          prefill: float, decode: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    how = ("CPU time measured with the bundled model, one thread, on this shared 2-core "
           "machine" if args.measure
           else "given")
    lines = [f"Run {dt.date.today()}: {args.users:,} users over {args.replicas} replicas x "
             f"{args.slots} slots, a {args.cache_tokens:,}-token prefix cache each, a "
             f"{args.system_tokens}-token system prompt shared by all; prefill "
             f"{prefill * 1000:.2f} ms/token and decode {decode * 1000:.2f} ms/token ({how}).",
             "", "| load (RR utilisation) | policy | prefix-cache hit rate | of the history "
             "(past the shared system prompt) | mean TTFT | p95 TTFT |",
             "|---|---|---|---|---|---|"]
    for load, pols in sweeps:
        for p, res in pols.items():
            lines.append(f"| {load:.0%} | {p} | {res['hit_rate']:.1%} | "
                         f"{res['history_hit_rate']:.1%} | "
                         f"{res['ttft_mean']:.2f} s | {res['ttft_p95']:.2f} s |")
    table = "\n".join(lines) + "\n"
    (DOCS / "route_sim.md").write_text("# Routing simulation (bench/route_sim.py)\n\n" + table)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    loads = [load for load, _ in sweeps]
    for p in ("round_robin", "least_loaded", "affinity"):
        a.plot(loads, [r[p]["hit_rate"] * 100 for _, r in sweeps], marker="o", label=p)
        b.plot(loads, [r[p]["ttft_p95"] for _, r in sweeps], marker="o", label=p)
    a.set(xlabel="load (round robin's utilisation)", ylabel="prefix-cache hit rate (%)")
    b.set(xlabel="load (round robin's utilisation)", ylabel="p95 time to first token (s)",
          yscale="log")
    a.legend()
    fig.suptitle(f"{args.users:,} users, {args.replicas} replicas (simulated)")
    fig.tight_layout()
    fig.savefig(DOCS / "route_sim.png", dpi=100)
    print(table)


if __name__ == "__main__":
    main()
