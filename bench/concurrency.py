"""Concurrent streams: Cove vs llama-cpp-python's server, llama.cpp's llama-server (optional) and
a raw batched llama_decode loop; and time to first token of turn 10 vs turn 1.

Every side is started by this script in the same run, one at a time (never two loaded at once),
on the bundled model with the same thread count. Each level sends N streamed chat requests at
once (64-token answers, temperature 0.8, new prompts every round) and measures aggregate
completion tokens/s over the round and p50/p95 time to first token; each level runs
``--rounds`` times and the median round is kept. Results and a plot go to docs/.

Usage: .venv/bin/python bench/concurrency.py [--levels 1 4 8 16] [--rounds 3]
       [--llama-server PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, cove_server, machine, process_server, write_section  # noqa: E402
from bench.load import LoadResult, run_load, stream_chat  # noqa: E402
from bench.raw_batch import raw_batched_tokens_per_s  # noqa: E402
from cove.models.registry import bundled_model_path  # noqa: E402

THREADS = os.cpu_count() or 2
N_CTX_SEQ = 1024


def llama_cpp_python_server(model: Path) -> Iterator[str]:
    return process_server(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
         "--n_ctx", str(N_CTX_SEQ * 4), "--n_threads", str(THREADS),
         "--n_threads_batch", str(THREADS), "--verbose", "False"],
        "/v1/models",
    )


def llama_server(binary: str, model: Path, parallel: int) -> Iterator[str]:
    return process_server(
        [binary, "-m", str(model), "--host", "127.0.0.1", "--parallel", str(parallel),
         "-c", str(N_CTX_SEQ * parallel), "-t", str(THREADS), "-tb", str(THREADS)],
        "/health",
    )


def levels_run(base: str, levels: list[int], rounds: int) -> dict[int, LoadResult]:
    """Each level ``rounds`` times (new prompts every round); the median round by tokens/s."""
    run_load(base, "smollm2:135m", 1, max_tokens=8, round_id=99)  # warm-up (loads the model)
    out = {}
    round_id = 0
    for n in levels:
        runs = []
        for _ in range(rounds):
            runs.append(run_load(base, "smollm2:135m", n, round_id=round_id))
            round_id += 1
        out[n] = r = sorted(runs, key=lambda x: x.tokens_per_s)[len(runs) // 2]
        print(f"  {n:2d} streams: {r.tokens_per_s:6.1f} tok/s, TTFT p50 {r.ttft_p50 * 1000:.0f} ms"
              f" p95 {r.ttft_p95 * 1000:.0f} ms, errors {r.errors}", flush=True)
    return out


def turn_ttft(base: str, turns: int = 10, conversations: int = 3) -> list[float]:
    """Median TTFT of each turn over ``conversations`` conversations (64-token greedy
    answers), each with its own system prompt (they differ from the first words on)."""
    runs = [one_conversation(base, turns, k) for k in range(conversations)]
    return [sorted(r[t] for r in runs)[len(runs) // 2] for t in range(turns)]


def one_conversation(base: str, turns: int, k: int) -> list[float]:
    system = f"Session {k + 1}: you are a helpful assistant who tells stories."
    history = [{"role": "system", "content": system}]
    ttfts = []
    for i in range(turns):
        history.append({"role": "user", "content": f"Continue the story, part {i + 1}."})
        res, text = stream_chat(base, "smollm2:135m", history, 64, 0.0)
        ttfts.append(res.ttft)
        history.append({"role": "assistant", "content": text})
    return ttfts


def plot(results: dict[str, dict[int, LoadResult]], raw: dict[int, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, res in results.items():
        xs = sorted(res)
        ax.plot(xs, [res[x].tokens_per_s for x in xs], marker="o", label=name)
    xs = sorted(raw)
    ax.plot(xs, [raw[x] for x in xs], marker="x", linestyle="--", label="raw batched decode")
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("aggregate tokens/s")
    ax.set_title("SmolLM2-135M Q4_1, 64-token answers")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--llama-server", default=None, help="path to llama.cpp's llama-server")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per level (median kept)")
    args = ap.parse_args()
    model = bundled_model_path()
    slots = max(args.levels)
    results: dict[str, dict[int, LoadResult]] = {}

    for label, unified in (("Cove", "false"), ("Cove, unified KV", "true")):
        print(label, flush=True)
        env = {"COVE_N_PARALLEL": str(slots), "COVE_N_CTX": str(N_CTX_SEQ),
               "COVE_KV_UNIFIED": unified}
        with cove_server(env) as base:
            results[label] = levels_run(base, args.levels, args.rounds)
            if label == "Cove":
                cove_turns = turn_ttft(base)
    print("llama-cpp-python server", flush=True)
    with llama_cpp_python_server(model) as base:
        results["llama-cpp-python server"] = levels_run(base, args.levels, args.rounds)
        peer_turns = turn_ttft(base)
    if args.llama_server:
        print("llama-server", flush=True)
        with llama_server(args.llama_server, model, slots) as base:
            results["llama-server"] = levels_run(base, args.levels, args.rounds)
    print("raw batched llama_decode", flush=True)
    raw = {n: sorted(raw_batched_tokens_per_s(str(model), n, 64, THREADS)
                     for _ in range(args.rounds))[args.rounds // 2] for n in args.levels}
    for n, v in raw.items():
        print(f"  {n:2d} sequences: {v:6.1f} tok/s", flush=True)

    peer = results["llama-cpp-python server"]
    ls = results.get("llama-server")
    head = ["system", "streams", "tok/s", "TTFT p50/p95 ms", "÷ llama-cpp-python server"]
    if ls:
        head.append("÷ llama-server")
    head.append("÷ raw batched decode")
    rows = []
    for name, res in results.items():
        for n in args.levels:
            r = res[n]
            cells = [name, str(n), f"{r.tokens_per_s:.1f}",
                     f"{r.ttft_p50 * 1000:.0f} / {r.ttft_p95 * 1000:.0f}",
                     f"{r.tokens_per_s / peer[n].tokens_per_s:.2f}×"]
            if ls:
                cells.append(f"{r.tokens_per_s / ls[n].tokens_per_s:.2f}×")
            cells.append(f"{r.tokens_per_s / raw[n]:.2f}")
            rows.append("| " + " | ".join(cells) + " |")
    for n in args.levels:
        rows.append(f"| raw batched llama_decode (greedy, decode only) | {n} | {raw[n]:.1f} | | | "
                    + ("| " if ls else "") + "1.00 |")
    table = "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n" + "\n".join(rows)
    png = ROOT / "docs" / "bench_concurrency.png"
    plot(results, raw, png)
    ratio_c = cove_turns[-1] / cove_turns[0]
    ratio_p = peer_turns[-1] / peer_turns[0]
    no_ls = "" if args.llama_server else (
        "\nllama.cpp's `llama-server` was not measured in this run (pass `--llama-server PATH`).\n")
    write_section(
        "Concurrent streams: Cove vs peers",
        f"""Measured {dt.date.today().isoformat()} on {machine()}; model SmolLM2-135M-Instruct Q4_1
(bundled), {THREADS} threads everywhere, 64-token answers at temperature 0.8, all streams started
at once by one asyncio client; aggregate = completion tokens of the round ÷ its wall time; each
level ran {args.rounds} rounds, every round with new prompts (new conversations sharing the chat
template's opening, as users of one service share a system prompt), and the median round is
shown (`bench/concurrency.py`).
Cove ran with `COVE_N_PARALLEL={slots}`, `COVE_N_CTX={N_CTX_SEQ}`, once with the default KV layout
(a stream per slot) and once with `COVE_KV_UNIFIED=true`. The llama-cpp-python server reports
errors for the requests it interrupts (it serves one at a time); only completed streams count.
llama-server ran with `--parallel {slots}` (a KV stream per slot, like Cove's default) and its
default prompt cache. The raw rows are greedy lock-step `llama_decode` of N sequences with no
server and no client (decode phase only, median of {args.rounds}): the ceiling.
Targets: Cove ÷ llama-cpp-python server ≥ 2.2× at 8 streams; Cove ÷ llama-server ≥ 1.0;
Cove ÷ raw ≥ 0.85.

{table}
{no_ls}
![aggregate tokens/s by concurrent streams](bench_concurrency.png)

**Long conversations.** Time to first token, median of 3 conversations of 10 turns (64-token
greedy answers, each conversation with its own system prompt): Cove turn 1
{cove_turns[0] * 1000:.0f} ms, turn 10 {cove_turns[-1] * 1000:.0f} ms,
**ratio {ratio_c:.2f}** (target ≤ 1.5); llama-cpp-python server {peer_turns[0] * 1000:.0f} ms →
{peer_turns[-1] * 1000:.0f} ms, ratio {ratio_p:.2f}.
""",
    )
    print(f"turn-10/turn-1 TTFT: Cove {ratio_c:.2f}, llama-cpp-python server {ratio_p:.2f}")


if __name__ == "__main__":
    main()
