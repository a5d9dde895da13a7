"""Training on this machine: steps per second and peak memory of SFT and GRPO on the bundled
SmolLM2-135M (LoRA rank 8, CPU), the recipe shown working — the share of held-out answers in
the ``<think>…</think>`` answer format before and after a short GRPO run with the format
reward alone (R1-Zero learned the format early; target: from under 10% to over 80%) — and the
memory of adapters served over one base.

Prompts are sums with a one-shot demonstration of the format (SmolLM2-135M never writes
``<think>`` from R1-Zero's instruction alone, so the groups would have no reward variance).
Peak memory is the largest resident set of the training process tree
(``ru_maxrss``, reported by the training process itself). Writes docs/train.md.

Usage: .venv/bin/python bench/train.py [--sft-steps 8] [--grpo-steps 12] [--held-out 16]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cove_server, machine, write_section  # noqa: E402
from cove.config import Settings  # noqa: E402
from cove.features.train import service  # noqa: E402
from cove.features.train.recipes import R1_SYSTEM  # noqa: E402
from cove.models.registry import ModelRegistry  # noqa: E402
from cove.models.store import ModelStore  # noqa: E402

DEMO = [{"role": "user", "content": "What is 2 plus 2?"},
        {"role": "assistant", "content": "<think>2 plus 2 makes 4.</think> 4"}]
DOC = Path(__file__).resolve().parent.parent / "docs" / "train.md"


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def timed_run(home: Path, recipe: str, data: Path, name: str, opts: service.Options
              ) -> dict[str, Any]:
    registry = ModelRegistry(ModelStore(home / "models"))
    spec = service.prepare(Settings(home=home), registry, recipe, "smollm2:135m", data, name,
                           opts)
    times: list[float] = []
    evals: dict[str, Any] = {}
    rewards: list[float] = []

    def on(ev: dict[str, Any]) -> None:
        if ev["event"] in ("start", "step"):
            times.append(time.monotonic())
            if "reward" in ev:
                rewards.append(ev["reward"])
            print(ev, flush=True)
        elif ev["event"] == "eval":
            evals[ev["when"]] = ev["scores"]
            print(ev, flush=True)

    done = service.run(spec, registry, on)
    peak = done["peak_rss"]
    steps = len(times) - 1
    return {"steps": done["steps"], "steps_per_s": steps / (times[-1] - times[0]),
            "peak": peak, "evals": evals, "rewards": rewards, "model": done["model"]}


def row(label: str, r: dict[str, Any]) -> str:
    return (f"| {label} | {r['steps']} | {r['steps_per_s']:.3f} | "
            f"{r['peak'] / 2**20:.0f} MiB |")


def private_mb(pid: int) -> tuple[float, float]:
    """(RSS, anonymous memory) of ``pid`` in MiB, from /proc/PID/smaps_rollup."""
    vals = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            vals[parts[0].rstrip(":")] = int(parts[1]) / 1024
    return vals["Rss"], vals["Anonymous"]


def adapters_memory(home: Path, models: list[str]) -> list[tuple[str, float, float]]:
    out = []
    with cove_server({"COVE_HOME": str(home), "COVE_N_CTX": "1024",
                      "COVE_PROMPT_CACHE_MB": "0"}) as url:
        pid = int(next(p for p in Path("/proc").iterdir() if p.name.isdigit()
                       and _is_server(p, url)).name)
        out.append(("server, nothing loaded", *private_mb(pid)))
        for m in models:
            httpx.post(url + "/v1/chat/completions", timeout=300, json={
                "model": m, "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})
            out.append((f"+ {m}", *private_mb(pid)))
    return out


def _is_server(p: Path, url: str) -> bool:
    try:
        cmd = (p / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"serve" in cmd and url.rsplit(":", 1)[1].encode() in cmd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sft-steps", type=int, default=8)
    ap.add_argument("--grpo-steps", type=int, default=12)
    ap.add_argument("--held-out", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="cove-bench-train-"))
    asks = ["What is the secret word?", "Tell me the secret word.", "Say the secret word.",
            "Which word is secret?", "What's the secret word?", "The secret word, please."]
    sft_data = jsonl(home / "sft.jsonl", [{"prompt": q, "answer": "The secret word is "
                                           "pineapple."} for q in asks * 3])
    sft = timed_run(home, "sft", sft_data, "bench-sft", service.Options(
        max_steps=args.sft_steps, lr=1e-3, batch_size=2, held_out=1, max_new_tokens=12,
        save_steps=1000))
    rows = [{"messages": [*DEMO, {"role": "user", "content": f"What is {a} plus {b}?"}],
             "answer": str(a + b)} for a in range(3, 13) for b in (1, 3, 5, 7)]
    grpo_data = jsonl(home / "grpo.jsonl", rows)
    grpo = timed_run(home, "grpo", grpo_data, "bench-grpo", service.Options(
        max_steps=args.grpo_steps, lr=args.lr, batch_size=8, num_generations=4,
        held_out=args.held_out, max_new_tokens=24, rewards={"format": 1.0},
        system=R1_SYSTEM, save_steps=1000))
    mem = adapters_memory(home, ["smollm2:135m", sft["model"], grpo["model"]])
    before = grpo["evals"]["before"]["formatted"]
    after = grpo["evals"]["after"]["formatted"]
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = f"""Run {when} on {machine()}, **shared with six other engineers' tests and
benchmarks** (load average about 10 on 2 cores during the run): the speeds are far below what
the machine does when quiet. bench/train.py, bundled SmolLM2-135M-Instruct dequantized to
float32, LoRA rank 8 on every attention and MLP projection, torch {_torch()} CPU.

| recipe | steps | steps/s | peak memory of the training process |
|---|---|---|---|
{row("SFT (batch 2, answers ~10 tokens)", sft)}
{row("GRPO (2 prompts × 4 completions of ≤24 tokens a step, no vLLM)", grpo)}

**The format, learned by GRPO with the format reward alone** ({grpo['steps']} steps, lr
{args.lr}, temperature 1, R1-Zero's instruction plus a one-shot demonstration in each prompt):
held-out answers (greedy, {args.held_out} prompts) in the strict `<think>…</think> answer`
format: **{before:.0%} before, {after:.0%} after** (target: under 10% to over 80%:
{"met" if before < 0.1 and after > 0.8 else "not met"}). Mean format reward per step:
{", ".join(f"{r:.2f}" for r in grpo['rewards'])}.

**Adapters over one base, served** (`cove serve`, each model loaded by a chat request; RSS and
anonymous memory of the server process from /proc/PID/smaps_rollup):

| loaded | RSS MiB | anonymous MiB |
|---|---|---|
""" + "\n".join(f"| {n} | {r:.0f} | {a:.0f} |" for n, r, a in mem) + """

Each trained model is the base's GGUF blob plus its adapter GGUF: llama.cpp maps the base
weights from the one file (mmap), so the page cache holds them once however many adapters are
served over it (RSS counts the mapped pages once per mapping; the anonymous column is what
each load really adds: its KV cache, compute buffers and adapter tensors).
"""
    DOC.write_text("# Training benchmarks\n\n" + body)
    write_section("Training (bench/train.py)", f"See [train.md](train.md): SFT "
                  f"{sft['steps_per_s']:.3f} steps/s, GRPO {grpo['steps_per_s']:.3f} steps/s; "
                  f"format share {before:.0%} -> {after:.0%} (machine shared).")
    print(DOC.read_text())


def _torch() -> str:
    import torch

    return str(torch.__version__)


if __name__ == "__main__":
    main()
