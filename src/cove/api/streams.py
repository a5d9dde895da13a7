"""What every generating route does around the one pipeline: say who asks (for the scheduler's
fair shares), wait for a slot before a streamed answer's status line, and cancel the generation
of a client that went away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from fastapi import Request

from cove.api.errors import as_cove_error
from cove.chat import ChatResult, ChatStream
from cove.errors import CoveError

T = TypeVar("T", covariant=True)


class Collectable(Protocol[T]):
    """A generation that can be run to the end or cancelled: a :class:`ChatStream`, or a
    Responses API run over one."""

    def collect(self) -> Awaitable[T]: ...

    def cancel(self) -> None: ...

POLL_SECONDS = 0.25  # how often a waiting route checks that its client is still there


def client_of(request: Request) -> str:
    """Who asks, as the scheduler's fair shares count them: ``user:<id>`` for a request that
    authenticated (API key or web session, set by :func:`cove.auth.deps.api_access`), else
    ``addr:<client ip>``."""
    user_id = getattr(request.state, "user_id", None)
    if user_id is not None:
        return f"user:{user_id}"
    return f"addr:{request.client.host if request.client else '?'}"


async def _until(request: Request, streams: list[Collectable[Any]],
                 task: asyncio.Future[Any]) -> bool:
    """Wait for ``task`` while the client is connected; False (streams cancelled) if it left."""
    try:
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=POLL_SECONDS)
            if not done and await request.is_disconnected():
                for stream in streams:
                    stream.cancel()
                return False
        return True
    finally:
        if not task.done():
            task.cancel()


async def until_admitted(request: Request, *streams: ChatStream) -> None:
    """Wait until every one of ``streams`` (the answers of one request) has a generation
    slot, so that a refusal (the queue deadline, a fair-share displacement) is still an HTTP
    error with ``Retry-After`` rather than an error event after a 200. A client that leaves
    meanwhile cancels the jobs; a refusal of one cancels them all.

    Raises:
        Overloaded: refused before it got a slot.
    """
    task = asyncio.ensure_future(asyncio.gather(*(s.admitted() for s in streams)))
    try:
        if await _until(request, list(streams), task):
            task.result()
    except BaseException:
        for stream in streams:
            stream.cancel()
        raise


async def collect_unless_disconnected(request: Request, stream: Collectable[T]) -> T | None:
    """Run ``stream`` to the end, cancelling it if the client goes away first (None then)."""
    task = asyncio.ensure_future(stream.collect())
    if await _until(request, [stream], task):
        return task.result()
    return None


async def collect_choices(request: Request,
                          streams: list[ChatStream]) -> list[ChatResult] | None:
    """Run ``streams`` (the answers of one request) to the end, cancelling them all if the
    client goes away first (None then) or one fails."""
    async def collect_all() -> list[ChatResult]:
        try:
            return list(await asyncio.gather(*(s.collect() for s in streams)))
        finally:
            for stream in streams:
                stream.cancel()

    task = asyncio.ensure_future(collect_all())
    if await _until(request, list(streams), task):
        return task.result()
    return None


async def ending_in_error(events: AsyncIterator[str], stream: ChatStream,
                          error_event: Callable[[CoveError], str]) -> AsyncIterator[str]:
    """``events`` (a streamed answer's wire events), ended by one ``error_event`` if the
    generation fails midway (an unexpected exception becomes an :class:`EngineFailure`; a
    server error shows only its log reference, :func:`cove.api.errors.public`); the generation
    is cancelled however the stream ends."""
    try:
        async for event in events:
            yield event
    except Exception as e:  # noqa: BLE001 - the stream must end with an error event
        yield error_event(as_cove_error(e))  # a server error shows only its log reference
    finally:
        stream.cancel()
