"""``cove logic QUESTION``: logic mode in the terminal (registered by :mod:`cove.cli.main`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click
from rich.console import Console

from cove.features.logic import MAX_K

if TYPE_CHECKING:
    from cove.features.logic.service import LogicResult


def show(result: LogicResult, console: Console, verbose: bool) -> None:
    """Print each sample's answer (with its tool calls and corrections when ``verbose``),
    then the voted answer and agreement."""
    for i, s in enumerate(result.samples, 1):
        console.print(f"sample {i} (seed {s.seed}): {s.answer or 'no answer'}"
                      + (" (arithmetic corrected)" if s.corrected else ""), markup=False)
        if verbose:
            for t in s.tool_runs:
                console.print(f"  tool {t.name}({t.arguments}) -> {t.result}", markup=False,
                              style="dim")
            console.print("  " + s.text.strip().replace("\n", "\n  "), markup=False,
                          style="dim")
    console.print(f"Answer: {result.answer or 'none'}  (agreement {result.votes}/{result.k}, "
                  f"{result.seconds:.1f} s, {result.model})", markup=False, style="bold")


def register(cli: click.Group) -> None:
    """Add the ``logic`` command to ``cli``."""

    @cli.command()
    @click.argument("question")
    @click.option("--model", "-m", default=None, help="Model name (default: the bundled model).")
    @click.option("-k", "k", type=click.IntRange(1, MAX_K), default=5, show_default=True,
                  help="Samples to vote over.")
    @click.option("--temperature", type=click.FloatRange(0, 2), default=0.7, show_default=True)
    @click.option("--seed", type=int, default=None, help="Seed of the first sample.")
    @click.option("--max-tokens", type=click.IntRange(min=1), default=384, show_default=True)
    @click.option("--tools/--no-tools", default=True, show_default=True,
                  help="Let the model call calculate, convert_units and run_python.")
    @click.option("--constrained", is_flag=True,
                  help="Grammar-constrained tool calls (every call valid).")
    @click.option("--verbose", "-v", is_flag=True, help="Show each sample's work and tools.")
    @click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
    def logic(question: str, model: str | None, k: int, temperature: float, seed: int | None,
              max_tokens: int, tools: bool, constrained: bool, verbose: bool,
              as_json: bool) -> None:
        """Solve QUESTION in logic mode: K samples with tools, majority vote."""
        from cove.cli.common import open_registry, read_settings, run_then_close
        from cove.features.logic.service import solve
        from cove.pipeline import ChatPipeline

        pipeline = ChatPipeline(s := read_settings(), open_registry(s))
        result = run_then_close(pipeline, solve(
            pipeline, question, model=model, k=k, temperature=temperature, seed=seed,
            max_tokens=max_tokens, use_tools=tools, constrained=constrained))
        if as_json:
            click.echo(json.dumps(result.to_dict(), indent=2))
        else:
            show(result, Console(highlight=False), verbose)
