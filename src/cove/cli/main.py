"""``cove`` command: run, serve, config, version, and the model commands of
:mod:`cove.cli.models` (pull, import, list, show, rm, cp, ps, create)."""

from __future__ import annotations

import asyncio
import sys

import click
from rich.console import Console

from cove import __version__
from cove.cli.models import register as register_model_commands
from cove.config import load_settings
from cove.engine.types import SamplingParams
from cove.errors import CoveError


def _fail(err: CoveError) -> None:
    Console(stderr=True).print(f"Error: {err.message}", style="red", markup=False)
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Cove: a private, local AI assistant. Nothing leaves this machine."""


@cli.command()
@click.argument("prompt", required=False)
@click.option("--model", "-m", default=None, help="Model name (default: the bundled model).")
@click.option("--system", "-s", default=None, help="System prompt.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None, help="Answer length cap.")
@click.option("--temperature", type=click.FloatRange(0, 2), default=0.8, show_default=True)
@click.option("--seed", type=int, default=None, help="Seed for reproducible answers.")
def run(
    prompt: str | None, model: str | None, system: str | None, max_tokens: int | None,
    temperature: float, seed: int | None,
) -> None:
    """Answer PROMPT, or chat interactively when no prompt is given."""
    from cove.cli.chat import interactive, run_once, stdin_prompt
    from cove.models.registry import ModelRegistry
    from cove.models.store import ModelStore
    from cove.pipeline import ChatPipeline

    settings = load_settings()
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
    console = Console(highlight=False)
    prompt = prompt if prompt is not None else stdin_prompt()

    async def main() -> None:
        pipeline = ChatPipeline(settings, ModelRegistry(ModelStore(settings.home / "models")))
        try:
            if prompt is not None:
                await run_once(pipeline, prompt, params, model, system, console)
            else:
                await interactive(pipeline, params, model, system, console)
        finally:
            pipeline.close()

    try:
        asyncio.run(main())
    except CoveError as e:
        _fail(e)
    except KeyboardInterrupt:
        sys.exit(130)


@cli.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default 11435).")
def serve(host: str | None, port: int | None) -> None:
    """Serve the OpenAI-compatible (/v1) and Ollama-compatible (/api) APIs."""
    import uvicorn

    from cove.app import create_app

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = load_settings(**overrides)
    app = create_app(settings)
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_level=settings.log_level,
        timeout_graceful_shutdown=5,
    )


@cli.command()
def config() -> None:
    """Show every setting: its environment variable, current value and description."""
    from rich.table import Table

    from cove.config import Settings

    settings = load_settings()
    table = Table("VARIABLE", "VALUE", "DESCRIPTION", box=None)
    for name, field in Settings.model_fields.items():
        table.add_row(f"COVE_{name.upper()}", str(getattr(settings, name)),
                      field.description or "")
    Console().print(table)


@cli.command()
def version() -> None:
    """Print Cove's version."""
    click.echo(f"cove {__version__}")


register_model_commands(cli)


def main() -> None:
    """Console-script entry point: the egress guard goes up before anything else runs."""
    from cove.privacy import install_egress_guard

    install_egress_guard()
    cli()
