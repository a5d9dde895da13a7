"""Helpers for tests that drive the scheduler directly."""

from __future__ import annotations

from cove.engine.scheduler import Job
from cove.engine.types import Finished, TextDelta


async def collect(job: Job) -> tuple[str, Finished]:
    """The job's whole text and its :class:`Finished` event."""
    text, done = "", None
    async for ev in job.events():
        if isinstance(ev, TextDelta):
            text += ev.text
        else:
            assert isinstance(ev, Finished)
            done = ev
    assert done is not None
    return text, done
