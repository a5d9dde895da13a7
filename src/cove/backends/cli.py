"""``cove backend add/list/rm``: the remote backends of ``$COVE_HOME/backends.json``.

A running server follows the file: it re-reads it within a second of a change (on its next
request), keeping the figures of the backends that remain and letting requests in flight to a
removed one finish; an invalid file is ignored (with a warning in the server's log). ``cove
backend list`` shows the figures of the running server (``/metrics/backends``) when one answers.
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from cove.backends.registry import BackendRegistry, make_backend
from cove.cli.common import fail, open_registry, read_settings
from cove.cli.models import _address, _server, _server_options
from cove.errors import CoveError


@click.group()
def backend() -> None:
    """Remote OpenAI-compatible engines (vLLM, SGLang, llama-server, Cove workers)."""


@backend.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--models", required=True,
              help="Upstream model names it serves, comma-separated.")
@click.option("--prefix", default="", help="Offer them as PREFIX/name (e.g. gpu/), for "
              "names a local model already has.")
@click.option("--weight", type=float, default=1.0, show_default=True,
              help="Relative share of the affinity ring.")
@click.option("--max-concurrency", type=int, default=0, show_default=True,
              help="Most requests in flight to it (0: no cap).")
@click.option("--api-key-env", default=None,
              help="Environment variable holding its bearer token (never stored).")
def add(name: str, url: str, models: str, prefix: str, weight: float, max_concurrency: int,
        api_key_env: str | None) -> None:
    """Register backend NAME at URL (http(s), e.g. http://gpu1:8000/v1)."""
    settings = read_settings()
    try:
        b = make_backend(name, url, models.split(","), prefix=prefix, weight=weight,
                         max_concurrency=max_concurrency, api_key_env=api_key_env)
        reg = BackendRegistry.load(settings.home)
        reg.add(b)
        local = {e.name for e in open_registry(settings).list()}
    except CoveError as err:
        fail(err)
    shadowed = [p for p in b.offered() if p in local]
    if shadowed:
        fail(f"{', '.join(shadowed)} is already a local model: offer the remote one under a "
             "prefix (--prefix gpu/)")
    reg.save()
    click.echo(f"added backend '{b.name}' at {b.url}: {', '.join(b.offered())} "
               "(a running `cove serve` uses it from its next request)")


@backend.command("rm")
@click.argument("name")
def rm(name: str) -> None:
    """Remove backend NAME."""
    try:
        reg = BackendRegistry.load(read_settings().home)
    except CoveError as err:
        fail(err)
    if not reg.remove(name):
        fail(f"no backend named {name!r} (see `cove backend list`)")
    reg.save()
    click.echo(f"removed backend '{name}' (a running `cove serve` sends it no new request; "
               "those in flight finish)")


@backend.command("list")
@_server_options
def list_backends(host: str | None, port: int | None, api_key: str | None) -> None:
    """Registered backends, with the running server's figures (requests, errors, tokens,
    latency, breaker state) when it answers."""
    settings = read_settings()
    try:
        reg = BackendRegistry.load(settings.home)
    except CoveError as err:
        fail(err)
    if not reg.backends:
        click.echo("no backends (add one with `cove backend add NAME URL --models m`)")
        return
    answer = _server(_address(settings, host, port, api_key), "/metrics/backends")
    live = {b["name"]: b for b in (answer.data or {}).get("backends", [])}
    table = Table("NAME", "URL", "MODELS", "STATE", "REQUESTS", "ERRORS", "TOKENS",
                  "LATENCY", "TTFT", box=None)
    for column in table.columns:
        column.overflow = "fold"  # a URL or model name is wrapped, never cut to "http://127…"
    for b in reg.backends:
        s = live.get(b.name)
        models = ", ".join(b.offered())
        if s is None:
            table.add_row(b.name, b.url, models, "-", "-", "-", "-", "-", "-")
            continue
        tokens = f"{s['prompt_tokens']}+{s['completion_tokens']}"
        lat = f"{s['mean_latency_s']:.2f}s" if s["mean_latency_s"] is not None else "-"
        ttft = f"{s['mean_ttft_s']:.2f}s" if s["mean_ttft_s"] is not None else "-"
        table.add_row(b.name, b.url, models, s["state"], str(s["requests"]), str(s["errors"]),
                      tokens, lat, ttft)
    Console().print(table)
    if answer.problem:
        click.echo(f"(no figures: {answer.problem})")
    elif any(b.name not in live for b in reg.backends):
        # the server re-reads backends.json on use, at most once a second; an invalid
        # file is kept out (its log says why)
        click.echo("(no figures yet for backends the running server has not loaded: it "
                   "re-reads backends.json within a second of a change, unless the file is "
                   "invalid: see its log)")
