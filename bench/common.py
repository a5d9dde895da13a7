"""Helpers shared by benchmarks: start `cove serve` on loopback, machine description, results."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "benchmarks.md"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_process(cmd: list[str], health: str, env: dict[str, str] | None = None,
                  port: int | None = None, log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a server command with ``--port <port>`` added (a free one by default), its output
    appended to ``log`` (else discarded); wait until ``health`` answers 200 on loopback.

    Raises:
        RuntimeError: the process exited, or did not answer within 120 s (it is killed).
    """
    port = port or free_port()
    with open(log, "ab") if log else nullcontext(subprocess.DEVNULL) as out:
        proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}")
        try:
            if httpx.get(base + health, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{cmd[0]} did not answer {health} within 120 s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def process_server(cmd: list[str], health: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run a server command with ``--port <free port>`` added; wait until ``health`` answers
    200 on loopback; yield its base URL; stop it afterwards."""
    port = free_port()
    proc = start_process(cmd, health, env, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


COVE_SERVE = [sys.executable, "-m", "cove", "serve"]


def cove_server(env: dict[str, str] | None = None) -> AbstractContextManager[str]:
    """Run `cove serve` on a free loopback port; yield its base URL."""
    return process_server(COVE_SERVE, "/health", {"COVE_LOG_LEVEL": "warning", **(env or {})})


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores"


def write_section(title: str, body: str, path: Path = RESULTS,
                  heading: str = "# Benchmarks\n\nRun by hand; see bench/.\n") -> None:
    """Replace (or append) the section ``## title`` in ``path`` (docs/benchmarks.md), which
    starts with ``heading`` when it is new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else heading
    head = f"## {title}\n"
    start = text.find(head)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + head + body.rstrip("\n") + "\n"
    else:
        end = text.find("\n## ", start + len(head))
        end = len(text) if end == -1 else end + 1
        rest = "\n" + text[end:] if end < len(text) else ""
        text = text[:start] + head + body.rstrip("\n") + "\n" + rest
    path.write_text(text)
