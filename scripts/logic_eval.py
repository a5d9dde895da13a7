"""Accuracy of plain decoding vs logic mode on the generated word problems.

Plain: one greedy answer (temperature 0) with the logic-mode system prompt, no tools, no
checks. Logic: ``k`` samples at temperature 0.7 with tools, arithmetic checks and a majority
vote. Both run in-process through the one chat pipeline. Writes a Markdown table (accuracy,
mean agreement, wall time, per kind) with date, machine and model to ``docs/logic_eval.md``.

    .venv/bin/python scripts/logic_eval.py --n 20 --k 3
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import time
from collections import defaultdict
from pathlib import Path

from cove.config import load_settings
from cove.features.logic.evalset import problems
from cove.features.logic.service import solve
from cove.models.registry import ModelRegistry
from cove.models.store import ModelStore
from cove.pipeline import ChatPipeline
from cove.privacy import install_egress_guard


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


async def evaluate(args: argparse.Namespace) -> str:
    settings = load_settings()
    pipeline = ChatPipeline(settings, ModelRegistry(ModelStore(settings.home / "models")))
    rows = []
    try:
        model = pipeline.resolve(args.model).name
        for i, p in enumerate(problems(args.n, args.seed)):
            t0 = time.monotonic()
            plain = await solve(pipeline, p.question, model=args.model, k=1, temperature=0.0,
                                seed=0, max_tokens=args.max_tokens, use_tools=False,
                                verify=False)
            t1 = time.monotonic()
            logic = await solve(pipeline, p.question, model=args.model, k=args.k,
                                temperature=0.7, seed=1000 * i, max_tokens=args.max_tokens,
                                max_rounds=2)
            t2 = time.monotonic()
            tools = sum(len(s.tool_runs) for s in logic.samples)
            fixes = sum(s.corrected for s in logic.samples)
            rows.append((p, plain.answer, logic.answer, logic.agreement, t1 - t0, t2 - t1,
                         tools, fixes))
            print(f"{i + 1:3}/{args.n} {p.kind:16} want {p.answer:>6}  plain "
                  f"{plain.answer!s:>6}  logic {logic.answer!s:>6} ({logic.votes}/{args.k}, "
                  f"{tools} tool calls, {fixes} corrected)", flush=True)
    finally:
        pipeline.close()
    return report(rows, model, args)


def report(rows: list[tuple], model: str, args: argparse.Namespace) -> str:  # type: ignore[type-arg]
    n = len(rows)
    plain_ok = sum(r[1] == r[0].answer for r in rows)
    logic_ok = sum(r[2] == r[0].answer for r in rows)
    lines = [
        "# Logic mode evaluation", "",
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {cpu_name()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()} (shared with other jobs)",
        f"- Model: {model}",
        f"- Problems: {n} from `cove.features.logic.evalset.problems({args.n}, seed={args.seed})`"
        f"; max_tokens {args.max_tokens}",
        "- Plain: one greedy answer, no tools, no checks. Logic: "
        f"k={args.k} samples at temperature 0.7, tools (calculate, convert_units, run_python; "
        "at most 2 rounds), arithmetic re-checked with sympy, majority vote.",
        f"- Command: `python scripts/logic_eval.py --n {args.n} --k {args.k} "
        f"--max-tokens {args.max_tokens}`", "",
        "| mode | accuracy | mean agreement | total time (s) |",
        "|---|---|---|---|",
        f"| plain | {plain_ok}/{n} ({plain_ok / n:.0%}) | - | {sum(r[4] for r in rows):.0f} |",
        f"| logic (k={args.k}) | {logic_ok}/{n} ({logic_ok / n:.0%}) | "
        f"{sum(r[3] for r in rows) / n:.2f} | {sum(r[5] for r in rows):.0f} |", "",
        f"Tool calls made by the model: {sum(r[6] for r in rows)}; samples whose answer the "
        f"arithmetic check corrected: {sum(r[7] for r in rows)}.", "",
        "| kind | n | plain correct | logic correct |", "|---|---|---|---|",
    ]
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        k = kinds[r[0].kind]
        k[0] += 1
        k[1] += r[1] == r[0].answer
        k[2] += r[2] == r[0].answer
    lines += [f"| {kind} | {a} | {b} | {c} |" for kind, (a, b, c) in kinds.items()]
    lines += ["", "| # | question | want | plain | logic | agreement |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {i} | {r[0].question} | {r[0].answer} | {r[1]} | {r[2]} | {r[3]:.2f} |"
              for i, r in enumerate(rows, 1)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="problems")
    parser.add_argument("--k", type=int, default=3, help="logic-mode samples")
    parser.add_argument("--seed", type=int, default=0, help="problem generation seed")
    parser.add_argument("--model", default=None, help="model (default: the bundled one)")
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--out", type=Path, default=Path("docs/logic_eval.md"))
    args = parser.parse_args()
    install_egress_guard()
    text = asyncio.run(evaluate(args))
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
