"""Embeddings: 20 inputs of 2,000 characters, before and after batching, and how soon the work
stops when the client leaves.

"Before" is what ``/api/embed`` ran until now: llama-cpp-python's ``Llama.embed`` on the whole
request in one call (context, batch and micro-batch of ``n_ctx`` tokens, mean pooling; flash
attention off, its default). "After" is ``POST /api/embed`` of `cove serve` (the same request
over HTTP, batches of ``COVE_N_BATCH`` tokens through the embedding service), and the new
embedder in-process with one batch per ``n_ctx`` tokens for comparison. The sides take turns
round by round; medians are reported. Then a client sends 100 such inputs and leaves after
2 s: the time until ``/api/ps`` shows the model idle. Writes the result to docs/benchmarks.md.

Usage: .venv/bin/python bench/embed.py [--rounds 3] [--n-ctx 4096]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cove_server, machine, write_section  # noqa: E402
from cove.config import load_settings  # noqa: E402
from cove.embed_service import plan_batches  # noqa: E402
from cove.models.registry import bundled_model_path  # noqa: E402

MODEL = "smollm2:135m"


def texts(n: int) -> list[str]:
    line = "The quick brown fox jumps over the lazy dog while the river runs to the sea. "
    return [(f"Document {i}: " + line * 30)[:2000] for i in range(n)]


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def idle_after_leaving(base: str, inputs: list[str]) -> tuple[float, bool]:
    """Seconds from the client leaving (2 s into a long request) until the model is idle,
    and whether it was busy when the client left."""

    def busy() -> bool:
        models = httpx.get(base + "/api/ps", timeout=30).json()["models"]
        return any(m["busy"] for m in models if m["name"] == MODEL)

    try:
        httpx.post(base + "/api/embed", json={"model": MODEL, "input": inputs}, timeout=2)
    except httpx.TimeoutException:
        pass
    left = time.perf_counter()
    was_busy = busy()
    while busy():
        time.sleep(0.1)
    return time.perf_counter() - left, was_busy


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n-ctx", type=int, default=4096)
    args = ap.parse_args()
    import llama_cpp

    from cove.engine.llama_embed import LlamaEmbedder

    settings = load_settings()
    load = f"{os.getloadavg()[0]:.1f}"
    n_ctx, threads = args.n_ctx, settings.n_threads
    inputs = texts(20)
    path = str(bundled_model_path())
    old = llama_cpp.Llama(model_path=path, embedding=True, n_ctx=n_ctx, n_batch=n_ctx,
                          n_ubatch=n_ctx, n_threads=threads, n_threads_batch=threads,
                          pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN, verbose=False)
    new = LlamaEmbedder(bundled_model_path(), MODEL, n_ctx=n_ctx, n_threads=threads)
    tokens = [new.tokenize(t) for t in inputs]
    n_tokens = sum(map(len, tokens))

    def new_whole() -> None:
        for batch in plan_batches([len(t) for t in tokens], n_ctx, new.n_seq_max):
            new.embed_batch([tokens[i] for i in batch])

    sides: dict[str, list[float]] = {"before": [], "after": [], "whole": []}
    env = {"COVE_N_CTX": str(n_ctx), "COVE_N_THREADS": str(threads)}
    with cove_server(env) as base:
        def served() -> None:
            r = httpx.post(base + "/api/embed", json={"model": MODEL, "input": inputs},
                           timeout=3600)
            r.raise_for_status()

        httpx.post(base + "/api/embed", json={"model": MODEL, "input": "load"}, timeout=600)
        for i in range(args.rounds):
            sides["before"].append(timed(lambda: old.embed(inputs, normalize=True)))
            sides["after"].append(timed(served))
            sides["whole"].append(timed(new_whole))
            print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in sides.items()),
                  flush=True)
        old.close()
        new.close()
        stop, was_busy = idle_after_leaving(base, texts(100))
        print(f"idle {stop:.1f} s after the client left (busy when it left: {was_busy})")
    med = {k: statistics.median(v) for k, v in sides.items()}
    names = {
        "before": "before: `Llama.embed`, the whole request in one call (batch = context)",
        "after": f"after: `POST /api/embed`, batches of `COVE_N_BATCH` = {settings.n_batch} tokens",
        "whole": f"the new embedder in-process, batches of {n_ctx} tokens",
    }
    rows = "\n".join(f"| {names[k]} | {v:.1f} | {n_tokens / v:.0f} |" for k, v in med.items())
    write_section(
        "Embeddings: 20 inputs of 2,000 characters",
        f"""Measured {dt.date.today().isoformat()} on {machine()}; model SmolLM2-135M-Instruct Q4_1
(bundled), {threads} threads, context {n_ctx} tokens, {n_tokens} tokens in all, median of
{args.rounds} rounds, the sides taking turns (`bench/embed.py`); load average at start {load}
(other work on the machine slows every side alike: read the ratios).

| side | seconds | tokens/s |
|---|---|---|
{rows}

A client that sent 100 such inputs and left after 2 s: the model was idle
{stop:.1f} s later (the batch under way finishes; no other runs).
""",
    )


if __name__ == "__main__":
    main()
