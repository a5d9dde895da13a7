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

from cove.cli.common import fail, open_registry, read_settings
from cove.config import Settings
from cove.errors import CoveError, ModelNotFound
from cove.models import capabilities
from cove.models.names import parse_ref


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _ago(ts: float | None) -> str:
    if ts is None:
        return ""
    s = max(0, time.time() - ts)
    for unit, scale in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= scale:
            return _plural(int(s // scale), unit) + " ago"
    return "just now"


def _until(expires_at: str) -> str:
    """An Ollama ``expires_at`` (RFC 3339, UTC) as the user reads it: "forever" (Ollama's far
    future, year >= 2300), "in 4 minutes", or local time when it cannot be parsed relatively."""
    from datetime import datetime

    if not expires_at:
        return ""
    try:
        when = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return expires_at
    if when.year >= 2300:
        return "forever"
    s = when.timestamp() - time.time()
    if s <= 0:
        return "now"
    for unit, scale in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= scale:
            return "in " + _plural(round(s / scale), unit)
    return "in " + _plural(max(1, int(s)), "second")


class ServerAnswer:
    """What asking the running server gave: ``data`` (the JSON body on 200), or ``down`` (nothing
    listens there), or ``problem`` (a sentence saying why it could not be asked)."""

    def __init__(self, data: Any = None, down: bool = False, problem: str = "") -> None:
        self.data, self.down, self.problem = data, down, problem


def _server(address: tuple[str, int, str | None], path: str, method: str = "GET",
            body: dict[str, Any] | None = None) -> ServerAnswer:
    """``method path`` (with JSON ``body``) on the server at ``(host, port, api_key)`` (the key
    sent as Bearer). A 200 with an empty body gives ``data == {}``."""
    import httpx

    host, port, key = address
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    where = f"{host}:{port}"
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        r = httpx.request(method,
                          f"http://{'[' + host + ']' if ':' in host else host}:{port}{path}",
                          headers=headers, json=body, timeout=30 if body else 5)
    except httpx.ConnectError:
        return ServerAnswer(down=True, problem=f"no Cove server is running on {where}")
    except httpx.HTTPError as e:
        return ServerAnswer(problem=f"the server on {where} did not answer ({e})")
    if r.status_code in (401, 403):
        hint = ("the API key was refused" if key else
                "it needs an API key (accounts exist): pass --api-key or set COVE_API_KEY; "
                "create a key in the web app's Settings")
        return ServerAnswer(problem=f"the server on {where} refused the request: {hint}")
    try:
        data = r.json() if r.content else {}
    except ValueError:
        data = None
    if r.status_code != 200 or not isinstance(data, dict):
        said = data.get("error") if isinstance(data, dict) else None
        return ServerAnswer(problem=f"the server on {where} answered HTTP {r.status_code}"
                            + (f": {said}" if isinstance(said, str) else "; is it a Cove server?"))
    return ServerAnswer(data=data)


def _server_options(f: Any) -> Any:
    """--host, --port and --api-key of the commands that ask the running server."""
    f = click.option("--api-key", envvar="COVE_API_KEY", default=None,
                     help="API key for a server with accounts (default: COVE_API_KEY).")(f)
    f = click.option("--port", type=click.IntRange(1, 65535), default=None,
                     help="Server port (default: COVE_PORT, else 11435).")(f)
    f = click.option("--host", default=None,
                     help="Server address (default: COVE_HOST, else 127.0.0.1).")(f)
    return f


def _address(settings: Settings, host: str | None, port: int | None,
             api_key: str | None) -> tuple[str, int, str | None]:
    return (host or settings.host, port or settings.port, api_key or None)


@click.command("list")
def list_models() -> None:
    """List installed models."""
    try:
        entries = open_registry(read_settings()).list()
    except CoveError as err:
        fail(err)
    table = Table(box=None)
    table.add_column("NAME", no_wrap=True, min_width=max([4, *(len(e.name) for e in entries)]))
    for col in ("ID", "SIZE", "MODIFIED", "DESCRIPTION"):
        table.add_column(col)
    try:
        for e in entries:
            ident = (e.digest or "").removeprefix("sha256:")[:12] or "(bundled)"
            table.add_row(e.name, ident, _size(e.size), _ago(e.modified), e.description)
    except CoveError as err:
        fail(err)
    Console().print(table)


@click.command()
@click.argument("model")
def show(model: str) -> None:
    """Show a model's metadata, capabilities, template, parameters and license."""
    try:
        entry = open_registry(read_settings()).resolve(model)
    except CoveError as err:
        fail(err)
    meta = entry.meta()
    console = Console(highlight=False)
    rows = [
        ("name", entry.name), ("architecture", meta.get("architecture", "")),
        ("parameters", meta.get("parameter_size", "")),
        ("quantization", meta.get("quantization", "")),
        ("context length", str(meta.get("context_length", ""))),
        ("capabilities", ", ".join(capabilities.of(meta, entry.projector is not None))),
        ("size", _size(entry.size)), ("digest", entry.digest or "(bundled)"),
        ("from", entry.parent or entry.source.get("repo", "") or ""),
        ("license", str(meta.get("license") or "")),
    ]
    # soft_wrap: long values (digest, template lines) are never cut or hard-wrapped, so a
    # piped `cove show` keeps them whole
    for k, v in rows:
        if v:
            console.print(f"  {k:<16}{v}", markup=False, soft_wrap=True)
    if entry.source.get("kind") == "train":  # made by cove train
        src = entry.source
        console.print("\nTraining:", style="bold")
        for k in ("recipe", "base", "dataset", "dataset_digest", "examples", "held_out",
                  "steps", "rewards"):
            if src.get(k) is not None:
                console.print(f"  {k:<16}{src[k]}", markup=False, soft_wrap=True)
        for when, scores in (src.get("scores") or {}).items():
            shown = ", ".join(f"{k} {v:.2f}" for k, v in (scores or {}).items())
            console.print(f"  {'scores ' + when:<16}{shown}", markup=False, soft_wrap=True)
    if entry.system:
        console.print("\nSystem prompt:", style="bold")
        console.print(entry.system, markup=False, soft_wrap=True)
    if entry.options:
        console.print("\nParameters:", style="bold")
        for k, v in entry.options.items():
            console.print(f"  {k} {v}", markup=False, soft_wrap=True)
    if meta.get("chat_template"):
        console.print("\nTemplate:", style="bold")
        console.print(meta["chat_template"], markup=False, soft_wrap=True)


@click.command()
@click.argument("model")
@click.option("--force", "-f", is_flag=True,
              help="Remove even if a running server has it loaded or cannot be asked.")
@_server_options
def rm(model: str, force: bool, host: str | None, port: int | None,
       api_key: str | None) -> None:
    """Remove a model. One the running server has loaded is removed through the server, which
    unloads it first (refused while it answers a request); when a server runs but cannot be
    asked, refuses unless --force."""
    from cove.models.manage import remove_model

    settings = read_settings()
    registry = open_registry(settings)
    try:
        entry = registry.resolve(model)
        if registry.builtin(entry.name) is not None:
            remove_model(registry, entry.name)  # raises: the bundled model stays
        by_server = False
        if not force:
            address = _address(settings, host, port, api_key)
            answer = _server(address, "/api/ps")
            if not answer.down and answer.data is None:
                fail(f"cannot tell whether {entry.name} is in use: {answer.problem}. "
                      "Pass --force to remove it anyway")
            loaded = (answer.data or {}).get("models", [])
            if any(m.get("name") == entry.name for m in loaded):
                # as `ollama rm`: the server unloads it, then removes it (409 while busy)
                done = _server(address, "/api/delete", "DELETE", {"model": entry.name})
                if done.data is None:
                    fail(f"{entry.name} is loaded by the running server, which did not remove "
                          f"it: {done.problem}. Try again when it is idle, or pass --force")
                by_server = True
        try:
            remove_model(registry, entry.name)
        except ModelNotFound:
            if not by_server:  # else the server has removed it from this same store
                raise
    except CoveError as err:
        fail(err)
    click.echo(f"deleted '{entry.name}'")


@click.command()
@click.argument("source")
@click.argument("destination")
def cp(source: str, destination: str) -> None:
    """Copy a model under a new name (no data is duplicated)."""
    from cove.models.manage import copy_model

    try:
        entry = copy_model(open_registry(read_settings()), source, destination)
    except CoveError as err:
        fail(err)
    click.echo(f"copied '{source}' to '{entry.name}'")


@click.command()
@_server_options
def ps(host: str | None, port: int | None, api_key: str | None) -> None:
    """Models loaded by the running server, their memory and when they unload."""
    answer = _server(_address(read_settings(), host, port, api_key), "/api/ps")
    if answer.down:
        click.echo(answer.problem)
        return
    if answer.data is None:
        fail(answer.problem)
    table = Table("NAME", "KIND", "SIZE", "CONTEXT", "UNTIL", box=None)
    for m in answer.data.get("models", []):
        until = "in use" if m.get("busy") else _until(str(m.get("expires_at", "")))
        table.add_row(m["name"], m.get("kind", "chat"), _size(int(m.get("size", 0))),
                      str(m.get("context_length", "")), until)
    Console().print(table)


@click.command()
@click.argument("name")
@click.option("--file", "-f", "file", required=True, type=click.Path(path_type=Path),
              help="Preset file (YAML or TOML) with from, system, parameters.")
def create(name: str, file: Path) -> None:
    """Create a preset NAME from a file naming a base model, system prompt and parameters."""
    from cove.models.manage import create_preset, read_preset_file

    try:
        entry = create_preset(open_registry(read_settings()), name, read_preset_file(file))
    except CoveError as err:
        fail(err)
    click.echo(f"created '{entry.name}' from '{entry.parent}'")


@click.command("import")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.argument("name", required=False)
@click.option("--ollama", "ollama_dir", is_flag=False, flag_value="", default=None,
              help="Import every model of an Ollama store (default ~/.ollama/models).")
@click.option("--copy", "copy_files", is_flag=True, help="Copy files instead of hard-linking.")
@click.option("--mmproj", type=click.Path(path_type=Path), default=None,
              help="The model's vision projector (an mmproj GGUF), for image input.")
def import_(file: Path | None, name: str | None, ollama_dir: str | None,
            copy_files: bool, mmproj: Path | None) -> None:
    """Import FILE (a .gguf) as NAME (with its vision projector --mmproj PROJ.gguf), or an
    Ollama store with --ollama [DIR]."""
    from cove.models.manage import import_gguf, import_ollama

    registry = open_registry(read_settings())
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
            fail("give a .gguf file to import, or --ollama [DIR]")
            return
        entry = import_gguf(registry, file, name, link=not copy_files, mmproj=mmproj)
    except CoveError as err:
        fail(err)
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
            entry = do_pull(open_registry(read_settings()), model, report)
    except KeyboardInterrupt:
        console.print("pull interrupted; run it again to resume", markup=False)
        sys.exit(130)
    except CoveError as err:
        fail(err)
    click.echo(f"pulled '{entry.name}' ({_size(entry.size)})")


COMMANDS = [list_models, show, rm, cp, ps, create, import_, pull]


def register(group: click.Group) -> None:
    """Add the model commands to the ``cove`` group."""
    for command in COMMANDS:
        group.add_command(command)
