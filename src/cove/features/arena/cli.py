"""``cove arena PROMPT -m A -m B``: a battle in the terminal, answers streamed side by side,
then a vote (asked on a terminal, or ``--vote``) stored in this instance's leaderboard, as a
guest's: only the names and the vote are kept. ``cove arena --leaderboard`` prints the table.
Registered by :mod:`cove.cli.main`."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.columns import Columns
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

VOTES = ("A", "B", "C", "D", "tie", "bad")


def leaderboard_table(board: dict[str, Any]) -> Table:
    """The leaderboard: model, rating with its 95% interval, battles, wins/losses/ties."""
    from cove.cli.common import counted

    t = Table(title=f"Arena leaderboard ({counted(board['votes'], 'vote')})")
    for col in ("model", "rating", "95% CI", "battles", "W", "L", "T"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for r in board["models"]:
        t.add_row(r["model"], f"{r['rating']:.0f}", f"{r['ci'][0]:.0f}-{r['ci'][1]:.0f}",
                  str(r["battles"]), str(r["wins"]), str(r["losses"]), str(r["ties"]))
    return t


async def _battle(pipeline: Any, db: Any, prompt: str, models: list[str], blind: bool,
                  max_tokens: int, console: Console) -> tuple[str, list[Any]]:
    from rich.live import Live

    from cove.features.arena import battles
    from cove.features.arena.service import plan, run_battle, start

    contestants = plan(pipeline, models, blind=blind, max_tokens=max_tokens)
    with db.session() as s:
        battle_id = battles.create(s, None, [c.name for c in contestants], blind, prompt).id
    texts = {c.slot: "" for c in contestants}

    def view() -> Columns:
        return Columns([Panel(Text(texts[c.slot]), title=c.slot if blind else
                              f"{c.slot}: {c.name}", width=max(30, console.width //
                                                              len(contestants) - 2))
                        for c in contestants])

    done = False
    try:
        streams = await start(pipeline, contestants, prompt)
        with Live(view(), console=console, refresh_per_second=8) as live:
            async for e in run_battle(contestants, streams):
                if e["type"] == "delta" and e["kind"] == "content":
                    texts[e["slot"]] += e["text"]
                    live.update(view())
        if not console.is_terminal:
            console.line()  # off a terminal, Live leaves its last line open ("╯   Vote kept.")
        done = True
    finally:
        with db.session() as s:
            battles.finish(s, battle_id, list(texts.values()) if done else None)
    return battle_id, contestants


def register(cli: click.Group) -> None:
    """Add the ``arena`` command to ``cli``."""

    @cli.command()
    @click.argument("prompt", required=False)
    @click.option("--model", "-m", "models", multiple=True,
                  help="A contestant: a model or preset (2 to 4).")
    @click.option("--blind/--open", default=True, show_default=True,
                  help="Hide the names until the vote.")
    @click.option("--vote", "vote", type=click.Choice(VOTES), default=None,
                  help="Vote without being asked (A, B, ..., tie, bad).")
    @click.option("--max-tokens", type=click.IntRange(1, 4096), default=256,
                  show_default=True)
    @click.option("--leaderboard", "show_board", is_flag=True,
                  help="Print this instance's leaderboard.")
    def arena(prompt: str | None, models: tuple[str, ...], blind: bool, vote: str | None,
              max_tokens: int, show_board: bool) -> None:
        """Answer PROMPT by 2-4 models side by side, vote, and keep a leaderboard."""
        from cove.cli.common import fail, open_registry, read_settings, run_then_close
        from cove.errors import CoveError
        from cove.features.arena import battles
        from cove.pipeline import ChatPipeline
        from cove.store.db import open_database

        settings = read_settings()
        db = open_database(settings)
        console = Console(highlight=False)
        try:
            if prompt:
                pipeline = ChatPipeline(settings, open_registry(settings))
                battle_id, contestants = run_then_close(pipeline, _battle(
                    pipeline, db, prompt, list(models), blind, max_tokens, console))
                choices = [c.slot for c in contestants] + ["tie", "bad"]
                if vote is None and sys.stdin.isatty():
                    vote = click.prompt("Your vote", type=click.Choice([*choices, "skip"]),
                                        default="skip")
                if vote and vote != "skip":
                    with db.session() as s:
                        try:
                            battles.vote(s, None, battle_id, vote)
                        except CoveError as e:
                            fail(e)
                    console.print("Vote kept. " + ", ".join(
                        f"{c.slot} was {c.name}" for c in contestants), markup=False)
            elif not show_board:
                fail("give a PROMPT and two to four --model, or --leaderboard")
            if show_board:
                with db.session() as s:
                    console.print(leaderboard_table(battles.leaderboard(s)))
        finally:
            db.close()
