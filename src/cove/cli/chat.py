"""Terminal chat: stream answers with reasoning shown dimmed and apart from the answer."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rich.console import Console

from cove.engine.types import SamplingParams
from cove.pipeline import ChatDelta, ChatDone, ChatMessage, ChatPipeline, ChatRequest

THINK_STYLE = "dim italic"

HELP = """Commands:
  /bye, /exit, /quit   leave (Ctrl-D works too)
  /clear               forget the conversation so far
  /help                this help
Use \"\"\" to begin and end a message of several lines (as in Ollama).
Ctrl-C stops an answer that is being written."""

FENCE = '"""'


@dataclass
class Hooks:
    """What a feature adds to a terminal chat: ``prepare`` revises each request before it runs
    (answers with sources put the passages in), ``after(answer_text)`` prints what follows the
    answer (the sources)."""

    prepare: Callable[[ChatRequest], Awaitable[ChatRequest]] | None = None
    after: Callable[[str], None] | None = None


def multiline(first: str, read_line: Callable[[], str]) -> str:
    """The message a line starting with ``\"\"\"`` begins, as Ollama reads it: the text after
    the opening fence and the following lines (``read_line``) up to a line that ends with the
    closing fence, joined with newlines; ``\"\"\"one line\"\"\"`` is just that line. A line that
    does not start with the fence is returned as it is.

    Raises:
        EOFError, KeyboardInterrupt: from ``read_line`` (the message is abandoned).
    """
    if not first.startswith(FENCE):
        return first
    rest = first[len(FENCE):]
    if len(rest) >= len(FENCE) and rest.endswith(FENCE):
        return rest[:-len(FENCE)].strip()
    lines = [rest] if rest else []
    while True:
        line = read_line()
        if line.rstrip().endswith(FENCE):
            lines.append(line.rstrip()[:-len(FENCE)])
            return "\n".join(lines).strip()
        lines.append(line)


async def stream_answer(
    pipeline: ChatPipeline,
    console: Console,
    messages: list[ChatMessage],
    params: SamplingParams,
    model: str | None,
    answer: list[str] | None = None,
    hooks: Hooks | None = None,
) -> str:
    """Stream one answer to ``console``; return the answer text (without reasoning). The answer
    so far is also appended to ``answer`` as it arrives (kept if the answer is interrupted)."""
    req = ChatRequest(messages, params, model)
    if hooks is not None and hooks.prepare is not None:
        req = await hooks.prepare(req)
    stream = await pipeline.start_chat(req)
    state = ""  # "", "reasoning" or "content": what was printed last
    parts = answer if answer is not None else []
    try:
        async for item in stream:
            if isinstance(item, ChatDelta):
                if item.kind == "reasoning":
                    if state != "reasoning":
                        console.print("Thinking…", style="dim bold")
                    console.print(item.text, end="", style=THINK_STYLE, markup=False,
                                  highlight=False, soft_wrap=True)
                else:
                    if state == "reasoning":
                        console.print("\n")
                    console.print(item.text, end="", markup=False, highlight=False,
                                  soft_wrap=True)
                    parts.append(item.text)
                state = item.kind
            elif isinstance(item, ChatDone):
                console.print()
                if item.finish_reason == "length":
                    console.print("[answer cut at the token limit]", style="yellow",
                                  markup=False)
    finally:
        stream.cancel()
    if hooks is not None and hooks.after is not None:
        hooks.after("".join(parts))
    return "".join(parts)


def run_once(
    runner: asyncio.Runner, pipeline: ChatPipeline, prompt: str, params: SamplingParams,
    model: str | None, system: str | None, console: Console, hooks: Hooks | None = None,
    images: list[bytes] | None = None,
) -> None:
    """Answer one prompt (with ``images``, the bytes of image files, for a vision model)."""
    messages = [ChatMessage("system", system)] if system else []
    messages.append(ChatMessage("user", prompt, images=list(images or [])))
    runner.run(stream_answer(pipeline, console, messages, params, model, hooks=hooks))


def interactive(
    runner: asyncio.Runner, pipeline: ChatPipeline, params: SamplingParams, model: str | None,
    system: str | None, console: Console, hooks: Hooks | None = None,
    images: list[bytes] | None = None,
) -> None:
    """A multi-turn chat: ``/bye`` or Ctrl-D ends it, ``/clear`` forgets the conversation,
    Ctrl-C stops the current answer (what was written so far stays in the conversation).
    ``images`` go with the first message."""
    pending = list(images or [])
    rt = runner.run(pipeline.runtime(model))
    console.print(f"Chatting with {rt.engine.info.name}. Type /help for commands, /bye or "
                  "Ctrl-D to quit.", style="dim", markup=False)
    history: list[ChatMessage] = [ChatMessage("system", system)] if system else []
    while True:
        try:
            text = console.input(">>> ").strip()
            text = multiline(text, lambda: console.input("... "))
        except EOFError:
            console.print()
            return
        except KeyboardInterrupt:
            console.print("\nUse Ctrl-D or /bye to exit.", style="dim", markup=False)
            continue
        if not text:
            continue
        if text.startswith("/"):
            command = text.split()[0]
            if command in ("/bye", "/exit", "/quit"):
                return
            if command == "/clear":
                history = history[:1] if system else []
                console.print("(conversation cleared)", style="dim", markup=False)
            elif command in ("/help", "/?"):
                console.print(HELP, style="dim", markup=False)
            else:
                console.print(f"Unknown command {command}. Type /help for commands.",
                              style="yellow", markup=False)
            continue
        history.append(ChatMessage("user", text, images=pending))
        pending = []
        answer: list[str] = []
        try:
            runner.run(stream_answer(pipeline, console, history, params, model, answer, hooks))
        except KeyboardInterrupt:
            console.print("\n[stopped]", style="dim", markup=False)
        history.append(ChatMessage("assistant", "".join(answer)))


def stdin_prompt() -> str | None:
    """Prompt text piped on standard input, if any."""
    if sys.stdin is None or sys.stdin.isatty():
        return None
    return sys.stdin.read()
