"""Answers with sources: what searching costs an answer (run by hand, once).

Against `cove serve` with the bundled model and a fake SearXNG on loopback (the tests' own,
tests/features/search/searxng.py), non-streamed `/v1/chat/completions`, 24-token answers at
temperature 0, median of ``--rounds``:

- no search; ``cove.search`` over one collection (a 6-page PDF, 5 passages); web search (5
  results); web search against a SearXNG that hangs (bounded by COVE_SEARCH_WEB_TIMEOUT=2):
  wall time and prompt tokens.
- the web search alone (``cove.features.search.web.search`` in-process, 5 results): p50/p95
  of 50 calls.

Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import httpx
from tests.features.search.files import make_pdf
from tests.features.search.searxng import FakeSearxng

from bench.common import cove_server, machine, write_section
from cove.config import Settings
from cove.features.search import web

QUESTION = "What is the name of the lighthouse keeper?"
PAGES = [f"Page {i} of the museum guide: the harbour, its boats and its ferries. " * 8
         for i in range(5)] + ["The museum's lighthouse keeper is named Ingrid Solberg."]
RESULTS = [{"url": f"https://site{i}.example/page", "title": f"Result {i}",
            "content": "The Harbour Museum's lighthouse and its keeper. " * 5}
           for i in range(5)]


def ask(base: str, key: str, cove: dict[str, Any] | None) -> tuple[float, int]:
    body: dict[str, Any] = {"model": "smollm2:135m", "max_tokens": 24, "temperature": 0,
                            "messages": [{"role": "user", "content": QUESTION}]}
    if cove:
        body["cove"] = cove
    t = time.perf_counter()
    r = httpx.post(base + "/v1/chat/completions", json=body, timeout=300,
                   headers={"Authorization": f"Bearer {key}"})
    r.raise_for_status()
    return time.perf_counter() - t, int(r.json()["usage"]["prompt_tokens"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with FakeSearxng() as searx:
        searx.results = RESULTS
        env = {"COVE_SEARXNG_URL": searx.url, "COVE_SEARCH_WEB_TIMEOUT": "2"}
        with cove_server(env) as base:
            client = httpx.Client(base_url=base, timeout=60)
            csrf = {"X-CSRF-Token": client.post("/web/signup", json={
                "email": "bench@example.org", "password": "correct horse battery"}
            ).json()["csrf"]}
            key = client.post("/web/keys", json={"name": "b"}, headers=csrf).json()["key"]
            cid = client.post("/web/knowledge/collections", json={"name": "museum"},
                              headers=csrf).json()["id"]
            client.post(f"/web/knowledge/collections/{cid}/documents", headers=csrf,
                        files={"file": ("museum.pdf", make_pdf(PAGES))}).raise_for_status()
            cases: list[tuple[str, dict[str, Any] | None, str]] = [
                ("no search", None, "good"),
                ("one collection, 5 passages", {"search": {"collections": [cid]}}, "good"),
                ("web, 5 results", {"search": {"web": True}}, "good"),
                ("web, SearXNG hangs", {"search": {"web": True}}, "hang"),
            ]
            ask(base, key, None)  # load the model
            rows = []
            for name, cove, mode in cases:
                searx.mode = mode
                runs = [ask(base, key, cove) for _ in range(args.rounds)]
                rows.append((name, statistics.median(t for t, _ in runs), runs[0][1]))
            searx.mode = "good"
        settings = Settings(searxng_url=searx.url)
        times = []
        for _ in range(50):
            t = time.perf_counter()
            asyncio.run(web.search(settings, QUESTION, 5))
            times.append(time.perf_counter() - t)
    times.sort()
    table = ["| request | wall time (median) | prompt tokens |", "|---|---|---|"]
    table += [f"| {n} | {t:.2f} s | {p} |" for n, t, p in rows]
    body = (f"Measured {time.strftime('%Y-%m-%d')} on {machine()} (shared with other work "
            "while it ran); bundled SmolLM2-135M, non-streamed `/v1/chat/completions`, "
            f"24-token answers at temperature 0, median of {args.rounds} "
            "(`bench/web_search.py`; SearXNG is the tests' fake on loopback, so the web cost "
            "is Cove's own, not a real engine's).\n\n" + "\n".join(table) +
            f"\n\nThe web search alone (in-process, 5 results, 50 calls): p50 "
            f"{1000 * times[25]:.1f} ms, p95 {1000 * times[47]:.1f} ms. A hanging SearXNG "
            "costs the answer COVE_SEARCH_WEB_TIMEOUT (2 s here) and the answer still comes, "
            "with a warning.\n")
    write_section("Answers with sources: the cost of searching", body)
    print(body)


if __name__ == "__main__":
    main()
