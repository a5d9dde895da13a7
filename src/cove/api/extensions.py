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


async def _annotate(items: AsyncIterator[str], results: dict[str, Any], request: Request | None,
                    parse: Callable[[str], dict[str, Any] | None],
                    piece: Callable[[dict[str, Any]], tuple[str, bool]],
                    render: Callable[[dict[str, Any]], str]) -> AsyncIterator[str]:
    """``items`` with ``"cove": results`` on the first object ``parse`` reads, and what the
    finishers add (for the text that ``piece`` collects, ``(text, is_last)`` per object) on
    the last one. Unchanged when ``results`` is empty."""
    first = True
    text: list[str] = []
    async for item in items:
        body = parse(item) if results else None
        if body is None:
            yield item
            continue
        extra: dict[str, Any] = dict(results) if first else {}
        first = False
        part, last = piece(body)
        text.append(part)
        if last and request is not None:
            _add_finished(extra, request, results, "".join(text))
        yield render({**body, "cove": extra}) if extra else item


def _sse_piece(body: dict[str, Any]) -> tuple[str, bool]:
    choice = next((c for c in body.get("choices") or [] if c.get("index", 0) == 0), None)
    if choice is None:
        return "", False
    return (choice.get("delta") or {}).get("content") or "", bool(choice.get("finish_reason"))


def with_results(events: AsyncIterator[str], results: dict[str, Any],
                 request: Request | None = None) -> AsyncIterator[str]:
    """An OpenAI server-sent-event stream whose first ``data:`` object also carries ``"cove":
    results``, and (with ``request``, whose finishers judge the first choice's complete text)
    whose chunk with the first choice's ``finish_reason`` carries ``"cove"`` with what the
    finishers added (e.g. ``cove.search.cited``). Unchanged when ``results`` is empty."""
    return _annotate(
        events, results, request,
        lambda e: json.loads(e[len("data: "):]) if e.startswith("data: {") else None,
        _sse_piece, lambda body: "data: " + json.dumps(body) + "\n\n")


def with_results_ndjson(lines: AsyncIterator[str], results: dict[str, Any],
                        request: Request) -> AsyncIterator[str]:
    """Ollama's NDJSON stream with ``"cove": results`` on its first object and what the
    finishers added (for the complete ``message.content``) on the ``done: true`` object; an
    error line is left alone."""
    def parse(line: str) -> dict[str, Any] | None:
        body = json.loads(line)
        return None if "error" in body else body

    return _annotate(
        lines, results, request, parse,
        lambda b: (((b.get("message") or {}).get("content")) or b.get("response") or "",
                   b.get("done") is True),
        lambda body: json.dumps(body, ensure_ascii=False) + "\n")
