"""The model commands through the console script, on a temporary COVE_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.gguf_files import THINK_TEMPLATE, make_gguf


@pytest.fixture
def cove(tmp_path: Path, hub: Any) -> Any:
    env = dict(os.environ, COVE_HOME=str(tmp_path / "home"), HF_ENDPOINT=hub.url,
               COVE_PORT="9")  # no server there: `ps` and `rm` see none

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cove", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    return run


def test_import_list_show_cp_create_rm(cove: Any, tmp_path: Path) -> None:
    gguf = make_gguf(tmp_path / "Tiny.gguf", template=THINK_TEMPLATE)
    r = cove("import", str(gguf), "tiny:1")
    assert r.returncode == 0 and "imported 'tiny:1'" in r.stdout, r.stderr
    r = cove("show", "tiny:1")
    assert r.returncode == 0 and "thinking" in r.stdout and "2048" in r.stdout
    assert cove("cp", "tiny:1", "tiny:2").returncode == 0
    preset = tmp_path / "p.yaml"
    preset.write_text("from: tiny:2\nsystem: Be terse.\nparameters: {temperature: 0.1}\n")
    r = cove("create", "terse", "-f", str(preset))
    assert r.returncode == 0, r.stderr
    listing = cove("list").stdout
    for name in ("tiny:1", "tiny:2", "terse:latest", "smollm2:135m"):
        assert name in listing
    assert "Be terse." in cove("show", "terse").stdout
    assert cove("rm", "tiny:1").returncode == 0
    assert cove("rm", "tiny:2").returncode == 0
    assert "terse:latest" in cove("list").stdout and "tiny:1" not in cove("list").stdout
    assert gguf.exists()
    r = cove("ps")
    assert r.returncode == 0 and "no Cove server" in r.stdout


def test_pull_shows_progress_and_installs(cove: Any, hub: Any, tmp_path: Path) -> None:
    data = make_gguf(tmp_path / "x.gguf", n_floats=30_000).read_bytes()
    hub.add("tester/Cli-GGUF", "Cli-Q4_K_M.gguf", data)
    r = cove("pull", "hf.co/tester/Cli-GGUF")
    assert r.returncode == 0, r.stderr
    assert "pulling manifest" in r.stderr and "success" in r.stderr
    assert "hf.co/tester/cli-gguf:latest" in cove("list").stdout


@pytest.mark.parametrize("args", [
    ("show", "../../etc/passwd"), ("rm", "/etc/passwd"), ("cp", "smollm2", "../x"),
    ("pull", "hf.co/../../x"), ("import", "/etc/hostname", "../x"), ("show", "nope:1b"),
    ("rm", "smollm2:135m"), ("pull", "nothing-known:1b"),
])
def test_bad_references_are_clear_errors(cove: Any, args: tuple[str, ...]) -> None:
    r = cove(*args)
    assert r.returncode == 1
    assert "Error: " in r.stderr and "Traceback" not in r.stderr


def test_a_bad_new_name_is_called_invalid_not_missing(cove: Any, tmp_path: Path) -> None:
    """`cove create Bad/../x` used to say "The model 'Bad/../x' does not exist": a name being
    created cannot be missing; the error says the name is not valid, and why."""
    preset = tmp_path / "p.yaml"
    preset.write_text("from: smollm2:135m\n")
    for args in (("create", "Bad/../x", "-f", str(preset)), ("cp", "smollm2", "a:b:c"),
                 ("import", str(make_gguf(tmp_path / "t.gguf")), "../x")):
        r = cove(*args)
        assert r.returncode == 1, r.stderr
        assert "is not a valid model name" in r.stderr and "does not exist" not in r.stderr, (
            args, r.stderr)


def test_import_of_a_missing_file_says_so(cove: Any, tmp_path: Path) -> None:
    r = cove("import", str(tmp_path / "nofile.gguf"))
    assert r.returncode == 1 and "no such file" in r.stderr, r.stderr
    r = cove("import", str(tmp_path))
    assert r.returncode == 1 and "not a file" in r.stderr, r.stderr


def test_list_pluralises_and_config_prints_values_as_written(cove: Any, tmp_path: Path) -> None:
    from cove.cli.models import _ago, _until

    assert _ago(time.time() - 61) == "1 minute ago"
    assert _ago(time.time() - 150) == "2 minutes ago"
    assert _until("2318-01-01T00:00:00Z") == "forever"
    assert _until(datetime.fromtimestamp(time.time() + 241, UTC).isoformat()) == "in 4 minutes"
    out = cove("config").stdout
    assert "None" not in out and "False" not in out and "300.0" not in out
