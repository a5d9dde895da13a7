"""Web-app streams: tokens/s a signed-in client receives from ``POST /web/conversations/{id}/
messages`` (the answer saved as it streams), for two Cove source trees side by side.

Each round runs the same greedy request on each tree's `cove serve` (the bundled model), one
tree after the other, ``--streams`` conversations at once. The rate of a stream is (deltas - 1)
/ (time of last delta - time of first delta), as the client sees it; the median over rounds and
streams is printed per tree. Prints only (no results file): it is for comparing a change.

Usage: .venv/bin/python bench/web_stream.py --tree before=/path/to/src --tree after=src \\
           [--tokens 256] [--rounds 5] [--streams 1]
(each ``src`` is a directory holding the ``cove`` package, put first on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cove_server, machine  # noqa: E402

PROMPT = "Count from 1 to 300, separated by commas."
PASSWORD = "correct horse battery"


def one_stream(base: str, tokens: int, out: list[float]) -> None:
    with httpx.Client(base_url=base, timeout=300) as c:
        email = f"b{time.monotonic_ns()}{threading.get_ident()}@example.org"
        csrf = c.post("/web/signup", json={"email": email, "password": PASSWORD}).json()["csrf"]
        h = {"X-CSRF-Token": csrf}
        cid = c.post("/web/conversations", json={}, headers=h).json()["id"]
        stamps: list[float] = []
        with c.stream("POST", f"/web/conversations/{cid}/messages", headers=h,
                      json={"content": PROMPT, "max_tokens": tokens, "temperature": 0}) as r:
            for line in r.iter_lines():
                if line.startswith("data: ") and json.loads(line[6:])["type"] == "delta":
                    stamps.append(time.perf_counter())
        if len(stamps) > 1:
            out.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
            print(f"  {base}: {len(stamps)} deltas, {out[-1]:.1f} tok/s", file=sys.stderr,
                  flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tree", action="append", required=True, help="NAME=SRC_DIR")
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--streams", type=int, default=1)
    args = ap.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree)
    rates: dict[str, list[float]] = {name: [] for name in trees}
    with ExitStack() as stack:
        bases = {}
        for name, src in trees.items():
            home = stack.enter_context(tempfile.TemporaryDirectory())
            bases[name] = stack.enter_context(cove_server({
                "PYTHONPATH": str(Path(src).resolve()), "COVE_HOME": home}))
        for base in bases.values():  # warm-up: load the model, fill caches
            one_stream(base, 16, [])
        for _ in range(args.rounds):
            for name, base in bases.items():
                threads = [threading.Thread(target=one_stream,
                                            args=(base, args.tokens, rates[name]))
                           for _ in range(args.streams)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
    print(f"{machine()}; {args.streams} stream(s) at once, {args.tokens} tokens, "
          f"{args.rounds} rounds")
    for name, r in rates.items():
        print(f"{name:>10}: median {statistics.median(r):6.1f} tok/s  "
              f"(min {min(r):.1f}, max {max(r):.1f}, n={len(r)})")


if __name__ == "__main__":
    main()
