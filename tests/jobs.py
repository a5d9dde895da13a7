"""Helpers for tests that drive the scheduler directly."""

from __future__ import annotations

from typing import Any

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


def record_moves(engine: Any, monkeypatch: Any) -> list[tuple[int, int]]:
    """Record every ``engine.move(src, dst)`` (still performed) in the returned list."""
    moves: list[tuple[int, int]] = []
    move = engine.move

    def counted(src: int, dst: int) -> None:
        moves.append((src, dst))
        move(src, dst)

    monkeypatch.setattr(engine, "move", counted)
    return moves


def oracle(cells: list[int], every: int = 11) -> int:
    """A next token for the scripted engine's oracle mode that depends on every KV cell
    (0, the end, about once in ``every`` tokens; else a lower-case letter)."""
    h = hash(tuple(cells))
    return 0 if h % every == 0 else 97 + h % 26


def alone(prompt: list[int], max_tokens: int, every: int = 11) -> str:
    """What :func:`oracle` generates for ``prompt`` with nothing else running."""
    cells, out = list(prompt), []
    while len(out) < max_tokens:
        t = oracle(cells, every)
        if t == 0:
            break
        out.append(t)
        cells.append(t)
    return bytes(out).decode()
