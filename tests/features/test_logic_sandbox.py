"""The logic-mode sandbox refuses network, files outside its directory, new processes and
runaway memory, and always returns within its time limit; the exact tools and the vote."""

from __future__ import annotations

import socket
import threading

import pytest

from cove.errors import InvalidRequest
from cove.features.logic.sandbox import run_python
from cove.features.logic.tools import calculate, extract_answer, majority


def test_runs_code_and_may_use_its_scratch_dir() -> None:
    r = run_python("open('n.txt', 'w').write('41')\nprint(int(open('n.txt').read()) + 1)")
    assert r.ok and r.stdout == "42\n"


def test_refuses_network_even_to_loopback() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    accepted: list[object] = []
    t = threading.Thread(target=lambda: accepted.append(srv.accept()), daemon=True)
    t.start()
    port = srv.getsockname()[1]
    r = run_python(f"import socket\nsocket.socket().connect(('127.0.0.1', {port}))")
    srv.close()
    assert not r.ok and "network access is not allowed" in r.stderr
    assert not accepted


@pytest.mark.parametrize("code", [
    "print(open('/etc/hostname').read())",
    "open('../escape.txt', 'w').write('x')",
    "import os\nos.symlink('/etc/passwd', 'p')\nprint(open('p').read())",
])
def test_refuses_files_outside_its_directory(code: str) -> None:
    r = run_python(code)
    assert not r.ok and "PermissionError" in r.stderr


@pytest.mark.parametrize("code", [
    "import os\nwhile True:\n    os.fork()",
    "import os\nos.system('echo hi')",
    "import subprocess\nsubprocess.run(['true'])",
])
def test_refuses_new_processes(code: str) -> None:
    r = run_python(code)
    assert not r.ok and "PermissionError" in r.stderr


def test_runaway_memory_fails() -> None:
    r = run_python("a = []\nwhile True:\n    a.append(' ' * 10**7)", memory_mb=128)
    assert not r.ok and "MemoryError" in r.stderr


@pytest.mark.parametrize("code", ["while True:\n    pass",
                                  "import time\ntime.sleep(60)"])
def test_always_returns_within_its_time_limit(code: str) -> None:
    r = run_python(code, timeout=1.0)
    assert not r.ok and (r.timed_out or (r.exit_code or 0) < 0)
    assert r.seconds < 10  # generous: a loaded CI machine; the point is it returns


def test_calculate_is_exact() -> None:
    assert calculate("2/3 + 1/6") == "5/6"
    assert calculate("0.1*3") == "3/10" and calculate("1.6*100") == "160"  # no floats
    assert calculate("solve(x^2 - 4, x)") == "[-2, 2]"
    assert calculate("sqrt(2)").startswith("sqrt(2) ~ 1.414213562")
    for bad in ["().__class__", "__import__('os')", "open('x')"]:
        with pytest.raises(InvalidRequest):
            calculate(bad)


def test_extract_and_vote() -> None:
    assert extract_answer("So 3 + 4 = 7. The answer is 1,000.50") == "2001/2"
    assert extract_answer("We get 12 apples, then 4.0") == "4"
    assert extract_answer("no idea") is None
    v = majority(["4", None, "4", "5"])
    assert (v.answer, v.agreement) == ("4", 0.5)
    assert majority([None]).answer is None
