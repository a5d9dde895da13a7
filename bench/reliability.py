"""Shared by the reliability suite (``bench/soak.py``, ``bench/faults.py``): a Cove server on a
fresh ``COVE_HOME`` that can be killed and restarted, its store on SQLite or on a throwaway
PostgreSQL 15 (``tests/pg.py``), its memory, a signed-in web client, the web app's event stream,
and the report file ``docs/reliability.md``."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
import statistics
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
from tests import pg

from bench.common import COVE_SERVE, ROOT, free_port, start_process, stop_process, write_section

REPORT = ROOT / "docs" / "reliability.md"
INTRO = """# Reliability

Runs of the reliability suite, newest last: `bench/soak.py` (many clients mixing every kind of
request, faults included, for minutes) and `bench/faults.py` (`kill -9` of the server in the
middle of streamed answers and write bursts, then the store compared with what clients were
told), and `bench/fairness.py` (a short question while a long prompt is read). See README →
Development → Reliability for how to run them.
"""
DATABASES = ("sqlite", "postgres", "both")
MODEL = "smollm2:135m"  # the bundled model
PASSWORD = "reliability suite password"
T = TypeVar("T")
ENV_OPTION: dict[str, Any] = {
    "action": "append", "default": [], "metavar": "COVE_NAME=VALUE",
    "help": "a setting of the server started here (repeatable)"}


class MalformedStream(Exception):
    """A line of a stream that is not what the protocol says."""


class CoveServer:
    """``cove serve`` on a free loopback port with a fresh ``COVE_HOME`` (a temporary directory,
    removed by :meth:`close`), the store at ``db_url`` (None: SQLite in the home) and extra
    settings ``env``. Output goes to ``home/server.log``. Use as a context manager."""

    def __init__(self, db_url: str | None = None, env: dict[str, str] | None = None) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="cove-reliability-"))
        self.port = free_port()
        self.env = {"COVE_HOME": str(self.home), "COVE_LOG_LEVEL": "warning",
                    **({"COVE_DATABASE_URL": db_url} if db_url else {}), **(env or {})}
        self.proc: Any = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.home / "server.log"

    def start(self) -> None:
        """Start (or restart) the server on the same port and home; wait until it answers."""
        self.proc = start_process([*COVE_SERVE, "--host", "127.0.0.1"], "/health", self.env,
                                  self.port, self.log)

    def kill(self) -> None:
        """``kill -9`` the server and reap it."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def rss_mib(self) -> float | None:
        """The server's resident memory in MiB (None once it is gone)."""
        return rss_mib(self.proc.pid) if self.proc is not None else None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc)
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> CoveServer:
        self.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def rss_mib(pid: int) -> float | None:
    """Resident set size of process ``pid`` in MiB, from ``/proc/<pid>/status`` (None if the
    process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def parse_env(pairs: list[str]) -> dict[str, str]:
    """``COVE_NAME=value`` pairs (``--env``) as a dict."""
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.startswith("COVE_"):
            raise SystemExit(f"--env wants COVE_NAME=value, not {pair!r}")
        env[name] = value
    return env


def on_databases(choice: str, run: Callable[[str, str | None], T]) -> list[T]:
    """``run(label, db_url)`` on SQLite (``db_url`` None) and/or a fresh database of a throwaway
    PostgreSQL 15 server, for ``choice`` in :data:`DATABASES`; the results in that order.

    Raises:
        SystemExit: PostgreSQL was asked for but its server binaries are not installed.
    """
    labels = ["sqlite", "postgres"] if choice == "both" else [choice]
    if "postgres" in labels and not pg.available():
        raise SystemExit(f"PostgreSQL 15 is not installed ({pg.PG_BIN}): apt-get install "
                         "postgresql-15, or use --db sqlite")
    results = []
    for label in labels:
        if label == "sqlite":
            results.append(run(label, None))
            continue
        with pg.postgres_server() as server, pg.fresh_database(server) as url:
            results.append(run(label, url))
    return results


async def sign_up(client: httpx.AsyncClient, email: str) -> None:
    """Create a web account (the first one is admin) and keep its session: the cookie stays in
    ``client``'s jar, the CSRF token in its headers."""
    r = await client.post("/web/signup", json={"email": email, "password": PASSWORD})
    r.raise_for_status()
    client.headers["X-CSRF-Token"] = r.json()["csrf"]


async def log_in(client: httpx.AsyncClient, email: str) -> None:
    """Sign in again (after a restart) as :func:`sign_up` did."""
    r = await client.post("/web/login", json={"email": email, "password": PASSWORD})
    r.raise_for_status()
    client.headers["X-CSRF-Token"] = r.json()["csrf"]


async def web_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The events of a web app answer stream (``cove.web.sse``): one JSON object with a
    ``type`` per ``data:`` line, blank lines between.

    Raises:
        MalformedStream: any other line, or an event that is not such an object.
    """
    async for line in response.aiter_lines():
        if not line:
            continue
        if not line.startswith("data: "):
            raise MalformedStream(f"not an SSE data line: {line[:120]!r}")
        try:
            ev = json.loads(line[6:])
        except ValueError as e:
            raise MalformedStream(f"not JSON: {line[:120]!r}") from e
        if not isinstance(ev, dict) or ev.get("type") not in ("start", "delta", "done", "error"):
            raise MalformedStream(f"not a web event: {line[:120]!r}")
        yield ev


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values`` by the nearest-rank method; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(head: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def append_run(title: str, body: str, path: Path = REPORT) -> None:
    """Add a section ``## <now> — title`` to ``path`` (docs/reliability.md)."""
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    write_section(f"{stamp} — {title}", body, path, INTRO)
