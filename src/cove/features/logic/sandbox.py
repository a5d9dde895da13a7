"""A Python sandbox for logic mode: run untrusted code in a separate, limited process.

The child is ``python -I`` (isolated: no environment, no user site) in a fresh scratch
directory, in its own process group, with resource limits (CPU seconds, address space, file
size, no new processes) and an audit hook (PEP 578) installed before the code runs that
refuses: every socket (no network at all, stricter than the egress guard), opening any file
outside the scratch directory, and starting processes (fork, exec, spawn, system). A few pure
modules (math, fractions, decimal, statistics, itertools, functools, collections, re, json)
are imported beforehand; importing anything else that needs a file is refused. A wall-clock
timeout kills the whole process group, so :func:`run_python` always returns within its limit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

RUNNER = r'''
import sys, os
for _m in ("math", "fractions", "decimal", "statistics", "itertools", "functools",
           "collections", "re", "json", "random", "cmath", "string", "operator",
           "socket"):
    __import__(_m)
_root = os.path.realpath(os.getcwd())
_code = sys.stdin.read()
def _hook(event, args):
    if event.startswith("socket."):
        raise PermissionError("network access is not allowed in the sandbox")
    if event in ("os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system",
                 "os.exec", "subprocess.Popen", "os.kill", "os.killpg", "ctypes.dlopen",
                 "os.chdir", "os.symlink", "os.link"):
        raise PermissionError(f"{event} is not allowed in the sandbox")
    if event == "open":
        path = args[0]
        if isinstance(path, int):
            return
        real = os.path.realpath(os.fsdecode(path))
        if real != _root and not real.startswith(_root + os.sep):
            raise PermissionError(f"access outside the sandbox directory: {path}")
sys.addaudithook(_hook)
del _hook
_g = {"__name__": "__main__"}
exec(compile(_code, "<sandbox>", "exec"), _g)
'''


@dataclass(frozen=True)
class SandboxResult:
    """``stdout``/``stderr`` text (truncated), ``exit_code`` (None when killed at the wall
    clock), ``timed_out``, ``seconds`` of wall-clock time."""

    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def _limits(cpu_seconds: int, memory_bytes: int) -> None:  # runs in the child before exec
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def run_python(code: str, *, timeout: float = 5.0, memory_mb: int = 256,
               max_output: int = 20_000) -> SandboxResult:
    """Run ``code`` in the sandbox; never raises for anything the code does.

    Args:
        code: Python source; what it prints is the result.
        timeout: wall-clock seconds (CPU time is capped at the same, rounded up).
        memory_mb: address-space limit in MiB.
        max_output: characters kept of stdout and of stderr.
    """
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cove-sandbox-") as scratch:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", RUNNER], cwd=scratch, env={},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=lambda: _limits(int(timeout + 0.999) + 1, memory_mb << 20),
        )
        timed_out = False
        try:
            out, err = proc.communicate(code.encode("utf-8", "replace"), timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = proc.communicate()
    code_ = None if timed_out else proc.returncode
    return SandboxResult(out.decode("utf-8", "replace")[:max_output],
                         err.decode("utf-8", "replace")[-max_output:], code_, timed_out,
                         time.monotonic() - start)
