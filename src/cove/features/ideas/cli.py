"""``cove ideas GOAL``: a brainstorm in the terminal with live progress and a ranked table
(registered by :mod:`cove.cli.main`). Runs in this process on the local models; nothing is
saved (boards are kept for web and API users who are signed in)."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cove.features.ideas import MAX_IDEAS


def table(result: dict[str, Any]) -> Table:
    """The ranked ideas: rank, score, theme, title and pitch."""
    t = Table(title=f"Ideas: {result['goal']}", show_lines=False)
    for col, kw in (("#", {"justify": "right"}), ("score", {"justify": "right"}),
                    ("theme", {}), ("idea", {"ratio": 1})):
        t.add_column(col, **kw)  # type: ignore[arg-type]
    for i in result["ideas"]:
        score = "" if i.get("score") is None else f"{i['score']:.1f}"
        t.add_row(str(i["rank"]), score, i.get("group", ""),
                  f"[bold]{escape(i['title'])}[/bold]\n{escape(i['pitch'])}")
    return t


def escape(text: str) -> str:
    from rich.markup import escape as esc

    return esc(text)


async def _run(pipeline: Any, req: Any, console: Console) -> dict[str, Any]:
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from cove.features.ideas.service import brainstorm

    counts = {"candidate": 0, "duplicate": 0, "score": 0}
    result: dict[str, Any] = {}
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console,
                  transient=True) as progress:
        task = progress.add_task("starting", total=None)
        async for e in brainstorm(pipeline, req):
            if e["type"] == "candidate":
                counts["candidate"] += 1
                counts["duplicate"] += e["idea"]["duplicate_of"] is not None
            elif e["type"] == "score":
                counts["score"] += 1
            elif e["type"] == "done":
                result = e
            kept = counts["candidate"] - counts["duplicate"]
            progress.update(task, description=(
                f"{kept}/{req.n} ideas ({counts['duplicate']} duplicates dropped), "
                f"{counts['score']} scored"))
    return result


def register(cli: click.Group) -> None:
    """Add the ``ideas`` command to ``cli``."""

    @cli.command()
    @click.argument("goal")
    @click.option("-n", "n", type=click.IntRange(1, MAX_IDEAS), default=12, show_default=True,
                  help="How many ideas.")
    @click.option("--constraint", "-c", "constraints", multiple=True,
                  help="A constraint (repeatable).")
    @click.option("--criterion", "criteria", multiple=True,
                  help="A judging criterion (repeatable; default impact, feasibility, "
                       "novelty).")
    @click.option("--model", "-m", default=None, help="Model name (default: the bundled model).")
    @click.option("--seed", type=int, default=None, help="Seed of the first request.")
    @click.option("--max-tokens", type=click.IntRange(32, 4096), default=360,
                  show_default=True, help="Tokens per generation request (three ideas).")
    @click.option("--score-samples", type=click.IntRange(0, 5), default=2, show_default=True,
                  help="Scorings averaged per idea (0: no scoring).")
    @click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
    def ideas(goal: str, n: int, constraints: tuple[str, ...], criteria: tuple[str, ...],
              model: str | None, seed: int | None, max_tokens: int, score_samples: int,
              as_json: bool) -> None:
        """Brainstorm GOAL: many ideas at once, duplicates dropped, grouped, scored, ranked."""
        from cove.cli.common import counted, open_registry, read_settings, run_then_close
        from cove.features.ideas.service import Brainstorm
        from cove.pipeline import ChatPipeline

        pipeline = ChatPipeline(s := read_settings(), open_registry(s))
        console = Console(stderr=True, highlight=False)
        req = Brainstorm(goal, list(constraints), list(criteria), n, model, seed, max_tokens,
                         score_samples)
        result = run_then_close(pipeline, _run(pipeline, req, console))
        if as_json:
            click.echo(json.dumps(result, indent=2, ensure_ascii=False))
            return
        out = Console(highlight=False)
        out.print(table(result))
        out.print(f"{counted(len(result['ideas']), 'idea')} in "
                  f"{counted(len(result['groups']), 'theme')} from "
                  f"{counted(result['candidates'], 'candidate')} "
                  f"({counted(result['duplicates'], 'duplicate')}), "
                  f"{result['usage']['completion_tokens']} tokens generated, "
                  f"{result['seconds']:.1f} s, {result['model']}", style="dim", markup=False)
