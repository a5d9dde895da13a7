"""Turn generated text into tool calls, streaming plain answers through untouched."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from cove.tools.spec import ToolCall, ToolCalls, ToolSpec


def parse_calls(text: str, spec: ToolSpec) -> list[ToolCall] | None:
    """The calls in ``text`` (one JSON call object, an array of them, optionally wrapped in
    ``<tool_call>...</tool_call>``), or None when it is not a valid call of a declared tool."""
    body = text.strip()
    if body.startswith("<tool_call>") and body.endswith("</tool_call>"):
        body = body[len("<tool_call>"):-len("</tool_call>")].strip()
    try:
        value = json.loads(body)
    except ValueError:
        return None
    items = value if isinstance(value, list) else [value]
    funcs = spec.functions
    calls = []
    for item in items:
        if not (isinstance(item, dict) and item.get("name") in funcs
                and isinstance(item.get("arguments", {}), dict)):
            return None
        calls.append(ToolCall(item["name"], json.dumps(item.get("arguments", {}),
                                                        ensure_ascii=False)))
    return calls or None


async def tool_events(events: AsyncIterator[Any], spec: ToolSpec) -> AsyncIterator[Any]:
    """Pass the pipeline's ChatDelta/ChatDone items through, except a tool call: content that
    starts with ``{``, ``[`` or ``<`` (or any content when a call is required) is held back
    and, if it parses as calls, replaced by one :class:`ToolCalls` item and a ``ChatDone``
    whose ``finish_reason`` is ``tool_calls``. Reasoning is never held back."""
    from dataclasses import replace

    held: list[str] = []
    logprobs: tuple[Any, ...] = ()  # of the held text (when the request asked for them)
    mode = "hold" if spec.choice != "auto" else "undecided"
    async for item in events:
        kind = getattr(item, "kind", None)
        if kind == "content" and mode != "pass":
            held.append(item.text)
            logprobs += item.logprobs
            if mode == "undecided":
                start = "".join(held).lstrip()
                if start:
                    mode = "hold" if start[0] in "{[<" else "pass"
                    if mode == "pass":
                        yield replace(item, text="".join(held), logprobs=logprobs)
                        held, logprobs = [], ()
            continue
        if kind is None and hasattr(item, "finish_reason"):  # ChatDone
            text = "".join(held)
            calls = parse_calls(text, spec) if text else None
            if calls:
                yield ToolCalls(calls)
                yield replace(item, finish_reason="tool_calls")
                return
            if text or logprobs:
                from cove.pipeline import ChatDelta

                yield ChatDelta("content", text, logprobs)
        yield item
