"""Cove's extension field on chat requests: ``"cove": {"<name>": {...}, ...}``.

A feature registers a :data:`ChatExtension` under a name (once, in :func:`cove.app.create_app`);
a chat request naming it in its ``cove`` object has the extension run before generation. The
extension returns the request to run (for example with retrieved passages added to the prompt)
and a JSON object that the response carries back under ``cove.<name>``. The routes and the
pipeline know no feature: they only call :func:`apply`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request

from cove.chat import ChatRequest
from cove.errors import InvalidRequest

ChatExtension = Callable[[Request, Any, ChatRequest], Awaitable[tuple[ChatRequest, Any]]]
# (the extension's result, the answer's text) -> the result to send with a complete answer
Finisher = Callable[[Any, str], Any]


def register(app: FastAPI, name: str, extension: ChatExtension,
             finish: Finisher | None = None) -> None:
    """Make ``cove.<name>`` on chat requests run ``extension(request, value, chat_request)``;
    ``finish(result, answer_text)`` revises the result once a non-streamed answer is complete
    (a streamed one carries the result as the extension returned it)."""
    if not hasattr(app.state, "chat_extensions"):
        app.state.chat_extensions = {}
        app.state.chat_finishers = {}
    app.state.chat_extensions[name] = extension
    if finish is not None:
        app.state.chat_finishers[name] = finish


def finish(request: Request, results: dict[str, Any], answer: str) -> dict[str, Any]:
    """``results`` revised by each extension's finisher for the complete ``answer``."""
    finishers: dict[str, Finisher] = getattr(request.app.state, "chat_finishers", {})
    return {name: finishers[name](r, answer) if name in finishers else r
            for name, r in results.items()}


async def apply(request: Request, fields: dict[str, Any] | None,
                req: ChatRequest) -> tuple[ChatRequest, dict[str, Any]]:
    """Run the extensions named in ``fields`` in order: ``(request to run, {name: result})``.

    Raises:
        InvalidRequest: an extension name nobody registered (``param`` ``cove.<name>``), or
            whatever the extension raises.
    """
    known: dict[str, ChatExtension] = getattr(request.app.state, "chat_extensions", {})
    results: dict[str, Any] = {}
    for name, value in (fields or {}).items():
        if name not in known:
            raise InvalidRequest(f"unknown extension 'cove.{name}' (known: "
                                 f"{', '.join(sorted(known)) or 'none'})", param=f"cove.{name}")
        req, results[name] = await known[name](request, value, req)
    return req, results


async def with_results(events: AsyncIterator[str], results: dict[str, Any]) -> AsyncIterator[str]:
    """A server-sent-event stream whose first ``data:`` object also carries ``"cove":
    results`` (unchanged when ``results`` is empty)."""
    first = bool(results)
    async for event in events:
        if first and event.startswith("data: {"):
            body = json.loads(event[len("data: "):])
            event = "data: " + json.dumps({**body, "cove": results}) + "\n\n"
            first = False
        yield event
