"""``cove`` command: run, serve, config, version, and the model commands of
:mod:`cove.cli.models` (pull, import, list, show, rm, cp, ps, create)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
from rich.console import Console

from cove import __version__
from cove.backends.cli import backend as backend_group
from cove.cli.common import fail, open_registry, read_settings
from cove.cli.models import register as register_model_commands
from cove.config import Settings
from cove.engine.types import SamplingParams
from cove.errors import CoveError, InvalidRequest
from cove.features.arena.cli import register as register_arena_command
from cove.features.ideas.cli import register as register_ideas_command
from cove.features.logic.cli import register as register_logic_command
from cove.features.memes.cli import register as register_meme_commands
from cove.features.search.cli import register as register_knowledge_commands
from cove.features.train.cli import register as register_train_commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="cove",
                      message="%(prog)s %(version)s")
def cli() -> None:
    """Cove: a private, local AI assistant. Nothing leaves this machine."""


@cli.command()
@click.argument("prompt", required=False)
@click.option("--model", "-m", default=None, help="Model name (default: the bundled model).")
@click.option("--system", "-s", default=None, help="System prompt.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None, help="Answer length cap.")
@click.option("--temperature", type=click.FloatRange(0, 2), default=0.8, show_default=True)
@click.option("--seed", type=int, default=None, help="Seed for reproducible answers.")
@click.option("--search", is_flag=True,
              help="Answer with sources: your collections, the knowledge packs (when any "
              "are added) and the web (when COVE_SEARXNG_URL is set).")
@click.option("--collection", "collections", multiple=True, metavar="NAME",
              help="Search only this collection (repeatable; implies --search).")
@click.option("--user", default=None, metavar="EMAIL",
              help="Whose collections --search uses (default: the first admin).")
@click.option("--image", "-i", "image_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An image for a vision model (repeatable); goes with the (first) prompt.")
def run(
    prompt: str | None, model: str | None, system: str | None, max_tokens: int | None,
    temperature: float, seed: int | None, search: bool, collections: tuple[str, ...],
    user: str | None, image_files: tuple[Path, ...],
) -> None:
    """Answer PROMPT, or chat interactively when no prompt is given."""
    from cove.cli.chat import interactive, run_once, stdin_prompt
    from cove.pipeline import ChatPipeline

    settings = read_settings()
    hooks = None
    if search or collections:
        from cove.features.search.cli import search_hooks

        hooks = search_hooks(settings, collections, user, Console(highlight=False))
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
    console = Console(highlight=False)
    if prompt is None:
        prompt = stdin_prompt()
        if prompt is not None and not prompt.strip():
            fail(InvalidRequest("the prompt on standard input is empty"))
    elif not prompt.strip():
        fail(InvalidRequest("the prompt is empty"))
    images = [f.read_bytes() for f in image_files]

    with asyncio.Runner() as runner:
        pipeline = ChatPipeline(settings, open_registry(settings))
        try:
            if prompt is not None:
                run_once(runner, pipeline, prompt, params, model, system, console, hooks, images)
            else:
                interactive(runner, pipeline, params, model, system, console, hooks, images)
        except CoveError as e:
            fail(e)
        except KeyboardInterrupt:
            sys.exit(130)
        finally:
            pipeline.close()


@cli.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default 11435).")
def serve(host: str | None, port: int | None) -> None:
    """Serve the OpenAI-compatible (/v1) and Ollama-compatible (/api) APIs."""
    import uvicorn

    from cove.api.connections import guarded_protocol
    from cove.app import create_app

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = read_settings(**overrides)
    _check_port_free(settings.host, settings.port)
    app = create_app(settings)
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_level=settings.log_level,
        timeout_graceful_shutdown=5,
        http=guarded_protocol(settings.request_header_timeout, settings.max_connections),
    )


def _check_port_free(host: str, port: int) -> None:
    """Fail with a clear message when ``host:port`` is taken (before the database is opened
    and the app built), rather than uvicorn's "[Errno 98] error while attempting to bind"
    log line after start-up. Other bind errors are left to uvicorn to report."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                fail(f"{host}:{port} is already in use (is Cove already running? `cove ps` "
                     "asks it); choose another port with --port or COVE_PORT")


def env_value(value: object) -> str:
    """A setting's value as one would write it in the environment: ``(unset)`` for None,
    ``true``/``false``, ``300`` rather than ``300.0``, lists comma-separated, enums by value."""
    import enum
    import json

    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, (list, tuple, set)):
        return ",".join(env_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


@cli.command()
def config() -> None:
    """Show every setting: its environment variable, current value and description."""
    from rich.table import Table


    settings = read_settings()
    table = Table(box=None)
    # the names are what one types: never cut to "COVE_BACKEND_BREAKER_COO…" (80 columns,
    # as in a pipe); the description wraps instead
    table.add_column("VARIABLE", no_wrap=True,
                     min_width=max(len(f"COVE_{n}") for n in Settings.model_fields))
    table.add_column("VALUE", overflow="fold")
    table.add_column("DESCRIPTION")
    for name, field in Settings.model_fields.items():
        table.add_row(f"COVE_{name.upper()}", env_value(getattr(settings, name)),
                      field.description or "")
    Console().print(table)


@cli.command("privacy")
@click.option("--json", "as_json", is_flag=True, help="Print the inventory as JSON.")
def privacy_cmd(as_json: bool) -> None:
    """Data inventory: where data lives, what is stored per user, egress policy, addresses."""
    import json

    from cove.inventory import inventory

    inv = inventory(read_settings())
    if as_json:
        click.echo(json.dumps(inv, indent=2))
        return
    console = Console(highlight=False)

    def section(title: str, rows: dict[str, object]) -> None:
        console.print(title, style="bold", markup=False)
        for k, v in rows.items():
            console.print(f"  {k}: {v}", markup=False, soft_wrap=True)

    data = dict(inv["data"])
    files = data.pop("database_files")
    data["rows"] = data["rows"] or "no database yet"
    data["database files"] = ", ".join(f"{f['path']} ({f['bytes']} bytes)" for f in files) \
        or "none yet"
    section("Where data lives", data)
    section("Stored per user", inv["stored_per_user"])
    console.print("Never stored", style="bold", markup=False)
    for item in inv["not_stored"]:
        console.print(f"  - {item}", markup=False, soft_wrap=True)
    section("Egress policy", inv["egress"])
    section("Listening", inv["listening"])
    section("Settings", inv["settings"])


@cli.command()
def version() -> None:
    """Print Cove's version."""
    click.echo(f"cove {__version__}")


register_model_commands(cli)
register_logic_command(cli)
register_train_commands(cli)
register_knowledge_commands(cli)
register_ideas_command(cli)
register_arena_command(cli)
register_meme_commands(cli)
cli.add_command(backend_group)


def main() -> None:
    """Console-script entry point: the egress guard goes up before anything else runs."""
    from cove.privacy import install_egress_guard

    install_egress_guard()
    cli()
