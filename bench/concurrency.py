"""Concurrent streams: Cove vs llama-cpp-python's server, llama.cpp's llama-server (optional) and
a raw batched llama_decode loop; and time to first token of turn 10 vs turn 1.

Every side is started by this script in the same run, on the bundled model with the same
thread count; all stay loaded (idle ones use no CPU) so that their rounds can be interleaved.
Each level sends N streamed chat requests at once (64-token answers, temperature 0.8, new
prompts every round) and measures aggregate completion tokens/s over the round and p50/p95
time to first token; each level runs ``--rounds`` times per side, the sides taking turns
round by round, and the median round is kept. Results and a plot go to docs/.

Usage: .venv/bin/python bench/concurrency.py [--levels 1 4 8 16] [--rounds 3]
       [--llama-server PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, cove_server, machine, process_server, write_section  # noqa: E402
from bench.load import LoadResult, round_messages, run_load, stream_chat  # noqa: E402
from bench.raw_batch import RawResult, raw_batched  # noqa: E402
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


def median_by_rate(runs: list[LoadResult]) -> LoadResult:
    """The median round by tokens/s."""
    return sorted(runs, key=lambda x: x.tokens_per_s)[len(runs) // 2]


def interleaved(bases: dict[str, str], raw: Callable[[int, int], RawResult], levels: list[int],
                rounds: int) -> tuple[dict[str, dict[int, LoadResult]], dict[int, RawResult]]:
    """Every level ``rounds`` times on every system and the raw loop, interleaved round by
    round (the order rotating each round), so that slow drift of the machine's speed (other
    tenants of the host) falls on all sides alike. All systems see the same new prompts in
    a round (``raw(n, round_id)`` serves the same chats). Returns the median round per system
    and level, and the raw loop's median round."""
    for base in bases.values():
        run_load(base, "smollm2:135m", 1, max_tokens=8, round_id=99)  # warm-up (loads)
    runs: dict[str, dict[int, list[LoadResult]]] = {k: {n: [] for n in levels} for k in bases}
    raw_runs: dict[int, list[RawResult]] = {n: [] for n in levels}
    names = [*bases, "raw"]
    round_id = 0
    for n in levels:
        for r in range(rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                if name == "raw":
                    raw_runs[n].append(raw(n, round_id))
                else:
                    runs[name][n].append(run_load(bases[name], "smollm2:135m", n,
                                                  round_id=round_id))
            round_id += 1
        for name in bases:
            res = median_by_rate(runs[name][n])
            print(f"  {name:24s} {n:2d} streams: {res.tokens_per_s:6.1f} tok/s, TTFT p50 "
                  f"{res.ttft_p50 * 1000:.0f} ms p95 {res.ttft_p95 * 1000:.0f} ms, errors "
                  f"{res.errors}", flush=True)
        mid = sorted(raw_runs[n], key=lambda x: x.tokens_per_s)[rounds // 2]
        print(f"  {'raw batched llama_decode':24s} {n:2d} sequences: {mid.tokens_per_s:6.1f} "
              f"tok/s ({mid.decode_tokens_per_s:.1f} decoding alone)", flush=True)
    return ({k: {n: median_by_rate(v[n]) for n in levels} for k, v in runs.items()},
            {n: sorted(v, key=lambda x: x.tokens_per_s)[rounds // 2]
             for n, v in raw_runs.items()})


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


def plot(results: dict[str, dict[int, LoadResult]], raw: dict[int, RawResult],
         path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, res in results.items():
        xs = sorted(res)
        ax.plot(xs, [res[x].tokens_per_s for x in xs], marker="o", label=name)
    xs = sorted(raw)
    ax.plot(xs, [raw[x].tokens_per_s for x in xs], marker="x", linestyle="--",
            label="raw llama_decode loop")
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
    with ExitStack() as stack:
        bases = {}
        for label, unified in (("Cove", "false"), ("Cove, unified KV", "true")):
            env = {"COVE_N_PARALLEL": str(slots), "COVE_N_CTX": str(N_CTX_SEQ),
                   "COVE_KV_UNIFIED": unified}
            bases[label] = stack.enter_context(cove_server(env))
        bases["llama-cpp-python server"] = stack.enter_context(llama_cpp_python_server(model))
        if args.llama_server:
            bases["llama-server"] = stack.enter_context(
                llama_server(args.llama_server, model, slots))
        results, raw = interleaved(
            bases, lambda n, r: raw_batched(str(model), [round_messages(r, i) for i in range(n)],
                                            64, THREADS),
            args.levels, args.rounds)
        print("turns", flush=True)
        cove_turns = turn_ttft(bases["Cove"])
        peer_turns = turn_ttft(bases["llama-cpp-python server"])

    peer = results["llama-cpp-python server"]
    ls = results.get("llama-server")
    head = ["system", "streams", "tok/s", "TTFT p50/p95 ms", "÷ llama-cpp-python server"]
    if ls:
        head.append("÷ llama-server")
    head += ["÷ raw loop", "÷ raw decoding alone"]
    rows = []
    for name, res in results.items():
        for n in args.levels:
            r = res[n]
            cells = [name, str(n), f"{r.tokens_per_s:.1f}",
                     f"{r.ttft_p50 * 1000:.0f} / {r.ttft_p95 * 1000:.0f}",
                     f"{r.tokens_per_s / peer[n].tokens_per_s:.2f}×"]
            if ls:
                cells.append(f"{r.tokens_per_s / ls[n].tokens_per_s:.2f}×")
            cells += [f"{r.tokens_per_s / raw[n].tokens_per_s:.2f}",
                      f"{r.tokens_per_s / raw[n].decode_tokens_per_s:.2f}"]
            rows.append("| " + " | ".join(cells) + " |")
    for n in args.levels:
        rows.append(f"| raw llama_decode loop (greedy) | {n} | {raw[n].tokens_per_s:.1f} "
                    f"(decoding alone {raw[n].decode_tokens_per_s:.1f}) | | | "
                    + ("| " if ls else "") + "1.00 | |")
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
at once by one asyncio client; aggregate = completion tokens of the round ÷ its wall time. Each
level ran {args.rounds} rounds on every side, the sides taking turns round by round (all servers
loaded at once, idle ones using no CPU), so drift in this shared machine's speed falls on all
alike; every round has new prompts (new conversations sharing the chat template's opening, as
users of one service share a system prompt); the median round is shown
(`bench/concurrency.py`).
Cove ran with `COVE_N_PARALLEL={slots}`, `COVE_N_CTX={N_CTX_SEQ}`, once with the default KV layout
(a stream per slot) and once with `COVE_KV_UNIFIED=true`. The llama-cpp-python server reports
errors for the requests it interrupts (it serves one at a time); only completed streams count.
llama-server ran with `--parallel {slots}` (a KV stream per slot, like Cove's default) and its
default prompt cache. The raw loop is the ceiling for the same work with no server and no
client: the round's chats rendered with the model's template, all prompts prefilled together,
then greedy lock-step `llama_decode` of the N sequences (`bench/raw_batch.py`); its rate counts
prompt processing, like every server's; "decoding alone" is its decode phase only (no prompt
processing at all, so no server can reach it; shown for reference).
Targets: Cove ÷ llama-cpp-python server ≥ 2.2× at 8 streams; Cove ÷ llama-server ≥ 1.0;
Cove ÷ raw loop ≥ 0.85.

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
