"""``cove train sft|grpo|distill`` (registered by :mod:`cove.cli.main`).

Every check that needs no torch runs first (:func:`service.prepare`); training then runs in its
own process while this one shows progress (step, loss or reward, ETA). Ctrl-C stops after the
current step with a checkpoint (``--resume`` continues it); nothing is registered then.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

console = Console(highlight=False)


def _options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--base", required=True, help="Installed model to train over."),
        click.option("--name", required=True, help="Name of the new model."),
        click.option("--max-steps", type=click.IntRange(min=1), default=None,
                     help="Optimizer steps (default: --epochs over the data)."),
        click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=1.0,
                     show_default=True),
        click.option("--lr", type=float, default=None, help="Learning rate (SFT 2e-4, GRPO "
                     "1e-5 by default)."),
        click.option("--lora-rank", type=click.IntRange(1, 256), default=8, show_default=True),
        click.option("--batch-size", type=click.IntRange(min=1), default=2, show_default=True),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--save-steps", type=click.IntRange(min=1), default=50, show_default=True,
                     help="Checkpoint every N steps (and when stopped)."),
        click.option("--held-out", type=click.IntRange(min=0), default=4, show_default=True,
                     help="Examples kept out of training and scored before and after."),
        click.option("--max-new-tokens", type=click.IntRange(1, 4096), default=128,
                     show_default=True, help="Completion length (GRPO, scoring)."),
        click.option("--reward", "rewards", multiple=True, metavar="NAME[=WEIGHT]",
                     help="A reward and its weight: format, accuracy, or a --reward-file's "
                     "name (default: format=1 accuracy=1)."),
        click.option("--reward-file", "reward_files", multiple=True,
                     type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Python file defining reward(prompt, completion, answer)."),
        click.option("--system", default=None, help="System prompt put before each example "
                     "(GRPO default: R1-Zero's format instruction)."),
        click.option("--resume", is_flag=True, help="Continue the run of --name from its last "
                     "checkpoint."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _train(recipe: str, data: Path, kw: dict[str, Any], extra: dict[str, Any]) -> None:
    from cove.cli.common import fail, open_registry, read_settings
    from cove.errors import CoveError
    from cove.features.train import recipes, service
    from cove.features.train.rewards import load_reward_file, parse_weights

    settings = read_settings()
    registry = open_registry(settings)
    try:
        names = [load_reward_file(f)[0] for f in kw["reward_files"]]
        weights = parse_weights(list(kw["rewards"]), names)
        lr = kw["lr"] or (1e-5 if recipe == "grpo" else 2e-4)
        system = kw["system"] or (recipes.R1_SYSTEM if recipe == "grpo" else None)
        opts = service.Options(
            max_steps=kw["max_steps"], epochs=kw["epochs"], lr=lr, lora_rank=kw["lora_rank"],
            batch_size=kw["batch_size"], seed=kw["seed"], save_steps=kw["save_steps"],
            held_out=kw["held_out"], max_new_tokens=kw["max_new_tokens"], rewards=weights,
            reward_files=[str(f) for f in kw["reward_files"]], system=system,
            resume=kw["resume"], **extra)
        spec = service.prepare(settings, registry, recipe, kw["base"], data, kw["name"], opts)
        console.print(f"training {spec['name']} ({recipe}) over {spec['base']['name']} on "
                      f"{spec['examples']} examples ({spec['held_out']} held out); log: "
                      f"{Path(spec['run_dir']) / 'train.log'}", markup=False)
        last = service.run(spec, registry, show_event)
    except CoveError as e:
        fail(e)
    if last.get("event") == "stopped":
        console.print(f"stopped at step {last.get('steps')}: resume with the same command and "
                      "--resume; no model was registered", markup=False)
        sys.exit(130)


def show_event(ev: dict[str, Any]) -> None:
    """One line per event (``step`` lines: step/max, loss or reward, ETA)."""
    kind = ev.get("event")
    if kind == "step":
        parts = [f"step {ev['step']}/{ev['max_steps']}"]
        for key in ("loss", "reward", "reward_std"):
            if key in ev:
                parts.append(f"{key} {ev[key]:.4f}")
        parts += [f"{k} {v:.3f}" for k, v in (ev.get("rewards") or {}).items()]
        if ev.get("eta") is not None:
            parts.append(f"ETA {ev['eta']:.0f} s")
        console.print("  ".join(parts), markup=False)
    elif kind == "eval":
        scores = ", ".join(f"{k} {v:.2f}" for k, v in (ev.get("scores") or {}).items())
        console.print(f"held-out {ev['when']}: {scores or 'nothing held out'}", markup=False)
    elif kind == "warning":
        console.print(f"warning: {ev['message']}", style="yellow", markup=False)
    elif kind == "done":
        if "mean_reward" in ev:
            console.print(f"mean reward {ev['mean_reward']:.3f}; steps whose groups all had "
                          f"zero reward variance: {ev.get('zero_variance_steps', 0)}",
                          markup=False)
        console.print(f"done: {ev['steps']} steps; model {ev['model']} is installed "
                      f"(cove run -m {ev['model']})", style="bold", markup=False)
    elif kind in ("log", "start"):
        msg = ev.get("message") or f"starting at step {ev['step']} of {ev['max_steps']}"
        console.print(msg, style="dim", markup=False)


def register(cli: click.Group) -> None:
    """Add the ``train`` command group to ``cli``."""

    @cli.group()
    def train() -> None:
        """Train a LoRA adapter over an installed model (needs cove[train])."""

    @train.command()
    @click.option("--data", required=True, type=click.Path(path_type=Path),
                  help="JSONL: messages, or prompt + answer/solution.")
    @_options
    def sft(data: Path, **kw: Any) -> None:
        """Supervised fine-tuning (TRL SFT, LoRA); ends in an installed model."""
        _train("sft", data, kw, {})

    @train.command()
    @click.option("--data", required=True, type=click.Path(path_type=Path),
                  help="JSONL: prompts with answer/solution (and tests for code).")
    @click.option("--num-generations", type=click.IntRange(min=2), default=4,
                  show_default=True, help="Completions per prompt (the group).")
    @click.option("--temperature", type=click.FloatRange(0, 2, min_open=True), default=1.0,
                  show_default=True)
    @_options
    def grpo(data: Path, num_generations: int, temperature: float, **kw: Any) -> None:
        """GRPO with rule rewards (TRL, no vLLM); ends in an installed model."""
        _train("grpo", data, kw, {"num_generations": num_generations,
                                  "temperature": temperature})

    @train.command()
    @click.option("--teacher", required=True, help="Installed model writing the traces.")
    @click.option("--prompts", required=True, type=click.Path(path_type=Path),
                  help="JSONL: prompts (with answer/solution for --rule match).")
    @click.option("--out", required=True, type=click.Path(path_type=Path),
                  help="Where to write the SFT dataset (JSONL).")
    @click.option("--rule", default="match", show_default=True,
                  help="match (reference answer), regex:PATTERN, or none.")
    @click.option("--batch", type=click.IntRange(1, 64), default=4, show_default=True)
    @click.option("--max-tokens", type=click.IntRange(min=1), default=512, show_default=True)
    @click.option("--temperature", type=click.FloatRange(0, 2), default=0.6,
                  show_default=True)
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--system", default=None, help="System prompt for the teacher.")
    def distill(teacher: str, prompts: Path, out: Path, rule: str, batch: int,
                max_tokens: int, temperature: float, seed: int, system: str | None) -> None:
        """Write an SFT dataset of a teacher's reasoning traces that pass a rule (then
        `cove train sft --data OUT`)."""
        from cove.cli.common import open_registry, read_settings, run_then_close
        from cove.features.train.distill import distill as run
        from cove.pipeline import ChatPipeline

        pipeline = ChatPipeline(s := read_settings(), open_registry(s))

        def progress(done: int, total: int, kept: int) -> None:
            console.print(f"{done}/{total} prompts, {kept} traces kept", markup=False)

        result = run_then_close(pipeline, run(
            pipeline, teacher, prompts, out, rule=rule, batch=batch, max_tokens=max_tokens,
            temperature=temperature, seed=seed, system=system, progress=progress))
        console.print(f"wrote {result.kept} of {result.total} traces to {result.out} "
                      f"({len(result.dropped)} dropped)", markup=False)
        for line, why in result.dropped[:10]:
            console.print(f"  dropped line {line}: {why}", style="dim", markup=False)
