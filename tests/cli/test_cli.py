"""The `cove` command: real model through the console script, and terminal rendering."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from cove.cli.chat import stream_answer
from cove.engine.fake import ScriptedEngine
from cove.engine.types import SamplingParams
from cove.models.registry import ModelEntry, ModelRegistry
from cove.pipeline import ChatMessage, ChatPipeline
from tests.api.test_openai_scripted import R1_TEMPLATE

COVE = [sys.executable, "-m", "cove"]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COVE, *args], input=stdin, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.real_model
def test_run_prints_a_real_answer() -> None:
    r = run("run", "What is the capital of France?", "--max-tokens", "20", "--seed", "3")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip()) > 3


@pytest.mark.real_model
def test_run_reads_prompt_from_stdin() -> None:
    r = run("run", "--max-tokens", "8", stdin="Say hello.")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()


@pytest.mark.real_model
def test_interactive_chat_in_a_terminal() -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen([*COVE, "run", "--max-tokens", "12", "--temperature", "0"],
                            stdin=slave, stdout=slave,
                            stderr=slave, close_fds=True)
    os.close(slave)
    out = b""

    def read_until(marker: bytes, start: int = 0, timeout: float = 180) -> None:
        nonlocal out
        deadline = time.monotonic() + timeout
        while marker not in out[start:] and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    return
        assert marker in out[start:], out

    try:
        read_until(b">>> ")
        os.write(master, b"/help\n")
        read_until(b"being written.", len(out))
        read_until(b">>> ", out.index(b"being written."))
        os.write(master, b"What is the capital of France?\n")
        start = len(out)
        read_until(b">>> ", start)
        after_echo = out[start:].split(b"\n", 1)[1]  # the terminal echoes the typed line
        assert after_echo.replace(b">>> ", b"").strip(), out
        # Ctrl-C at the prompt does not quit. (Under heavy load a signal that lands while the
        # prompt is being set up has been seen to go unnoticed; a user would press it again.)
        mark = len(out)
        for _ in range(3):
            proc.send_signal(signal.SIGINT)
            try:
                read_until(b"/bye to exit", mark, timeout=20)
                break
            except AssertionError:
                continue
        read_until(b"/bye to exit", mark, timeout=1)
        assert proc.poll() is None
        os.write(master, b"/bye\n")
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_list_and_version() -> None:
    r = run("list")
    assert r.returncode == 0 and "smollm2:135m" in r.stdout
    r = run("version")
    assert r.returncode == 0 and r.stdout.startswith("cove ")


def test_config_names_every_setting_whole_at_80_columns() -> None:
    from cove.config import Settings

    env = {**os.environ, "COLUMNS": "80"}
    r = subprocess.run([*COVE, "config"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    names = {line.split()[0] for line in r.stdout.splitlines() if line.lstrip().startswith("COVE_")}
    assert names == {f"COVE_{n.upper()}" for n in Settings.model_fields}


def test_bad_setting_and_empty_prompt_are_clear_errors() -> None:
    env = dict(os.environ, COVE_N_CTX="abc")
    r = subprocess.run([*COVE, "config"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and "COVE_N_CTX" in r.stderr and "Traceback" not in r.stderr
    r = run("run", "   ")
    assert r.returncode == 1 and "empty" in r.stderr
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("cove ")


def test_unknown_model_is_a_clear_error() -> None:
    r = run("run", "hi", "--model", "../../etc/passwd")
    assert r.returncode == 1
    assert "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_reasoning_is_dimmed_and_apart(tmp_path: Path) -> None:
    from cove.config import Settings

    engine = ScriptedEngine(name="thinker:latest", chat_template=R1_TEMPLATE)
    engine.enqueue(["Let me think.", "</think>", "\n\nThe answer."])
    registry = ModelRegistry()
    registry.add(ModelEntry("thinker:latest", tmp_path / "x.gguf"))
    pipeline = ChatPipeline(Settings(home=tmp_path), registry, lambda e, s: engine)
    console = Console(record=True, force_terminal=True, color_system="standard", width=80)

    async def go() -> str:
        try:
            return await stream_answer(pipeline, console, [ChatMessage("user", "q")],
                                       SamplingParams(), "thinker")
        finally:
            pipeline.close()

    answer = asyncio.run(go())
    assert answer == "The answer."
    ansi = console.export_text(styles=True, clear=False)
    assert "\x1b[2;3mLet me think.\x1b[0m" in ansi  # dim italic
    plain = console.export_text()
    assert plain.index("Let me think.") < plain.index("The answer.")
    assert "Thinking" in plain
    assert "\n\nThe answer." in plain or "\n\n" in plain.split("Let me think.")[1]


def test_triple_quotes_enter_one_message_of_several_lines(tmp_path: Path) -> None:
    """As in `ollama run`: a pasted block between \"\"\" lines is one message, not one message
    per line (each line used to get its own answer, the fences too)."""
    from cove.cli.chat import interactive, multiline
    from cove.config import Settings

    lines = iter(["line two", "end\"\"\""])
    assert multiline('"""line one', lambda: next(lines)) == "line one\nline two\nend"
    assert multiline('"""just one"""', lambda: "") == "just one"
    assert multiline("no fence", lambda: "") == "no fence"

    engine = ScriptedEngine(name="scripted:latest")
    engine.enqueue(["Two lines, got it."])
    registry = ModelRegistry()
    registry.add(ModelEntry("scripted:latest", tmp_path / "x.gguf"))
    pipeline = ChatPipeline(Settings(home=tmp_path), registry, lambda e, s: engine)
    console = Console(record=True, width=80)
    typed = iter(['"""', "first line", 'second line"""', "/bye"])
    prompts: list[str] = []

    def fake_input(prompt: str = "", **_: object) -> str:
        prompts.append(prompt)
        return next(typed)

    console.input = fake_input  # type: ignore[method-assign]
    try:
        with asyncio.Runner() as runner:
            interactive(runner, pipeline, SamplingParams(max_tokens=8), "scripted", None, console)
    finally:
        pipeline.close()
    assert len(engine.history) == 1  # one answer for the whole block
    prompt_text = bytes(engine.history[0][0]).decode()  # the fake tokenizes bytes
    assert "first line\nsecond line" in prompt_text and '"""' not in prompt_text
    assert prompts == [">>> ", "... ", "... ", ">>> "]
    assert "Two lines, got it." in console.export_text()
