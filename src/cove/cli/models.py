"""``cove`` model commands: pull, import, list, show, rm, cp, ps, create.

They work on the store in ``COVE_HOME`` directly; ``ps`` (and ``rm``'s loaded check) ask the
local server, if one is running, through its Ollama API on loopback.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cove.config import Settings, load_settings
from cove.errors import CoveError
from cove.models.names import parse_ref
from cove.models.registry import ModelRegistry
from cove.models.store import ModelStore


def _registry(settings: Settings) -> ModelRegistry:
    return ModelRegistry(ModelStore(settings.home / "models"))


def _fail(err: CoveError | str) -> None:
    msg = err.message if isinstance(err, CoveError) else err
    Console(stderr=True).print(f"Error: {msg}", style="red", markup=False)
    sys.exit(1)


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _ago(ts: float | None) -> str:
    if ts is None:
        return ""
    s = max(0, time.time() - ts)
    for unit, scale in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if s >= scale:
            return f"{int(s // scale)} {unit} ago"
    return "just now"


def _server(settings: Settings, path: str) -> Any | None:
    """GET ``path`` from the local server's API, or None when no server answers."""
    import httpx

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    try:
        r = httpx.get(f"http://{host}:{settings.port}{path}", timeout=2)
        return r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


@click.command("list")
def list_models() -> None:
    """List installed models."""
    try:
        entries = _registry(load_settings()).list()
    except CoveError as err:
        _fail(err)
    table = Table(box=None)
    table.add_column("NAME", no_wrap=True, min_width=max([4, *(len(e.name) for e in entries)]))
    for col in ("ID", "SIZE", "MODIFIED", "DESCRIPTION"):
        table.add_column(col)
    try:
        for e in entries:
            ident = (e.digest or "").removeprefix("sha256:")[:12] or "(bundled)"
            table.add_row(e.name, ident, _size(e.size), _ago(e.modified), e.description)
    except CoveError as err:
        _fail(err)
    Console().print(table)


@click.command()
@click.argument("model")
def show(model: str) -> None:
    """Show a model's metadata, capabilities, template, parameters and license."""
    try:
        entry = _registry(load_settings()).resolve(model)
    except CoveError as err:
        _fail(err)
    meta = entry.meta()
    console = Console(highlight=False)
    rows = [
        ("name", entry.name), ("architecture", meta.get("architecture", "")),
        ("parameters", meta.get("parameter_size", "")),
        ("quantization", meta.get("quantization", "")),
        ("context length", str(meta.get("context_length", ""))),
        ("capabilities", ", ".join(meta.get("capabilities", []))),
        ("size", _size(entry.size)), ("digest", entry.digest or "(bundled)"),
        ("from", entry.parent or entry.source.get("repo", "") or ""),
        ("license", str(meta.get("license") or "")),
    ]
    table = Table(box=None, show_header=False)
    for k, v in rows:
        if v:
            table.add_row(k, v)
    console.print(table)
    if entry.system:
        console.print("\nSystem prompt:", style="bold")
        console.print(entry.system, markup=False)
    if entry.options:
        console.print("\nParameters:", style="bold")
        for k, v in entry.options.items():
            console.print(f"  {k} {v}", markup=False)
    if meta.get("chat_template"):
        console.print("\nTemplate:", style="bold")
        console.print(meta["chat_template"], markup=False)


@click.command()
@click.argument("model")
@click.option("--force", "-f", is_flag=True, help="Remove even if a running server has it loaded.")
def rm(model: str, force: bool) -> None:
    """Remove a model (refuses while a running server has it loaded, unless --force)."""
    from cove.models.manage import remove_model

    settings = load_settings()
    registry = _registry(settings)
    try:
        entry = registry.resolve(model)
        loaded = _server(settings, "/api/ps") or {"models": []}
        if not force and any(m.get("name") == entry.name for m in loaded.get("models", [])):
            _fail(f"{entry.name} is loaded by the running server; stop using it first or "
                  "pass --force")
        remove_model(registry, entry.name)
    except CoveError as err:
        _fail(err)
    click.echo(f"deleted '{entry.name}'")


@click.command()
@click.argument("source")
@click.argument("destination")
def cp(source: str, destination: str) -> None:
    """Copy a model under a new name (no data is duplicated)."""
    from cove.models.manage import copy_model

    try:
        entry = copy_model(_registry(load_settings()), source, destination)
    except CoveError as err:
        _fail(err)
    click.echo(f"copied '{source}' to '{entry.name}'")


@click.command()
def ps() -> None:
    """Models loaded by the running server, their memory and when they unload."""
    settings = load_settings()
    data = _server(settings, "/api/ps")
    if data is None:
        click.echo(f"no Cove server is running on {settings.host}:{settings.port}")
        return
    table = Table("NAME", "KIND", "SIZE", "CONTEXT", "UNTIL", box=None)
    for m in data.get("models", []):
        until = "forever" if str(m.get("expires_at", "")).startswith("2318") else m.get(
            "expires_at", "")
        table.add_row(m["name"], m.get("kind", "chat"), _size(int(m.get("size", 0))),
                      str(m.get("context_length", "")), "in use" if m.get("busy") else until)
    Console().print(table)


@click.command()
@click.argument("name")
@click.option("--file", "-f", "file", required=True, type=click.Path(path_type=Path),
              help="Preset file (YAML or TOML) with from, system, parameters.")
def create(name: str, file: Path) -> None:
    """Create a preset NAME from a file naming a base model, system prompt and parameters."""
    from cove.models.manage import create_preset, read_preset_file

    try:
        entry = create_preset(_registry(load_settings()), name, read_preset_file(file))
    except CoveError as err:
        _fail(err)
    click.echo(f"created '{entry.name}' from '{entry.parent}'")


@click.command("import")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.argument("name", required=False)
@click.option("--ollama", "ollama_dir", is_flag=False, flag_value="", default=None,
              help="Import every model of an Ollama store (default ~/.ollama/models).")
@click.option("--copy", "copy_files", is_flag=True, help="Copy files instead of hard-linking.")
def import_(file: Path | None, name: str | None, ollama_dir: str | None,
            copy_files: bool) -> None:
    """Import FILE (a .gguf) as NAME, or an Ollama store with --ollama [DIR]."""
    from cove.models.manage import import_gguf, import_ollama

    registry = _registry(load_settings())
    try:
        if ollama_dir is not None:
            root = Path(ollama_dir) if ollama_dir else (file if file else None)
            results = import_ollama(registry, root, link=not copy_files)
            if not results:
                click.echo("no models found")
            for model, outcome in results:
                click.echo(f"{model}: {outcome}")
            return
        if file is None:
            _fail("give a .gguf file to import, or --ollama [DIR]")
            return
        entry = import_gguf(registry, file, name, link=not copy_files)
    except CoveError as err:
        _fail(err)
    click.echo(f"imported '{entry.name}' ({_size(entry.size)})")


@click.command()
@click.argument("model")
def pull(model: str) -> None:
    """Download MODEL from Hugging Face: hf.co/<owner>/<repo>[:quant] or a curated name
    (the only command that goes online). Ctrl-C keeps a partial download to resume."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from cove.models.pull import Progress as PullProgress
    from cove.models.pull import pull as do_pull

    console = Console(stderr=True)
    bars = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(), console=console)
    tasks: dict[str, Any] = {}

    def report(p: PullProgress) -> None:
        if p.digest is not None and p.total is not None:
            if p.digest not in tasks:
                tasks[p.digest] = bars.add_task(p.status, total=p.total)
            bars.update(tasks[p.digest], completed=p.completed or 0)
        else:
            bars.console.print(p.status, markup=False)

    try:
        parse_ref(model)
        with bars:
            entry = do_pull(_registry(load_settings()), model, report)
    except KeyboardInterrupt:
        console.print("pull interrupted; run it again to resume", markup=False)
        sys.exit(130)
    except CoveError as err:
        _fail(err)
    click.echo(f"pulled '{entry.name}' ({_size(entry.size)})")


COMMANDS = [list_models, show, rm, cp, ps, create, import_, pull]


def register(group: click.Group) -> None:
    """Add the model commands to the ``cove`` group."""
    for command in COMMANDS:
        group.add_command(command)
