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


def _revised(results: dict[str, Any], finished: dict[str, Any]) -> dict[str, Any]:
    """The parts of ``finished`` (per extension) that ``results`` did not already carry."""
    out = {}
    for name, r in finished.items():
        before = results.get(name)
        if isinstance(r, dict) and isinstance(before, dict):
            extra = {k: v for k, v in r.items() if k not in before or before[k] != v}
            if extra:
                out[name] = extra
        elif r != before:
            out[name] = r
    return out


def _add_finished(extra: dict[str, Any], request: Request, results: dict[str, Any],
                  answer: str) -> None:
    """Put into ``extra`` what the finishers add to ``results`` for the complete ``answer``."""
    for name, r in _revised(results, finish(request, results, answer)).items():
        extra[name] = {**extra[name], **r} if isinstance(extra.get(name), dict) and \
            isinstance(r, dict) else r


async def with_results(events: AsyncIterator[str], results: dict[str, Any],
                       request: Request | None = None) -> AsyncIterator[str]:
    """An OpenAI server-sent-event stream whose first ``data:`` object also carries ``"cove":
    results``, and (with ``request``, whose finishers judge the first choice's complete text)
    whose chunk with the first choice's ``finish_reason`` carries ``"cove"`` with what the
    finishers added (e.g. ``cove.search.cited``). Unchanged when ``results`` is empty."""
    if not results:
        async for event in events:
            yield event
        return
    first = True
    text: list[str] = []
    async for event in events:
        if event.startswith("data: {"):
            body = json.loads(event[len("data: "):])
            extra: dict[str, Any] = dict(results) if first else {}
            first = False
            for choice in body.get("choices") or []:
                if choice.get("index", 0) != 0:
                    continue
                text.append((choice.get("delta") or {}).get("content") or "")
                if choice.get("finish_reason") and request is not None:
                    _add_finished(extra, request, results, "".join(text))
            if extra:
                event = "data: " + json.dumps({**body, "cove": extra}) + "\n\n"
        yield event


async def with_results_ndjson(lines: AsyncIterator[str], results: dict[str, Any],
                              request: Request) -> AsyncIterator[str]:
    """Ollama's NDJSON stream with ``"cove": results`` on its first object and what the
    finishers added (for the complete ``message.content``) on the ``done: true`` object."""
    if not results:
        async for line in lines:
            yield line
        return
    first = True
    text: list[str] = []
    async for line in lines:
        body = json.loads(line)
        extra: dict[str, Any] = dict(results) if first else {}
        first = False
        text.append(((body.get("message") or {}).get("content")) or body.get("response") or "")
        if body.get("done") is True:
            _add_finished(extra, request, results, "".join(text))
        if extra and "error" not in body:
            line = json.dumps({**body, "cove": extra}) + "\n"
        yield line
