"""Terminal chat: stream answers with reasoning shown dimmed and apart from the answer."""

from __future__ import annotations

import asyncio
import sys

from rich.console import Console

from cove.engine.types import SamplingParams
from cove.pipeline import ChatDelta, ChatDone, ChatMessage, ChatPipeline, ChatRequest

THINK_STYLE = "dim italic"


async def stream_answer(
    pipeline: ChatPipeline,
    console: Console,
    messages: list[ChatMessage],
    params: SamplingParams,
    model: str | None,
) -> str:
    """Stream one answer to ``console``; return the answer text (without reasoning)."""
    stream = await pipeline.start_chat(ChatRequest(messages, params, model))
    state = ""  # "", "reasoning" or "content": what was printed last
    answer: list[str] = []
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
                    answer.append(item.text)
                state = item.kind
            elif isinstance(item, ChatDone):
                console.print()
                if item.finish_reason == "length":
                    console.print("[answer cut at the token limit]", style="yellow",
                                  markup=False)
    finally:
        stream.cancel()
    return "".join(answer)


async def run_once(
    pipeline: ChatPipeline, prompt: str, params: SamplingParams, model: str | None,
    system: str | None, console: Console,
) -> None:
    messages = [ChatMessage("system", system)] if system else []
    messages.append(ChatMessage("user", prompt))
    await stream_answer(pipeline, console, messages, params, model)


async def interactive(
    pipeline: ChatPipeline, params: SamplingParams, model: str | None, system: str | None,
    console: Console,
) -> None:
    """A multi-turn chat; ``/bye`` or Ctrl-D ends it, ``/clear`` forgets the conversation,
    Ctrl-C stops the current answer."""
    rt = await pipeline.runtime(model)
    console.print(f"Chatting with {rt.engine.info.name}. /bye or Ctrl-D to quit, "
                  "/clear to start over, Ctrl-C stops an answer.", style="dim", markup=False)
    history: list[ChatMessage] = [ChatMessage("system", system)] if system else []
    loop = asyncio.get_running_loop()
    while True:
        try:
            line = await loop.run_in_executor(None, lambda: console.input(">>> "))
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        text = line.strip()
        if not text:
            continue
        if text in ("/bye", "/exit", "/quit"):
            return
        if text == "/clear":
            history = history[:1] if system else []
            console.print("(conversation cleared)", style="dim", markup=False)
            continue
        history.append(ChatMessage("user", text))
        task = asyncio.ensure_future(stream_answer(pipeline, console, history, params, model))
        try:
            answer = await task
        except asyncio.CancelledError:
            answer = ""
        history.append(ChatMessage("assistant", answer))


def stdin_prompt() -> str | None:
    """Prompt text piped on standard input, if any."""
    if sys.stdin is None or sys.stdin.isatty():
        return None
    data = sys.stdin.read()
    return data if data.strip() else None
