"""cove.api.event_stream.while_connected: when the client leaves, the work is cancelled and has
stopped before it returns, so the caller can close the generator the work was reading (the
brainstorm route's `stream: false` path raised "aclose(): asynchronous generator is already
running" and logged a 500 when it did not wait)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cove.api import event_stream


class Gone:
    """A request whose client has left."""

    async def is_disconnected(self) -> bool:
        return True


def test_work_has_stopped_when_the_client_left(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_stream, "POLL_SECONDS", 0.01)
    closed: list[str] = []

    async def events() -> AsyncIterator[int]:
        try:
            while True:
                await asyncio.sleep(0.005)
                yield 1
        finally:
            closed.append("closed")

    async def collect(gen: AsyncIterator[int]) -> int:
        n = 0
        async for _ in gen:
            n += 1
        return n

    async def main() -> None:
        gen = events()
        assert await event_stream.while_connected(Gone(), collect(gen)) is None  # type: ignore[arg-type]
        await gen.aclose()  # raised RuntimeError while the cancelled task still ran in it

    asyncio.run(main())
    assert closed == ["closed"]
