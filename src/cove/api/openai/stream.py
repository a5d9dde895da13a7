"""OpenAI's streaming format for one or several answers (``n``) to one request.

Several answers are generated side by side; their items are interleaved as they come, each
chunk naming its choice by ``index``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from cove.api.errors import sse_error_event
from cove.api.openai.convert import new_id, total_usage, usage_dict
from cove.api.openai.logprobs import chat_logprobs, completion_logprobs
from cove.engine.types import Usage
from cove.pipeline import ChatDelta, ChatDone, ChatStream
from cove.tools import ToolCalls

_END = object()


async def merged(streams: list[ChatStream]) -> AsyncIterator[tuple[int, Any]]:
    """``(choice index, item)`` of every stream's :meth:`~ChatStream.items`, as they come.
    An error in one stream is raised here; leaving early cancels every stream."""
    if len(streams) == 1:
        async for item in streams[0].items():
            yield 0, item
        return
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()

    async def pump(i: int, stream: ChatStream) -> None:
        try:
            async for item in stream.items():
                queue.put_nowait((i, item))
        except Exception as e:  # noqa: BLE001 - handed to the consumer, which raises it
            queue.put_nowait((i, e))
        finally:
            queue.put_nowait((i, _END))

    tasks = [asyncio.ensure_future(pump(i, s)) for i, s in enumerate(streams)]
    try:
        running = len(streams)
        while running:
            i, item = await queue.get()
            if item is _END:
                running -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield i, item
    finally:
        for task in tasks:
            task.cancel()
        for stream in streams:
            stream.cancel()


def _event(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def sse_stream(
    streams: list[ChatStream], *, chat: bool, include_usage: bool, echo_prompt: str = "",
    logprobs: bool = False, obfuscate: bool = False,
) -> AsyncIterator[str]:
    """OpenAI's streaming format: ``data: {chunk}`` events, ``finish_reason`` null until one
    final chunk per choice, an optional usage chunk with ``choices: []`` (the prompt counted
    once, the answers' tokens summed), then ``data: [DONE]``.

    For chat, each choice's first chunk carries ``delta.role``; every later chunk carries
    either ``delta.content`` or ``delta.reasoning_content``. With ``logprobs`` each text chunk
    carries the logprobs of its tokens. ``obfuscate`` adds OpenAI's random-length
    ``obfuscation`` field to each chunk. A failure mid-stream ends the stream with one error
    event (OpenAI error object) and no ``[DONE]``.
    """
    cid = new_id("chatcmpl" if chat else "cmpl")
    created = int(time.time())
    obj = "chat.completion.chunk" if chat else "text_completion"
    model = streams[0].model

    def chunk(choice: dict[str, Any] | None, usage: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {
            "id": cid,
            "object": obj,
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": [] if choice is None else [choice],
        }
        if include_usage:
            body["usage"] = usage
        if obfuscate:
            body["obfuscation"] = secrets.token_urlsafe(secrets.randbelow(16) + 1)
        return _event(body)

    def choice(i: int, delta: dict[str, Any] | str, finish: str | None = None,
               item: ChatDelta | None = None) -> dict[str, Any]:
        lp = None
        if logprobs and item is not None:
            lp = chat_logprobs(item.logprobs) if chat else completion_logprobs(item.logprobs)
        if chat:
            return {"index": i, "delta": delta, "logprobs": lp, "finish_reason": finish}
        return {"index": i, "text": delta, "logprobs": lp, "finish_reason": finish}

    usages: list[Usage | None] = [None] * len(streams)
    try:
        for i in range(len(streams)):
            if chat:
                yield chunk(choice(i, {"role": "assistant", "content": ""}))
            elif echo_prompt:
                yield chunk(choice(i, echo_prompt))
        async for i, item in merged(streams):
            if isinstance(item, ChatDelta):
                if not chat:
                    yield chunk(choice(i, item.text, item=item))
                elif item.kind == "reasoning":
                    yield chunk(choice(i, {"reasoning_content": item.text}, item=item))
                else:
                    yield chunk(choice(i, {"content": item.text}, item=item))
            elif isinstance(item, ToolCalls):
                for n, call in enumerate(item.calls):
                    first = {"index": n, "id": call.id, "type": "function",
                             "function": {"name": call.name, "arguments": ""}}
                    yield chunk(choice(i, {"tool_calls": [first]}))
                    rest = {"index": n, "function": {"arguments": call.arguments}}
                    yield chunk(choice(i, {"tool_calls": [rest]}))
            elif isinstance(item, ChatDone):
                final: dict[str, Any] = {}
                if item.reasoning_budget_exhausted and chat:
                    final["reasoning_budget_exhausted"] = True
                yield chunk(choice(i, final if chat else "", item.finish_reason))
                usages[i] = item.usage
        if include_usage:
            yield chunk(None, usage_dict(total_usage([u for u in usages if u is not None])))
        yield "data: [DONE]\n\n"
    except Exception as e:  # noqa: BLE001 - the stream must end with an error event
        yield sse_error_event(e)  # a server error shows only its log reference
    finally:
        for stream in streams:
            stream.cancel()
