"""Brainstorm mode against plain sampling, with the bundled model (run by hand, once).

    .venv/bin/python bench/ideas.py [--n 24] [--goal "..."] [--model NAME] [--out FILE.json]
    .venv/bin/python bench/ideas.py --calibrate     # the duplicate thresholds only

1. **Calibration** of the duplicate thresholds: cosine similarity (the core embedder) and
   character similarity of labelled idea pairs, paraphrases of one idea vs different ideas for
   the same goal (the pairs are below); precision and recall of the thresholds in force.
2. **Diversity at equal generated tokens**: a brainstorm of ``n`` ideas against
   plain sampling of one list prompt ("Give ideas for GOAL, one per line") with different
   seeds until as many tokens were generated. For both: candidates, distinct ideas (the same
   greedy deduplication), duplicate rate and mean pairwise embedding distance (1 - cosine).
3. **Wall time**: that brainstorm, scoring included (two scorings per idea), against one
   stream generating as many tokens: its rate is measured on one long answer (up to
   ``--single-cap`` tokens) and the time for the brainstorm's token count is that count over
   the rate, plus its time to first token.

One brainstorm serves 2 and 3 (its generation tokens, scoring left out, set the plain
sampling budget).

Targets (issue 13): at least 2x the distinct ideas of plain sampling; the brainstorm no slower
than the single stream. Prints a JSON report (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SAME = [  # paraphrases of one idea: should be duplicates
    ("Community tool library. Neighbours lend each other drills and ladders from a shared shed.",
     "Neighbourhood tool sharing. A shared shed where neighbours borrow drills, ladders and "
     "tools."),
    ("Walking school bus. Parents take turns walking a group of children to school.",
     "Walking bus to school. Parents rotate walking groups of kids to school on foot."),
    ("Repair cafe. Monthly event where volunteers fix broken appliances for free.",
     "Fix-it cafe. Volunteers repair broken household appliances at a free monthly meetup."),
    ("Rooftop gardens. Grow vegetables on flat office roofs.",
     "Office roof farming. Use flat rooftops of offices to grow vegetables."),
    ("Bike commuting rewards. Employers pay staff a bonus for cycling to work.",
     "Cycle to work bonus. Companies reward employees who bike to the office with extra pay."),
    ("Plastic bottle deposit. Shoppers get money back when they return bottles.",
     "Deposit return scheme. Customers are refunded a small deposit for each bottle returned."),
    ("Language exchange meetups. Pair native speakers to teach each other their languages.",
     "Tandem language meetups. Native speakers pair up and teach one another their language."),
    ("Shared electric car pool. Residents of a block share a few electric cars.",
     "Block EV sharing. A handful of electric cars shared by everyone living in the building."),
    ("Free lunch coding class. Teach coding to staff during lunch breaks.",
     "Lunchtime programming lessons. Staff learn to code in free sessions over lunch."),
    ("Solar panels on schools. Install solar panels on school roofs to cut energy bills.",
     "School rooftop solar. Put solar panels on schools' roofs to lower their power costs."),
    ("Daily standup walk. The team holds its morning meeting while walking outside.",
     "Walking standups. Morning team meetings held on a walk outdoors."),
    ("Reading buddies. Older students read books with younger ones each week.",
     "Reading buddy programme. Each week older pupils read with younger children."),
]
DIFFERENT = [  # different ideas for one goal: should be kept apart
    (SAME[0][0], SAME[2][0]), (SAME[1][0], SAME[4][0]), (SAME[3][0], SAME[9][0]),
    (SAME[5][0], SAME[7][0]), (SAME[6][0], SAME[11][0]), (SAME[8][0], SAME[10][0]),
    (SAME[1][0], SAME[11][0]), (SAME[4][0], SAME[7][0]), (SAME[3][0], SAME[0][0]),
    (SAME[2][0], SAME[5][0]),
    (SAME[9][0], "Solar-powered phone chargers. Benches in parks with solar chargers for "
                 "phones."),
    (SAME[4][0], "Bike repair workshops. Free classes teaching people to fix their own bikes."),
]


def calibrate() -> dict[str, Any]:
    from cove.embeddings import embed
    from cove.features.ideas.cluster import COSINE_DUPLICATE, TEXT_DUPLICATE, text_ratio

    def scores(pairs: list[tuple[str, str]]) -> list[tuple[float, float]]:
        out = []
        for a, b in pairs:
            v = embed([a, b])
            out.append((round(float(v[0] @ v[1]), 3), round(text_ratio(a, b), 3)))
        return out

    same, diff = scores(SAME), scores(DIFFERENT)

    def dup(c: float, r: float) -> bool:
        return c >= COSINE_DUPLICATE or r >= TEXT_DUPLICATE

    caught = sum(dup(*s) for s in same)
    false = sum(dup(*s) for s in diff)
    return {"cosine_threshold": COSINE_DUPLICATE, "text_threshold": TEXT_DUPLICATE,
            "paraphrase_cosines": sorted(c for c, _ in same),
            "different_cosines": sorted(c for c, _ in diff),
            "paraphrase_text_ratios": sorted(r for _, r in same),
            "different_text_ratios": sorted(r for _, r in diff),
            "recall": f"{caught}/{len(same)}", "false_merges": f"{false}/{len(diff)}"}


LIST_LINE = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s*(.+)$")


def plain_ideas(text: str) -> list[str]:
    """The list items of a plain answer: each numbered or bulleted line with the unmarked
    lines right under it (a pitch or a reason on the next lines belongs to its item; a blank
    line ends it), bold
    stripped; items under three characters are dropped."""
    items: list[list[str]] = []
    open_item = False  # a blank line closes the item above it
    for line in text.splitlines():
        m = LIST_LINE.match(line)
        if m:
            items.append([m.group(1)])
            open_item = True
        elif not line.strip():
            open_item = False
        elif open_item:
            items[-1].append(line.strip())
    out = [" ".join(" ".join(i).replace("**", "").split()) for i in items]
    return [t for t in out if len(t) >= 3]


def note(report: dict[str, Any], out: str | None, what: str) -> None:
    """Say how far the run got (stderr) and keep the partial report in ``out``."""
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)
    if out:
        Path(out).write_text(json.dumps(report, indent=2) + "\n")


def diversity(texts: list[str]) -> dict[str, Any]:
    import numpy as np

    from cove.embeddings import embed
    from cove.features.ideas.cluster import Deduper

    if not texts:
        return {"candidates": 0, "distinct": 0, "duplicate_rate": 0.0, "mean_distance": 0.0}
    vectors = embed(texts)
    d = Deduper()
    for t, v in zip(texts, vectors, strict=True):
        d.add(t, v)
    sims = vectors @ vectors.T
    iu = np.triu_indices(len(texts), 1)
    mean = float((1 - sims[iu]).mean()) if len(texts) > 1 else 0.0
    return {"candidates": len(texts), "distinct": len(d.kept),
            "duplicate_rate": round(1 - len(d.kept) / len(texts), 3),
            "mean_distance": round(mean, 3)}


PLAIN_PROMPTS = {
    "plain_sampling": "Give ideas for this goal, one per line: {goal}",
    "plain_sampling_fields": ("Give ideas for this goal. For each idea write a short title, a "
                              "one-sentence pitch and one sentence on why it could work. "
                              "Goal: {goal}"),
}


async def plain_sampling(pipeline: Any, prompt: str, tokens: int, args: argparse.Namespace,
                         report: dict[str, Any]) -> dict[str, Any]:
    """Sample ``prompt`` with new seeds, ``n_parallel`` at a time, until ``tokens`` were
    generated; the diversity of its list items."""
    from cove.engine.types import SamplingParams
    from cove.pipeline import ChatMessage, ChatRequest

    plain: list[str] = []
    spent, seed = 0, args.seed
    t = time.monotonic()
    while spent < tokens:
        batch = []
        for _ in range(pipeline.settings.n_parallel):
            want = min(args.max_tokens, tokens - spent - sum(b[1] for b in batch))
            if want <= 0:
                break
            batch.append((seed, want))
            seed += 1
        streams = [await pipeline.start_chat(ChatRequest(
            [ChatMessage("user", prompt)],
            SamplingParams(max_tokens=want, temperature=0.8, seed=s), args.model, None))
            for s, want in batch]
        results = await asyncio.gather(*(st.collect() for st in streams))
        for r in results:
            spent += r.usage.completion_tokens
            plain.extend(plain_ideas(r.content))
        note(report, None, f"plain sampling {spent}/{tokens} tokens")
    return {**diversity(plain), "completion_tokens": spent,
            "seconds": round(time.monotonic() - t, 1), "examples": plain[:8]}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from cove.config import Settings
    from cove.engine.types import SamplingParams
    from cove.features.ideas.service import Brainstorm, brainstorm, idea_text
    from cove.models.registry import ModelRegistry
    from cove.models.store import ModelStore
    from cove.pipeline import ChatDone, ChatMessage, ChatPipeline, ChatRequest

    # an installed --model lives in the user's Cove home; the bundled one needs none
    home = Settings().home if args.model else Path(tempfile.mkdtemp())
    settings = Settings(home=home, n_ctx=2048)
    pipeline = ChatPipeline(settings, ModelRegistry(ModelStore(settings.home / "models")))
    report: dict[str, Any] = {"goal": args.goal, "n": args.n,
                              "n_parallel": settings.n_parallel,
                              "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        await pipeline.runtime(args.model)  # load before timing

        async def board(samples: int) -> tuple[dict[str, Any], list[str], float]:
            t = time.monotonic()
            cands: list[str] = []
            done: dict[str, Any] = {}
            async for e in brainstorm(pipeline, Brainstorm(
                    args.goal, n=args.n, model=args.model, seed=args.seed,
                    max_tokens=args.max_tokens,
                    score_samples=samples)):
                if e["type"] == "candidate":
                    cands.append(idea_text(e["idea"]))
                    note(report, None, f"candidate {len(cands)}")
                elif e["type"] == "done":
                    done = e
            return done, cands, time.monotonic() - t

        # one brainstorm with scoring: its candidates for diversity, its time for speed
        done, cands, secs = await board(2)
        usage = done["usage"]
        tokens = usage["completion_tokens"] - usage["scoring_completion_tokens"]
        report["brainstorm"] = {**diversity(cands), "generation_tokens": tokens,
                                "scoring_tokens": usage["scoring_completion_tokens"],
                                "requests": usage["requests"], "ideas": len(done["ideas"]),
                                "themes": len(done["groups"]), "seconds": round(secs, 1)}
        note(report, args.out, "brainstorm done")
        # 2. plain sampling of as many generated tokens, asked for short lines and for the
        # brainstorm's own fields
        for key, prompt in PLAIN_PROMPTS.items():
            report[key] = await plain_sampling(pipeline, prompt.format(goal=args.goal), tokens,
                                               args, report)
            b, p = report["brainstorm"]["distinct"], report[key]["distinct"]
            report[key]["distinct_ratio"] = round(b / p, 2) if p else None

        note(report, args.out, "plain sampling done")
        # 3. one stream generating as many tokens as the whole brainstorm did
        tokens = usage["completion_tokens"]
        long_prompt = f"Write a very long, detailed essay with many ideas about: {args.goal}"
        t = time.monotonic()
        st = await pipeline.start_chat(ChatRequest(
            [ChatMessage("user", long_prompt)],
            SamplingParams(max_tokens=min(tokens, args.single_cap), temperature=0.8,
                           seed=args.seed), args.model, None))
        first, r_tokens = 0.0, 0
        async for item in st:
            if not first:
                first = time.monotonic() - t
            if isinstance(item, ChatDone):
                r_tokens = item.usage.completion_tokens
        r_secs = time.monotonic() - t
        rate = r_tokens / max(r_secs - first, 1e-9)
        single = first + tokens / rate
        report["wall_time"] = {"brainstorm_seconds": round(secs, 1),
                               "brainstorm_completion_tokens": tokens,
                               "single_stream_first_token_s": round(first, 2),
                               "single_stream_tokens_measured": r_tokens,
                               "single_stream_seconds_measured": round(r_secs, 1),
                               "single_stream_tokens_per_s": round(rate, 2),
                               "single_stream_seconds_for_brainstorm_tokens": round(single, 1),
                               "brainstorm_vs_single": round(secs / single, 2)}
    finally:
        pipeline.close()
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--goal", default="Ways to make a small town greener")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--model", default=None, help="an installed model (default: the default)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--single-cap", type=int, default=256)
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    report: dict[str, Any] = {"calibration": calibrate()}
    if not args.calibrate:
        report.update(asyncio.run(run(args)))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
