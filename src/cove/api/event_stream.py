"""Server-sent events for routes whose work is a stream of typed events rather than one
chat answer (features such as brainstorms and arena battles): each event is an ``event:``
line naming its ``type`` and a ``data:`` line holding the whole JSON object; a failure midway
ends the stream with one ``error`` event carrying OpenAI's error object (a server error only
its log reference, :func:`cove.api.errors.public`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from fastapi import Request

from cove.api.errors import as_cove_error, openai_error_body

T = TypeVar("T")
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
POLL_SECONDS = 0.25


def sse_event(obj: dict[str, Any]) -> str:
    """One event: ``event: <obj["type"]>`` and ``data: <obj as JSON>``."""
    return f"event: {obj.get('type', 'message')}\ndata: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def sse(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    """``events`` as SSE text, ended by one ``error`` event if they fail; ``events`` is
    closed however the stream ends (a client gone: its work is cancelled)."""
    try:
        async for e in events:
            yield sse_event(e)
    except Exception as exc:  # noqa: BLE001 - the stream must end with an error event
        yield sse_event({"type": "error", **openai_error_body(as_cove_error(exc))})
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


async def while_connected(request: Request, work: Awaitable[T]) -> T | None:
    """Await ``work`` while the client stays connected; None (``work`` cancelled, and
    finished, before this returns) if it leaves first."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=POLL_SECONDS)
            if not done and await request.is_disconnected():
                return None
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            # wait until it has stopped, so the caller may close what ``work`` was iterating
            # (an async generator still running in the task refuses ``aclose()``)
            await asyncio.wait({task})
            if not task.cancelled():
                task.exception()  # retrieved: it ended with an error while being cancelled
